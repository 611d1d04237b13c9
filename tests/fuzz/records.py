"""Kafka records as fuzzer inputs, and the genuine records to start from.

A record (topic, key, value, headers, timestamp) is one byte string: its parts joined by :data:`SEP`, so a byte
mutation changes one part at a time and a mutated input still decodes to *some* record. The parts are the
timestamp in decimal, the key and the value (``=`` and the bytes, or ``-`` for none), then one part per header
(its name, a NUL, its value). An opener's input has the topic first.

Keys come from fixed seeds, so a saved input signed by them still verifies in a later run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from exchange.crypto.keys import EncryptionKey, Signer
from tests.keys import T0, shipped_registry_document

SEP = b"\x00\xf7\xf7\x00"
T0_MS = int(T0.timestamp() * 1000)
Headers = list[tuple[str, bytes]]


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    timestamp_ms: int = T0_MS
    topic: str = ""


def _optional(raw: bytes | None) -> bytes:
    return b"-" if raw is None else b"=" + raw


def _from_optional(part: bytes) -> bytes | None:
    if part == b"-":
        return None
    return part[1:] if part.startswith(b"=") else part


def encode(record: Record, *, with_topic: bool = False) -> bytes:
    parts = [record.topic.encode()] if with_topic else []
    parts += [str(record.timestamp_ms).encode(), _optional(record.key), _optional(record.value)]
    parts += [name.encode() + b"\x00" + value for name, value in record.headers]
    if any(SEP in part for part in parts):
        raise ValueError("a part holds the separator")
    return SEP.join(parts)


def decode(data: bytes, *, with_topic: bool = False) -> Record:
    parts = data.split(SEP)
    topic = parts.pop(0).decode("utf-8", "replace") if with_topic else ""
    stamp = parts[0] if parts else b""
    try:
        timestamp = int(stamp) if len(stamp) <= 40 else T0_MS
    except ValueError:
        timestamp = T0_MS
    key = _from_optional(parts[1]) if len(parts) > 1 else None
    value = _from_optional(parts[2]) if len(parts) > 2 else None
    headers = []
    for part in parts[3:]:
        name, _, raw = part.partition(b"\x00")
        headers.append((name.decode("utf-8", "replace"), raw))
    return Record(key, value, headers, timestamp, topic)


def _secret(name: str, purpose: str) -> bytes:
    return hashlib.sha256(f"exchange fuzz {purpose} {name}".encode()).digest()


def fixed_signer(name: str) -> Signer:
    return Signer(name, Ed25519PrivateKey.from_private_bytes(_secret(name, "signing")))


def fixed_encryption_key(name: str) -> EncryptionKey:
    return EncryptionKey(name, X25519PrivateKey.from_private_bytes(_secret(name, "encryption")))


def fixed_signers() -> dict[str, Signer]:
    """A fixed signing key for every agency and service of the shipped registry."""
    document = shipped_registry_document()
    ids = [a["id"] for a in document["agencies"]] + [s["id"] for s in document.get("services", [])]
    return {i: fixed_signer(i) for i in ids}
