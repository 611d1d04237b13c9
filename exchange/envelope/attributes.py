"""CloudEvents attributes of an event, in the Kafka binding's binary mode (``ce_`` headers).

Only non-personal attributes travel as headers (NL GOV CloudEvents profile): id, source (an agency id), type,
time, dataschema. The exchange's own extensions carry the proof material: ``ce_exseed`` (the per-event seed the
field salts derive from), ``ce_exproof`` (the inclusion proof in the batch tree) and ``ce_exbatch`` (the
signed batch note). The Kafka binding carries every attribute as a string, so the two binary ones travel as
canonical base64 (CloudEvents' ``Binary`` type) and any CloudEvents-aware consumer can read our events.

Every header has a length bound (:data:`HEADER_LIMITS`), checked before any work is done on a record.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from exchange.crypto.encoding import b64decode_strict

__all__ = [
    "CONTENT_TYPE",
    "HEADER_LIMITS",
    "H_BATCH",
    "H_CONTENT_TYPE",
    "H_DATASCHEMA",
    "H_ID",
    "H_PROOF",
    "H_SEED",
    "H_SOURCE",
    "H_SPECVERSION",
    "H_TIME",
    "H_TYPE",
    "ID_TIME_TOLERANCE_MS",
    "SPECVERSION",
    "EventAttributes",
    "b64_attribute",
    "ce_headers",
    "dataschema_uri",
    "decode_b64_attribute",
    "format_time",
    "parse_headers",
    "parse_time",
    "uuid7",
    "uuid7_ms",
]

SPECVERSION = "1.0"
CONTENT_TYPE = "application/avro"

H_SPECVERSION = "ce_specversion"
H_ID = "ce_id"
H_SOURCE = "ce_source"
H_TYPE = "ce_type"
H_TIME = "ce_time"
H_DATASCHEMA = "ce_dataschema"
H_CONTENT_TYPE = "content-type"
H_SEED = "ce_exseed"
H_PROOF = "ce_exproof"
H_BATCH = "ce_exbatch"

HEADER_LIMITS: dict[str, int] = {
    H_SPECVERSION: 8,
    H_ID: 36,  # a UUID in its canonical text form
    H_SOURCE: 128,
    H_TYPE: 160,
    H_TIME: 40,
    H_DATASCHEMA: 512,
    H_CONTENT_TYPE: 64,
    H_SEED: 44,  # base64 of 32 bytes
    H_PROOF: 1388,  # base64 of index, size (u32 each) and at most 32 hashes: a batch of up to 2^32 events
    H_BATCH: 4096,  # the batch note: four short lines and a few signatures
    "traceparent": 64,  # W3C Trace Context: 55 characters in version 00
    "tracestate": 512,  # W3C Trace Context's own bound
}
"""The longest value each ingress header may have, in bytes."""

ID_TIME_TOLERANCE_MS = 1000
"""How far the time in ``ce_id`` (a UUIDv7) may be from ``ce_time``."""

_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class EventAttributes:
    """The CloudEvents context attributes the publisher signs."""

    id: str
    source: str
    type: str
    time: str
    dataschema: str

    def signing_bytes(self) -> bytes:
        """The attributes as the event digest covers them: one per line, in a fixed order."""
        return f"{self.id}\n{self.source}\n{self.type}\n{self.time}\n{self.dataschema}\n".encode()


def parse_headers(raw: Sequence[tuple[str, bytes]], required: Sequence[str], known: Collection[str],
                  error: type[Exception]) -> dict[str, bytes]:
    """The headers as a dict, each named at most once, all of ``required`` present and none outside ``known``;
    ``error`` (with a message naming the header) otherwise."""
    found: dict[str, bytes] = {}
    for name, value in raw:
        if name not in known:
            raise error(f"unexpected header {name!r}")
        if name in found:
            raise error(f"header {name!r} appears twice")
        found[name] = value
    missing = [n for n in required if n not in found]
    if missing:
        raise error(f"missing header(s): {', '.join(missing)}")
    return found


def dataschema_uri(record_type: str, revision: int, fingerprint: bytes) -> str:
    """``urn:exchange:schema:<type>:<revision>:<fingerprint hex>``: names the revision and pins its bytes."""
    return f"urn:exchange:schema:{record_type}:{revision}:{fingerprint.hex()}"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as CloudEvents' ``time``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; raises ValueError when it is not one (or has no offset)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return moment


def ce_headers(event_id: str, source: str, event_type: str, time: str, *, content_type: str,
               dataschema: str | None = None) -> list[tuple[str, bytes]]:
    """The CloudEvents context attributes as Kafka binary-mode headers, in the order the exchange writes them."""
    headers = [(H_SPECVERSION, SPECVERSION.encode()), (H_ID, event_id.encode()), (H_SOURCE, source.encode()),
               (H_TYPE, event_type.encode()), (H_TIME, time.encode())]
    if dataschema is not None:
        headers.append((H_DATASCHEMA, dataschema.encode()))
    headers.append((H_CONTENT_TYPE, content_type.encode()))
    return headers


def b64_attribute(raw: bytes) -> bytes:
    """A binary attribute as the Kafka binding carries it: canonical base64 text."""
    return base64.b64encode(raw)


def decode_b64_attribute(text: bytes, name: str, error: type[Exception]) -> bytes:
    """The bytes of a base64 attribute; ``error`` unless ``text`` is their one canonical base64 form."""
    try:
        return b64decode_strict(text)
    except binascii.Error as exc:
        raise error(f"{name} is not canonical base64: {exc}") from exc


def uuid7_ms(event_id: str) -> int:
    """The Unix milliseconds of a UUIDv7 in canonical (lowercase, hyphenated) form; ValueError otherwise."""
    if len(event_id) != 36 or _UUID7.fullmatch(event_id) is None:
        raise ValueError(f"ce_id {event_id[:40]!r} is not a UUIDv7 in canonical form")
    return int(event_id[:8] + event_id[9:13], 16)


def uuid7(now_ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sortable by creation time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
