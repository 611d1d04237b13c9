"""C2SP tlog cosignatures (https://c2sp.org/tlog-cosignature): a witness's timestamped Ed25519 signature of a
checkpoint, the ``cosignature/v1`` signature type ``0x04``.

A cosignature is a note signature line on the checkpoint::

    — <witness name> base64(4-byte key id || 8-byte big-endian timestamp || 64-byte Ed25519 signature)

The key id is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``, so the same Ed25519 key has different key ids
as a note signer (type ``0x01``) and as a cosigner, and one can never pass for the other. The signed message is::

    cosignature/v1\\n
    time <timestamp, decimal>\\n
    <the checkpoint text: origin, size, root hash, extension lines>

It states that, as of the timestamp (POSIX seconds), the checkpoint is the largest tree the witness has seen for
the origin and is consistent with everything it saw before. The witness's verifier key is the vkey
``<name>+<key id>+<base64(0x04 || public key)>``.

:class:`CosignatureVerifier` is a :class:`~exchange.crypto.note.Verifier`, so ``open_note`` and
``open_checkpoint`` verify cosignatures and log signatures of one note together.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from exchange.crypto.checkpoint import Checkpoint, format_checkpoint, parse_checkpoint
from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.errors import (
    InvalidSignatureError,
    KeyFormatError,
    MalformedCheckpointError,
    MalformedNoteError,
)
from exchange.crypto.keys import Signer
from exchange.crypto.note import NoteSignature, Verifier, compute_key_id, open_note

__all__ = [
    "COSIGNATURE_TYPE",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureVerifier",
    "Cosigner",
    "cosignature_message",
    "verify_cosignature_line",
]

COSIGNATURE_TYPE = 0x04
"""The C2SP signature type byte of Ed25519 ``cosignature/v1``."""

MAX_TIMESTAMP = 2**63 - 1
"""The largest cosignature timestamp the spec allows."""

_HEADER = "cosignature/v1\n"
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_TIMESTAMP_SIZE = 8


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The bytes a witness signs: the ``cosignature/v1`` header, the time line, then the checkpoint ``text``.

    Raises :class:`MalformedCheckpointError` if ``text`` is not a checkpoint's note text and
    :class:`ValueError` for a timestamp outside ``0..2^63-1``.
    """
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp {timestamp} is outside 0..2^63-1")
    parse_checkpoint(text)
    return f"{_HEADER}time {timestamp}\n{text}".encode()


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One cosignature: the witness's key name and key id, the timestamp and the 64-byte Ed25519 signature."""

    name: str
    key_id: str
    timestamp: int
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.timestamp <= MAX_TIMESTAMP:
            raise MalformedNoteError(f"cosignature timestamp {self.timestamp} is outside 0..2^63-1")
        if len(self.signature) != _ED25519_SIG_SIZE:
            raise MalformedNoteError(f"cosignature has a {len(self.signature)}-byte signature, not 64")

    @classmethod
    def from_note_signature(cls, sig: NoteSignature) -> Cosignature:
        """Split a note signature's bytes into timestamp and signature; :class:`MalformedNoteError` if they are
        not 8 + 64 bytes or the timestamp exceeds 2^63 - 1."""
        if len(sig.signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
            raise MalformedNoteError(
                f"signature by {sig.name}+{sig.key_id} has {len(sig.signature)} bytes, a cosignature has 72"
            )
        timestamp = int.from_bytes(sig.signature[:_TIMESTAMP_SIZE], "big")
        return cls(sig.name, sig.key_id, timestamp, sig.signature[_TIMESTAMP_SIZE:])

    def note_signature(self) -> NoteSignature:
        """The note signature: key id, then timestamp (8 bytes, big-endian) and Ed25519 signature."""
        return NoteSignature(self.name, self.key_id, self.timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + self.signature)

    def line(self) -> str:
        """The note signature line, with its trailing newline."""
        return self.note_signature().line()


class CosignatureVerifier(Verifier):
    """A witness's Ed25519 public key, verifying ``cosignature/v1`` signatures (key id with type ``0x04``).

    As a :class:`~exchange.crypto.note.Verifier` it verifies the note signature bytes (timestamp || signature)
    over the note text; put it in the trusted keys of ``open_note`` or ``open_checkpoint`` next to the log's key.
    """

    __slots__ = ()

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        super().__init__(name, public_key)
        self.key_id = compute_key_id(name, self._raw, COSIGNATURE_TYPE)

    @classmethod
    def from_key_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse ``<name>+<key id>+<base64(0x04 || key)>``; the key id must match the name and key.

        One trailing newline is dropped; any other whitespace is refused. An Ed25519 note verifier key (type
        ``0x01``) is refused: a witness publishes its key with type ``0x04``.
        """
        parts = vkey.removesuffix("\n").split("+", 2)
        if len(parts) != 3:
            raise KeyFormatError("witness verifier key must have the form <name>+<key id>+<base64 key>")
        name, key_id, b64 = parts
        try:
            raw = b64decode_strict(b64)
        except (binascii.Error, ValueError) as exc:
            raise KeyFormatError("witness verifier key is not valid base64") from exc
        if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] != COSIGNATURE_TYPE:
            raise KeyFormatError(
                f"witness verifier key {name}+{key_id} is not a 32-byte Ed25519 cosignature key (type 0x04)"
            )
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if key_id != verifier.key_id:
            raise KeyFormatError(
                f"witness verifier key {name}+{key_id}: key id does not match, expected {verifier.key_id}"
            )
        return verifier

    def key_string(self) -> str:
        """The vkey ``<name>+<key id>+<base64(0x04 || key)>``."""
        encoded = base64.b64encode(bytes([COSIGNATURE_TYPE]) + self._raw).decode()
        return f"{self.name}+{self.key_id}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check note signature bytes ``timestamp || Ed25519 signature`` over the checkpoint text ``message``.

        Raises :class:`InvalidSignatureError`, also when ``message`` is not a checkpoint's text.
        """
        self.verify_cosignature(message, signature)

    def verify_cosignature(self, message: bytes, signature: bytes) -> int:
        """As :meth:`verify`; returns the cosignature's timestamp."""
        if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
            raise InvalidSignatureError(self.name, self.key_id)
        timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
        try:
            signed = cosignature_message(message.decode(), timestamp)
        except (UnicodeDecodeError, ValueError, MalformedCheckpointError) as exc:
            raise InvalidSignatureError(self.name, self.key_id) from exc
        try:
            self.public_key.verify(signature[_TIMESTAMP_SIZE:], signed)
        except InvalidSignature as exc:
            raise InvalidSignatureError(self.name, self.key_id) from exc
        return timestamp

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.key_string()!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is CosignatureVerifier and (self.name, self._raw) == (other.name, other._raw)

    def __hash__(self) -> int:
        return hash((COSIGNATURE_TYPE, self.name, self._raw))


class Cosigner:
    """A witness's Ed25519 private key, cosigning checkpoints. Never shows its private key.

    The key is an ordinary :class:`~exchange.crypto.keys.Signer` (the private key file holds the sumdb/note
    signer string, as transparency-dev's witness keys do); only the key id differs, computed with type ``0x04``.
    """

    __slots__ = ("_signer", "key_id", "name", "public_key")

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self.name = signer.name
        self.public_key = signer.public_key
        self.key_id = compute_key_id(signer.name, signer.public_key.public_bytes_raw(), COSIGNATURE_TYPE)

    def cosign(self, text: str, timestamp: int) -> Cosignature:
        """Cosign the checkpoint ``text`` as of ``timestamp`` (POSIX seconds, 1..2^63-1; never zero)."""
        if not 1 <= timestamp <= MAX_TIMESTAMP:
            raise ValueError(f"a witness's cosignature timestamp must be in 1..2^63-1, not {timestamp}")
        signature = self._signer.sign(cosignature_message(text, timestamp))
        return Cosignature(self.name, self.key_id, timestamp, signature)

    def cosign_checkpoint(self, checkpoint: Checkpoint, timestamp: int) -> Cosignature:
        """Cosign ``checkpoint`` as of ``timestamp``."""
        return self.cosign(format_checkpoint(checkpoint), timestamp)

    def verifier(self) -> CosignatureVerifier:
        """The matching public verifier."""
        return CosignatureVerifier(self.name, self.public_key)

    def verifier_key(self) -> str:
        """The witness's vkey ``<name>+<key id>+<base64(0x04 || key)>``, to give to the log and its readers."""
        return self.verifier().key_string()

    def __repr__(self) -> str:
        return f"Cosigner(name={self.name!r}, key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Cosigner holds a private key and cannot be pickled or copied")


def verify_cosignature_line(text: str, line: str, verifier: CosignatureVerifier) -> Cosignature:
    """Verify one signature line (as a witness answers it) over the checkpoint ``text`` for one witness key.

    Raises :class:`MalformedNoteError` (not one signature line),
    :class:`~exchange.crypto.errors.UnverifiedNoteError` (the line is by another key) or
    :class:`InvalidSignatureError` (not a valid cosignature by the witness's key).
    """
    if not line.endswith("\n"):
        line += "\n"
    if line.count("\n") != 1:
        raise MalformedNoteError("a cosignature line must be a single line")
    opened = open_note(text + "\n" + line, [verifier])
    return Cosignature.from_note_signature(opened.signatures[0])
