"""Records that must not pass: one of each kind the router quarantines, built from real, valid envelopes.

Used by the demo to show the quarantine at work, and by the tests to prove each kind is caught by name.
"""

from __future__ import annotations

import base64
import random
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exchange.context import Context
from exchange.crypto.keys import Signer
from exchange.envelope import Envelope, prepare, seal_events
from exchange.kafka import Producer
from exchange.schemas.samples import sample_record

__all__ = ["BadRecord", "bad_records"]

RECORD_TYPE = "population.death-registered"
SOURCE = "population-registry"


@dataclass(frozen=True)
class BadRecord:
    """One record to produce as is, and the reason the router must give for quarantining it."""

    kind: str
    reason: str
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int | None = None
    """Where to produce it (None: where its key maps to)."""
    timestamp_ms: int | None = None
    """The producer timestamp to give it (None: now); ingress topics replace it with the broker's."""

    def produce(self, producer: Producer) -> None:
        """Queue it on ``producer`` as it is meant to arrive."""
        producer.produce(self.topic, self.value, self.key, headers=self.headers, partition=self.partition,
                         timestamp_ms=self.timestamp_ms)


def _flip_signature_bit(note: bytes) -> bytes:
    """The same note with one bit of its Ed25519 signature flipped, still well-formed (canonical base64)."""
    body, _, line = note.rstrip(b"\n").rpartition(b"\n")
    prefix, _, b64 = line.rpartition(b" ")
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01  # the signature's last byte; the first four bytes are the key id
    return body + b"\n" + prefix + b" " + base64.b64encode(bytes(raw)) + b"\n"


def bad_records(context: Context, rng: random.Random, now: datetime | None = None,
                partitions: int = 6) -> list[BadRecord]:
    """One record of each bad kind, in the order to produce them. One of them is good: the original of the
    replayed event (its ``reason`` is empty), which is routed normally. ``partitions`` is the ingress topics'
    partition count (``deploy/topics.yaml``)."""
    now = now or datetime.now(UTC)
    schema = context.catalogue.current(RECORD_TYPE)
    topic = f"ingress.{RECORD_TYPE}"
    keystore = context.keystore

    def envelope(signer: Signer, source: str = SOURCE, key: bytes | None = None,
                 at: datetime | None = None) -> Envelope:
        record = sample_record(RECORD_TYPE, rng)
        if key is None:
            key = context.pseudonymiser.subject(record[schema.key_field]).encode()
        return seal_events(source, [prepare(schema, record, source=source, key=key, now=at or now)], signer)[0]

    def bad(kind: str, reason: str, env: Envelope, *, value: bytes | None = None,
            headers: list[tuple[str, bytes]] | None = None) -> BadRecord:
        return BadRecord(kind, reason, topic, env.key, env.value if value is None else value,
                         list(env.headers) if headers is None else headers)

    good = keystore.signer(SOURCE)
    forged = envelope(good)
    forged_headers = [(n, _flip_signature_bit(v) if n == "ce_exbatch" else v) for n, v in forged.headers]
    replayed = envelope(good)
    junk = envelope(good)
    unknown_schema = envelope(good)
    moved = envelope(good)
    two_hours_ago = now - timedelta(hours=2)
    old = envelope(good, at=two_hours_ago)
    records = [
        bad("bad signature", "BAD_SIGNATURE", forged, headers=forged_headers),
        bad("unknown signing key", "UNKNOWN_KEY", envelope(Signer.generate(SOURCE))),
        bad("source not authoritative", "NOT_AUTHORITATIVE", envelope(keystore.signer("tax-board"), "tax-board")),
        BadRecord("original of a replay", "", topic, replayed.key, replayed.value, list(replayed.headers)),
        bad("replayed event id", "REPLAYED", replayed),
        bad("garbage bytes", "BAD_DATUM", junk, value=junk.value[:10] + b"\xff\xff\xff\xff garbage"),
        bad("wrong schema fingerprint", "UNKNOWN_SCHEMA", unknown_schema,
            value=unknown_schema.value[:2] + bytes(8) + unknown_schema.value[10:]),
        BadRecord("no envelope at all", "MALFORMED_ENVELOPE", topic, None, b"plain text", [("ce_id", b"x")]),
        bad("signed key of 70,000 bytes", "BAD_KEY", envelope(good, key=b"k" * 70_000)),
        BadRecord("copy on another partition", "WRONG_PARTITION", topic, moved.key, moved.value, list(moved.headers),
                  partition=(zlib.crc32(moved.key) + 1) % partitions),
        BadRecord("signed two hours ago, with that timestamp", "TIME_SKEW", topic, old.key, old.value,
                  list(old.headers), timestamp_ms=int(two_hours_ago.timestamp() * 1000)),
    ]
    return records
