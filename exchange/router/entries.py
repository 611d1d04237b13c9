"""What the router writes besides deliveries: access-log entries and quarantine records.

Access-log entries (``exchange.decision``) carry pseudonyms only: the subject reference is the ingress key (the
keyed-HMAC pseudonym) for a verified event, and nothing for a REJECT, whose key was never verified. A quarantine
record (``exchange.quarantine``) carries the original key, headers and value unchanged, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from exchange.envelope import VerificationError, VerifiedEvent, uuid7
from exchange.envelope.attributes import H_ID, H_SOURCE, H_TYPE
from exchange.policy import Decision
from exchange.schemas import Catalogue, RecordSchema

__all__ = ["EntryWriter"]

DECISION_TYPE = "exchange.decision"
QUARANTINE_TYPE = "exchange.quarantine"
_UUID = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class EntryWriter:
    """Encodes access-log entries and quarantine records for one router."""

    def __init__(self, router_id: str, catalogue: Catalogue, known_sources: frozenset[str],
                 known_types: frozenset[str]) -> None:
        self.router_id = router_id
        self._decision: RecordSchema = catalogue.current(DECISION_TYPE)
        self._quarantine: RecordSchema = catalogue.current(QUARANTINE_TYPE)
        self._sources = known_sources
        self._types = known_types

    def decision(self, event: VerifiedEvent, decision: Decision, *, topic: str, partition: int, offset: int,
                 now: datetime) -> bytes:
        """The access-log entry of one decision about a verified event."""
        attributes = event.attributes
        return self._decision.encode({
            "decision_id": uuid7(int(now.timestamp() * 1000)),
            "decided_at": now,
            "router_id": self.router_id,
            "event_id": attributes.id,
            "event_type": attributes.type,
            "event_source": attributes.source,
            "ingress_topic": topic,
            "ingress_partition": partition,
            "ingress_offset": offset,
            "event_digest": event.digest,
            "subject_ref": event.key,
            "recipient": decision.recipient,
            "agreement_id": decision.agreement_id,
            "agreement_version": decision.agreement_version,
            "bundle_id": decision.bundle_id,
            "purpose": decision.purpose,
            "legal_basis": decision.legal_basis,
            "consent_ref": str(decision.consent_ref) if decision.consent_ref is not None else None,
            "outcome": decision.outcome,
            "reason_codes": list(decision.reasons),
            "fields_released": list(decision.fields) if decision.permitted else [],
        })

    def reject(self, headers: Sequence[tuple[str, bytes]], error: VerificationError, *, bundle_id: str, topic: str,
               partition: int, offset: int, now: datetime) -> bytes:
        """The access-log entry of a record that failed verification. Header values are kept only when they
        are well-formed and known (an event id that is a UUID, a registered source, a catalogued type): an
        unverified record may carry anything, and nothing personal may reach the log."""
        found = dict(headers)
        event_id = found.get(H_ID, b"")
        source = found.get(H_SOURCE, b"").decode(errors="replace")
        record_type = found.get(H_TYPE, b"").decode(errors="replace")
        return self._decision.encode({
            "decision_id": uuid7(int(now.timestamp() * 1000)),
            "decided_at": now,
            "router_id": self.router_id,
            "event_id": event_id.decode() if _UUID.match(event_id) else None,
            "event_type": record_type if record_type in self._types else None,
            "event_source": source if source in self._sources else None,
            "ingress_topic": topic,
            "ingress_partition": partition,
            "ingress_offset": offset,
            "event_digest": None,
            "subject_ref": None,
            "recipient": None,
            "agreement_id": None,
            "agreement_version": None,
            "bundle_id": bundle_id,
            "purpose": None,
            "legal_basis": None,
            "consent_ref": None,
            "outcome": "REJECT",
            "reason_codes": [error.reason],
            "fields_released": [],
        })

    def quarantine(self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]],
                   error: VerificationError, *, topic: str, partition: int, offset: int, now: datetime) -> bytes:
        """The quarantine record: the original, unchanged, with why it was refused."""
        record: dict[str, Any] = {
            "quarantine_id": uuid7(int(now.timestamp() * 1000)),
            "quarantined_at": now,
            "quarantined_by": self.router_id,
            "reason_code": error.reason,
            "detail": str(error)[:2000],
            "original_topic": topic,
            "original_partition": partition,
            "original_offset": offset,
            "original_key": key,
            "original_headers": [{"name": k, "value": v} for k, v in headers],
            "original_value": value,
        }
        return self._quarantine.encode(record)
