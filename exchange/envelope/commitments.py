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
import struct
from collections.abc import Callable, Sequence

from exchange.envelope.attributes import EventAttributes

__all__ = [
    "KEY_FIELD",
    "SALT_SIZE",
    "SEED_SIZE",
    "Committer",
    "commit",
    "commitments",
    "derive_salts",
    "digest_of",
    "event_digest",
]

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
    return list(_splitter(count)(stream)) if count > 0 else []


_SPLITTERS: dict[int, Callable[[bytes], tuple[bytes, ...]]] = {}


def _splitter(count: int) -> Callable[[bytes], tuple[bytes, ...]]:
    """Cuts a salt stream into ``count`` salts in one C call."""
    split = _SPLITTERS.get(count)
    if split is None:
        split = _SPLITTERS[count] = struct.Struct(f"{SALT_SIZE}s" * count).unpack
    return split


class Committer:
    """Commits to the events of one schema: field names encoded and the salt stream's layout made once.

    ``Committer(names).commitments(Committer(names).salts(seed), key, parts)`` equals
    ``commitments(seed, key, names, parts)``; the router keeps one per schema.
    """

    __slots__ = ("_names", "_split", "_stream_size")

    def __init__(self, names: Sequence[str]) -> None:
        self._names = (_name(KEY_FIELD), *map(_name, names))
        self._stream_size = SALT_SIZE * len(self._names)
        self._split = _splitter(len(self._names))

    def salts(self, seed: bytes) -> tuple[bytes, ...]:
        """The key's salt, then each field's (see :func:`derive_salts`)."""
        return self._split(hashlib.shake_256(_SALTS + seed).digest(self._stream_size))

    def commitments(self, salts: Sequence[bytes], key: bytes, encoded_values: Sequence[bytes]) -> list[bytes]:
        """``[c_key, c_1, …]`` from the salts and each field's Avro encoding, in schema order."""
        return [_sha256(s + n + v).digest() for s, n, v in zip(salts, self._names, (key, *encoded_values), strict=True)]


_COMMITTERS: dict[tuple[str, ...], Committer] = {}


def _committer_for(names: Sequence[str]) -> Committer:
    # Keyed by the field names: one per schema revision, so the cache stays small.
    key = tuple(names)
    committer = _COMMITTERS.get(key)
    if committer is None:
        if len(_COMMITTERS) >= 256:
            _COMMITTERS.clear()
        committer = _COMMITTERS[key] = Committer(key)
    return committer


def commit(salt: bytes, name: str, encoded_value: bytes) -> bytes:
    """The commitment to one field whose value's Avro encoding is ``encoded_value``."""
    return _sha256(salt + _name(name) + encoded_value).digest()


def commitments(seed: bytes, key: bytes, names: Sequence[str], encoded_values: Sequence[bytes]) -> list[bytes]:
    """The key's commitment followed by each field's, for a whole event."""
    committer = _committer_for(names)
    return committer.commitments(committer.salts(seed), key, encoded_values)


def digest_of(signing_bytes: bytes, commitment_list: Sequence[bytes]) -> bytes:
    """The event digest from the attributes' signing bytes (see :meth:`EventAttributes.signing_bytes`)."""
    return _sha256(b"".join((_EVENT, signing_bytes, *commitment_list))).digest()


def event_digest(attributes: EventAttributes, commitment_list: Sequence[bytes]) -> bytes:
    """The digest a publisher signs (as a leaf of its batch tree)."""
    return digest_of(attributes.signing_bytes(), commitment_list)
