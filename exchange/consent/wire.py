"""A consent artefact as a Kafka record on ``consent.events``, and back.

- **key**: the subject pseudonym (UTF-8), so a citizen's consents share a partition with their events;
- **value**: Avro single-object encoding of the artefact with the ``exchange.consent`` schema;
- **headers**: CloudEvents binary mode — ``ce_id`` (``<consent id>@<version>``), ``ce_type`` (``exchange.consent``),
  ``ce_source`` (``exchange-consent``), ``ce_time`` (issued at), ``ce_specversion``, ``ce_dataschema`` and
  ``content-type``. No personal data in headers.

The signature is part of the artefact (its ``signature`` field), so the headers carry nothing a reader must trust.
Pure: no Kafka, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from exchange.consent.errors import ConsentRecordError
from exchange.envelope.attributes import CONTENT_TYPE, ce_headers, dataschema_uri, format_time
from exchange.policy import ConsentArtefact, ConsentStatus
from exchange.policy.consent import CONSENT_ISSUER
from exchange.schemas import Catalogue, SchemaError

__all__ = [
    "CONSENT_TOPIC",
    "CONSENT_TYPE",
    "ConsentMessage",
    "artefact_from_record",
    "artefact_record",
    "decode_artefact",
    "effective_status",
    "encode_artefact",
]

CONSENT_TOPIC = "consent.events"
"""The topic consents live on (forever), co-partitioned with ``ingress.*``."""

CONSENT_TYPE = "exchange.consent"
"""The record type of a consent artefact in the schema catalogue."""


@dataclass(frozen=True, slots=True)
class ConsentMessage:
    """One artefact ready to produce: key, value and headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def artefact_record(artefact: ConsentArtefact) -> dict[str, Any]:
    """The Avro record of ``artefact`` (the ``exchange.consent`` fields, in schema order)."""
    return {
        "consent_id": artefact.consent_id,
        "version": artefact.version,
        "subject": artefact.subject,
        "recipient": artefact.recipient,
        "purpose": artefact.purpose,
        "record_types": list(artefact.record_types),
        "fields": None if artefact.fields is None else list(artefact.fields),
        "start": artefact.start,
        "expiry": artefact.expiry,
        "status": artefact.status.value,
        "issued_at": artefact.issued_at,
        "issuer": artefact.issuer,
        "signature": artefact.signature,
    }


def artefact_from_record(record: Mapping[str, Any]) -> ConsentArtefact:
    """The artefact an ``exchange.consent`` record holds; :class:`ConsentRecordError` if it is not a valid one."""
    data = dict(record)
    for name in ("record_types", "fields"):
        if isinstance(data.get(name), list):
            data[name] = tuple(data[name])
    try:
        return ConsentArtefact.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'artefact'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise ConsentRecordError(f"not a valid consent artefact: {problems}") from None


def encode_artefact(catalogue: Catalogue, artefact: ConsentArtefact) -> ConsentMessage:
    """Key, value and headers of a signed artefact. Refuses an unsigned one (nothing unsigned goes on the wire)."""
    if artefact.signature is None:
        raise ConsentRecordError(f"consent {artefact.ref} is not signed")
    schema = catalogue.current(CONSENT_TYPE)
    value = catalogue.encode(schema, artefact_record(artefact))
    headers = ce_headers(str(artefact.ref), CONSENT_ISSUER, CONSENT_TYPE, format_time(artefact.issued_at),
                         content_type=CONTENT_TYPE,
                         dataschema=dataschema_uri(CONSENT_TYPE, schema.revision, schema.fingerprint))
    return ConsentMessage(artefact.subject.encode(), value, headers)


def decode_artefact(catalogue: Catalogue, value: bytes | None, key: bytes | None = None) -> ConsentArtefact:
    """The artefact in a record value (read as the current ``exchange.consent`` revision).

    With ``key``, the record's key must be the artefact's subject: a record under another key sits in another
    citizen's partition, where the consent barrier would not find it. Raises :class:`ConsentRecordError`.
    The signature is not checked here (that is the consent state's job).
    """
    if value is None:
        raise ConsentRecordError("the record has no value")
    try:
        writer = catalogue.schema_of(value)
        if writer.type_name != CONSENT_TYPE:
            raise ConsentRecordError(f"the record holds {writer.type_name}, not {CONSENT_TYPE}")
        _, record = catalogue.decode(value, reader=CONSENT_TYPE)
    except SchemaError as exc:
        raise ConsentRecordError(f"the value does not decode: {exc}") from exc
    artefact = artefact_from_record(record)
    if key is not None and key != artefact.subject.encode():
        raise ConsentRecordError(f"consent {artefact.ref}: the record key is not the artefact's subject")
    return artefact


def effective_status(artefact: ConsentArtefact, at: datetime) -> ConsentStatus:
    """The status as it holds at ``at``: an ACTIVE or PAUSED consent past its expiry is EXPIRED."""
    if artefact.status in (ConsentStatus.ACTIVE, ConsentStatus.PAUSED) and at >= artefact.expiry:
        return ConsentStatus.EXPIRED
    return artefact.status
