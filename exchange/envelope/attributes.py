"""CloudEvents attributes of an event, in the Kafka binding's binary mode (``ce_`` headers).

Only non-personal attributes travel as headers (NL GOV CloudEvents profile): id, source (an agency id), type,
time, dataschema. The exchange's own extensions carry the proof material: ``ce_exseed`` (the per-event seed the
field salts derive from), ``ce_exproof`` (the inclusion proof in the batch tree) and ``ce_exbatch`` (the
signed batch note).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "CONTENT_TYPE",
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
    "SPECVERSION",
    "EventAttributes",
    "dataschema_uri",
    "format_time",
    "parse_headers",
    "parse_time",
    "uuid7",
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


def uuid7(now_ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sortable by creation time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
