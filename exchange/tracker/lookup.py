"""An operator's look at a subject's accesses is itself an access: ``exchange tracker show`` writes an entry of
its own to ``audit.decisions`` before it answers, so the sequencer logs it and the subject's tracker lists it.

The entry is an ``exchange.decision`` of type :data:`~exchange.audit.names.LOOKUP_TYPE` from
:data:`~exchange.audit.names.TRACKER_IDENTITY`: outcome PERMIT, the operator as recipient, purpose
``subject-access-request``, the legal basis the operator gives, the one field ``access-history``, and no event,
agreement or bundle. ``exchange audit verify`` checks entries of this type for exactly that shape instead of
taking them again from a bundle (an entry claiming to be a lookup cannot hide a delivery of fields).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from exchange.audit.names import (
    DECISIONS_TOPIC,
    LOOKUP_FIELDS,
    LOOKUP_PURPOSE,
    LOOKUP_REASON,
    LOOKUP_TYPE,
    TRACKER_IDENTITY,
)
from exchange.envelope import format_time, uuid7
from exchange.envelope.attributes import CONTENT_TYPE, ce_headers, dataschema_uri
from exchange.errors import ConfigError
from exchange.kafka import Headers, ProduceError, Producer
from exchange.schemas import Catalogue
from exchange.settings import Settings

__all__ = ["lookup_entry", "record_lookup"]

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)


def lookup_entry(catalogue: Catalogue, subject_ref: str, operator: str, basis: str,
                 now: datetime | None = None) -> tuple[bytes, Headers, str]:
    """The encoded entry, its CloudEvents headers and its id."""
    if not _SLUG.fullmatch(operator) or len(operator) > 100:
        raise ConfigError(f"the operator must be an agency-style id (lower-case-words), not {operator!r}")
    if not 3 <= len(basis.strip()) <= 300:
        raise ConfigError("give the legal basis of the request (3 to 300 characters), e.g. 'GDPR Art. 15'")
    at = now or datetime.now(UTC)
    millis = int(at.timestamp() * 1000)
    entry_id, event_id = uuid7(millis), uuid7(millis)
    schema = catalogue.current("exchange.decision")
    record: dict[str, Any] = {
        "decision_id": entry_id, "decided_at": at, "router_id": TRACKER_IDENTITY, "event_id": event_id,
        "event_type": LOOKUP_TYPE, "event_source": TRACKER_IDENTITY, "ingress_topic": "", "ingress_partition": -1,
        "ingress_offset": -1, "event_digest": None, "subject_ref": subject_ref.encode("ascii"),
        "recipient": operator, "agreement_id": None, "agreement_version": None, "bundle_id": "",
        "purpose": LOOKUP_PURPOSE, "legal_basis": f"statute:{basis.strip()}", "consent_ref": None,
        "outcome": "PERMIT", "reason_codes": [LOOKUP_REASON], "fields_released": list(LOOKUP_FIELDS),
        "event_time": at, "restrictions_held": [], "consent_offset": None,
    }
    headers = ce_headers(entry_id, TRACKER_IDENTITY, schema.type_name, format_time(at), content_type=CONTENT_TYPE,
                         dataschema=dataschema_uri(schema.type_name, schema.revision, schema.fingerprint))
    return schema.encode(record), headers, entry_id


def record_lookup(settings: Settings, catalogue: Catalogue, subject_ref: str, operator: str, basis: str) -> str:
    """Write the lookup's entry to ``audit.decisions`` and wait until the broker has it (acks=all); its id."""
    value, headers, entry_id = lookup_entry(catalogue, subject_ref, operator, basis)
    failures: list[ProduceError] = []

    def delivered(error: ProduceError | None, *_: object) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer(settings=settings)
    producer.produce(DECISIONS_TOPIC, value, subject_ref.encode("ascii"), headers=headers, on_delivery=delivered)
    producer.flush(30)
    if failures:
        raise failures[0]
    return entry_id
