"""Per-field salted commitments and the event digest the publisher signs.

For the key and each field ``i`` of the schema, in declaration order::

    c_i = SHA-256(salt_i ‖ avro_string(name_i) ‖ avro(value_i))

with the salts derived from a per-event 32-byte seed (one SHAKE-256 call for all of them). The field name is
length-prefixed so no two (name, value) pairs share an encoding. The Kafka key is committed as the
pseudo-field ``$key``, so a recipient that receives another key (a pseudonymising recipient) can still check
the publisher's signature without learning the original one. The event digest binds the CloudEvents attributes
and every commitment::

    digest = SHA-256("exchange.event/v1\\n" ‖ attributes ‖ c_key ‖ c_1 ‖ … ‖ c_n)

Releasing a field's value with its salt lets a recipient recompute its commitment; withholding both and passing
only the commitment hides the value (selective disclosure, as in SD-JWT).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from exchange.envelope.attributes import EventAttributes

__all__ = ["KEY_FIELD", "SALT_SIZE", "SEED_SIZE", "commit", "commitments", "derive_salts", "event_digest"]

SEED_SIZE = 32
SALT_SIZE = 16
KEY_FIELD = "$key"

_SALTS = b"exchange.salts/v1\x00"
_EVENT = b"exchange.event/v1\n"
_sha256 = hashlib.sha256


def _avro_string(text: str) -> bytes:
    raw = text.encode()
    n = len(raw) << 1  # zig-zag of a non-negative length
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + raw


_NAME_CACHE: dict[str, bytes] = {}


def _name(name: str) -> bytes:
    encoded = _NAME_CACHE.get(name)
    if encoded is None:
        encoded = _NAME_CACHE[name] = _avro_string(name)
    return encoded


def derive_salts(seed: bytes, count: int) -> list[bytes]:
    """``count`` salts from ``seed``: salt 0 for the key, then one per field in schema order."""
    stream = hashlib.shake_256(_SALTS + seed).digest(SALT_SIZE * count)
    return [stream[i:i + SALT_SIZE] for i in range(0, SALT_SIZE * count, SALT_SIZE)]


def commit(salt: bytes, name: str, encoded_value: bytes) -> bytes:
    """The commitment to one field whose value's Avro encoding is ``encoded_value``."""
    return _sha256(salt + _name(name) + encoded_value).digest()


def commitments(seed: bytes, key: bytes, names: Sequence[str], encoded_values: Sequence[bytes]) -> list[bytes]:
    """The key's commitment followed by each field's, for a whole event."""
    salts = derive_salts(seed, len(names) + 1)
    out = [commit(salts[0], KEY_FIELD, key)]
    out.extend(_sha256(salts[i + 1] + _name(n) + v).digest()
               for i, (n, v) in enumerate(zip(names, encoded_values, strict=True)))
    return out


def event_digest(attributes: EventAttributes, commitment_list: Sequence[bytes]) -> bytes:
    """The digest a publisher signs (as a leaf of its batch tree)."""
    return _sha256(_EVENT + attributes.signing_bytes() + b"".join(commitment_list)).digest()
