"""Building envelopes on the publisher's side: one event at a time, then a whole batch is sealed and signed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exchange.crypto.note import NoteSigner
from exchange.envelope.attributes import (
    CONTENT_TYPE,
    H_BATCH,
    H_PROOF,
    H_SEED,
    EventAttributes,
    b64_attribute,
    ce_headers,
    dataschema_uri,
    format_time,
    uuid7,
)
from exchange.envelope.batch import seal
from exchange.envelope.commitments import SEED_SIZE, commitments, event_digest
from exchange.schemas import RecordSchema

__all__ = ["Envelope", "PreparedEvent", "ingress_topic", "prepare", "seal_events"]


def ingress_topic(record_type: str) -> str:
    return f"ingress.{record_type}"


@dataclass(slots=True)
class PreparedEvent:
    """An encoded, committed event waiting for its batch signature."""

    attributes: EventAttributes
    key: bytes
    value: bytes
    seed: bytes
    digest: bytes


@dataclass(slots=True)
class Envelope:
    """A finished Kafka record: topic, key, value and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str


def prepare(schema: RecordSchema, record: Mapping[str, Any], *, source: str, key: bytes, now: datetime,
            seed: bytes | None = None, event_id: str | None = None) -> PreparedEvent:
    """Validate and encode ``record``, commit to its fields and key, and compute the digest to sign.

    Raises RecordValidationError (listing every bad field) before anything is produced.
    """
    value, parts = schema.encode_parts(record)
    seed = seed if seed is not None else os.urandom(SEED_SIZE)
    attributes = EventAttributes(
        id=event_id or uuid7(int(now.timestamp() * 1000)),
        source=source,
        type=schema.type_name,
        time=format_time(now),
        dataschema=dataschema_uri(schema.type_name, schema.revision, schema.fingerprint),
    )
    digest = event_digest(attributes, commitments(seed, key, schema.field_names, parts))
    return PreparedEvent(attributes, key, value, seed, digest)


def seal_events(source: str, events: Sequence[PreparedEvent], signer: NoteSigner) -> list[Envelope]:
    """Sign a batch of prepared events as ``source`` and return their finished records, in order."""
    sealed = seal(source, [e.digest for e in events], signer)
    note = sealed.note.encode()
    envelopes = []
    for event, proof in zip(events, sealed.proofs, strict=True):
        a = event.attributes
        headers = ce_headers(a.id, a.source, a.type, a.time, content_type=CONTENT_TYPE, dataschema=a.dataschema)
        headers += [(H_SEED, b64_attribute(event.seed)), (H_PROOF, b64_attribute(proof)), (H_BATCH, note)]
        envelopes.append(Envelope(ingress_topic(a.type), event.key, event.value, headers, a.id))
    return envelopes
