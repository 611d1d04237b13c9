"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then one signature line per key::

    <text ending in \\n>
    \\n
    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>\\n

A key is named by its identity (``population-registry``) and identified by its key id: the first four bytes of
``SHA-256(name || 0x0A || 0x01 || public key)``, written as 8 hex digits. The verifier key string
``<name>+<key id>+<base64(0x01 || public key)>`` describes a public key completely.

Opening a note fails closed: signatures by unknown keys are ignored (as the spec requires), a signature by a
trusted key that does not verify rejects the note, and a note with no verified signature is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.errors import (
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    NoteError,
    UnknownVerifierError,
    UnverifiedNoteError,
)

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "MAX_SIGNATURES",
    "AmbiguousKeyError",
    "NoteSignature",
    "NoteSigner",
    "NoteText",
    "Verifier",
    "VerifierSet",
    "Verifiers",
    "compute_key_id",
    "is_valid_key_name",
    "open_note",
    "sign_note",
]

ED25519_SIGNATURE_TYPE = 0x01
"""The C2SP signature type byte for Ed25519."""

MAX_SIGNATURES = 100
"""More signature lines than this make a note malformed (the spec asks verifiers to accept at least 16)."""

_SIG_PREFIX = "— "  # em dash U+2014, space
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64


class AmbiguousKeyError(NoteError):
    """Two different public keys share a name and key id in one set of trusted keys."""


def is_valid_key_name(name: str) -> bool:
    """A key name is non-empty, with no Unicode space, no ``+`` and no control character."""
    return bool(name) and not any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name)


def compute_key_id(name: str, public_key: bytes, signature_type: int = ED25519_SIGNATURE_TYPE) -> str:
    """The C2SP key id of a raw public key: 8 hex digits of ``SHA-256(name || 0x0A || type || key)[:4]``."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()
    return digest[:4].hex()


class Verifier:
    """A trusted Ed25519 public key with its name and key id."""

    __slots__ = ("_raw", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        if not is_valid_key_name(name):
            raise KeyFormatError(f"invalid key name {name!r}: empty, or contains a space, '+' or control character")
        self.name = name
        self.public_key = public_key
        self._raw = public_key.public_bytes_raw()
        self.key_id = compute_key_id(name, self._raw)

    @classmethod
    def from_key_string(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<key id>+<base64(0x01 || key)>``; the key id must match the name and key.

        One trailing newline (a key string read from a file) is dropped; any other whitespace is refused.
        """
        parts = vkey.removesuffix("\n").split("+", 2)
        if len(parts) != 3:
            raise KeyFormatError("verifier key must have the form <name>+<key id>+<base64 key>")
        name, key_id, b64 = parts
        raw = _b64decode(b64, "verifier key")
        if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] != ED25519_SIGNATURE_TYPE:
            raise KeyFormatError(f"verifier key {name}+{key_id} is not a 32-byte Ed25519 key (type 0x01)")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if key_id != verifier.key_id:
            raise KeyFormatError(f"verifier key {name}+{key_id}: key id does not match, expected {verifier.key_id}")
        return verifier

    def key_string(self) -> str:
        """The C2SP verifier key string ``<name>+<key id>+<base64(0x01 || key)>``."""
        encoded = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + self._raw).decode()
        return f"{self.name}+{self.key_id}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature over ``message``; raises :class:`InvalidSignatureError`."""
        if len(signature) != _ED25519_SIG_SIZE:
            raise InvalidSignatureError(self.name, self.key_id)
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature as exc:
            raise InvalidSignatureError(self.name, self.key_id) from exc

    def __repr__(self) -> str:
        return f"Verifier({self.key_string()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and (self.name, self._raw) == (other.name, other._raw)

    def __hash__(self) -> int:
        return hash((self.name, self._raw))


@runtime_checkable
class NoteSigner(Protocol):
    """Anything that signs with an Ed25519 key known by a name and key id (see ``exchange.crypto.keys.Signer``)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


@runtime_checkable
class Verifiers(Protocol):
    """A trust store: the verifier for a name and key id, or :class:`UnknownVerifierError`."""

    def verifier(self, name: str, key_id: str) -> Verifier: ...


class VerifierSet:
    """A fixed set of trusted verifiers, looked up by ``(name, key id)``."""

    __slots__ = ("_by_id",)

    def __init__(self, verifiers: Iterable[Verifier]) -> None:
        self._by_id: dict[tuple[str, str], Verifier] = {}
        for v in verifiers:
            known = self._by_id.setdefault((v.name, v.key_id), v)
            if known != v:
                raise AmbiguousKeyError(f"ambiguous key {v.name}+{v.key_id}: two different public keys")

    def verifier(self, name: str, key_id: str) -> Verifier:
        """The verifier with this name and key id; :class:`UnknownVerifierError` if there is none."""
        try:
            return self._by_id[(name, key_id)]
        except KeyError:
            raise UnknownVerifierError(name, key_id) from None

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"VerifierSet({sorted(f'{n}+{k}' for n, k in self._by_id)})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, key id and the raw signature bytes."""

    name: str
    key_id: str
    signature: bytes

    def line(self) -> str:
        """The signature line, with its trailing newline."""
        encoded = base64.b64encode(bytes.fromhex(self.key_id) + self.signature).decode()
        return f"{_SIG_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True, slots=True)
class NoteText:
    """An opened note: its text, the signatures that verified and those by unknown keys (ignored)."""

    text: str
    signatures: tuple[NoteSignature, ...]
    ignored: tuple[NoteSignature, ...] = ()

    @property
    def signers(self) -> frozenset[tuple[str, str]]:
        """``(name, key id)`` of every key whose signature verified."""
        return frozenset((s.name, s.key_id) for s in self.signatures)


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` (ending in a newline) with every signer; returns the signed note.

    Raises :class:`MalformedNoteError` for text that cannot be a note, no signers, a signer with an invalid name
    or two signers with the same key.
    """
    _check_text(text)
    if not signers:
        raise MalformedNoteError("a note needs at least one signer")
    message = text.encode()
    seen: set[tuple[str, str]] = set()
    lines: list[str] = []
    for signer in signers:
        if not is_valid_key_name(signer.name):
            raise MalformedNoteError(f"invalid key name {signer.name!r}")
        ident = (signer.name, signer.key_id)
        if ident in seen:
            raise MalformedNoteError(f"key {signer.name}+{signer.key_id} signs twice")
        seen.add(ident)
        signature = signer.sign(message)
        lines.append(NoteSignature(signer.name, signer.key_id, signature).line())
    return text + "\n" + "".join(lines)


def open_note(note: str | bytes, verifiers: Verifiers | Iterable[Verifier]) -> NoteText:
    """Parse a signed note and verify its signatures against the trusted ``verifiers``.

    Signatures by unknown keys are ignored (kept in :attr:`NoteText.ignored`), repeated signatures by one key are
    dropped. Raises :class:`MalformedNoteError`, :class:`InvalidSignatureError` (a trusted key's signature does
    not verify) or :class:`UnverifiedNoteError` (no signature by a trusted key).
    """
    store = verifiers if isinstance(verifiers, Verifiers) else VerifierSet(verifiers)
    text, signatures = _parse(note)
    message = text.encode()
    verified: list[NoteSignature] = []
    ignored: list[NoteSignature] = []
    misses: list[UnknownVerifierError] = []
    seen: set[tuple[str, str]] = set()
    for sig in signatures:
        try:
            verifier = store.verifier(sig.name, sig.key_id)
        except UnknownVerifierError as miss:
            if sig not in ignored:
                ignored.append(sig)
                misses.append(miss)
            continue
        if (verifier.name, verifier.key_id) != (sig.name, sig.key_id):
            # A trust store answering with another key is a bug that must not pass as a valid signature.
            raise InvalidSignatureError(sig.name, sig.key_id)
        if (sig.name, sig.key_id) in seen:
            continue
        seen.add((sig.name, sig.key_id))
        verifier.verify(message, sig.signature)
        verified.append(sig)
    if not verified:
        raise UnverifiedNoteError(tuple(misses))
    return NoteText(text, tuple(verified), tuple(ignored))


def _b64decode(text: str, what: str) -> bytes:
    try:
        return b64decode_strict(text)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"{what} is not valid base64") from exc


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise MalformedNoteError("note text contains a control character other than newline")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise MalformedNoteError("note text is not valid Unicode") from exc


def _parse(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    if isinstance(note, bytes):
        try:
            note = note.decode()
        except UnicodeDecodeError as exc:
            raise MalformedNoteError("note is not valid UTF-8") from exc
    _check_text(note)
    # The text ends at the last blank line; signature lines are never blank.
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise MalformedNoteError("note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    return text, [_parse_signature_line(line, i) for i, line in enumerate(lines)]


def _parse_signature_line(line: str, index: int) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise MalformedNoteError(f"signature line {index + 1} does not start with an em dash and a space")
    name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep or not is_valid_key_name(name) or not b64:
        raise MalformedNoteError(f"signature line {index + 1} is not '— <name> <base64>'")
    try:
        raw = b64decode_strict(b64)
    except (binascii.Error, ValueError) as exc:
        raise MalformedNoteError(f"signature line {index + 1} is not valid base64") from exc
    if len(raw) < 5:
        raise MalformedNoteError(f"signature line {index + 1} is too short for a key id and a signature")
    return NoteSignature(name, raw[:4].hex(), raw[4:])
