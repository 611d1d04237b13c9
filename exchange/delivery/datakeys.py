"""Data keys: AES-256-GCM keys per recipient, wrapped for its X25519 key and signed once per rotation.

The router makes a random data key per recipient and rotates it after a time and a number of messages. Each data
key is wrapped for the recipient's encryption key from the registry (valid at the time of wrapping)::

    ephemeral X25519 key pair (e, E), recipient public key R
    KEK     = HKDF-SHA256(X25519(e, R), salt = E ‖ R, info = "exchange.datakey/v1" 0x00 ‖ binding)
    wrapped = AES-256-GCM(KEK, nonce = 0¹², data key, aad = binding)

where ``binding`` is the note text's lines 2 to 5 (data key id, recipient, recipient key id, created). The nonce
can be fixed because every KEK is used once (a fresh ephemeral key per wrap). The wrap is a C2SP signed note by
``exchange-router``, sent in the ``ce_exdatakey`` header of every delivery under that key::

    exchange.datakey/v1
    <data key id: 32 hex digits>
    <recipient agency id>
    <recipient encryption key id>
    <created: RFC 3339, UTC, milliseconds>
    <base64 ephemeral public key>
    <base64 wrapped key (32 bytes + 16-byte tag)>

    — exchange-router <base64(key id ‖ signature)>

Within one data key the router numbers its messages: the GCM nonce is the 96-bit message counter, unique because
a data key never leaves the process that made it and is retired before the counter could wrap.
"""

from __future__ import annotations

import binascii
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.errors import CryptoError, InvalidSignatureError, UnverifiedNoteError
from exchange.crypto.keys import EncryptionKey
from exchange.crypto.note import NoteSigner, open_note, sign_note
from exchange.delivery.errors import (
    BadDataKeyError,
    RecipientKeyError,
    RouterKeyRejectedError,
    UnknownRouterKeyError,
    WrongRecipientError,
)
from exchange.delivery.wire import H_DATAKEY, NONCE_SIZE, VALUE_VERSION
from exchange.envelope.attributes import format_time, parse_time
from exchange.registry import Registry
from exchange.registry.errors import KeyRejectedError, RegistryError, UnknownKeyError

__all__ = [
    "DATAKEY_ORIGIN",
    "DATA_KEY_SIZE",
    "ROUTER_IDENTITY",
    "DataKey",
    "DataKeyWrap",
    "DataKeys",
    "OpenedDataKey",
    "open_data_key",
    "unwrap_data_key",
    "wrap_data_key",
]

ROUTER_IDENTITY = "exchange-router"
"""The service identity that signs data-key wraps."""
DATAKEY_ORIGIN = "exchange.datakey/v1"
DATA_KEY_SIZE = 32
_WRAPPED_SIZE = DATA_KEY_SIZE + 16
_X25519_SIZE = 32
_ZERO_NONCE = bytes(12)
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX8 = re.compile(r"[0-9a-f]{8}")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_b64 = binascii.b2a_base64


@dataclass(frozen=True, slots=True)
class DataKeyWrap:
    """The text of a data-key note: which key, for whom, when, and the wrapped key itself."""

    key_id: str
    recipient: str
    recipient_key_id: str
    created: str
    ephemeral_public_key: bytes
    wrapped_key: bytes

    @property
    def created_at(self) -> datetime:
        """``created`` as a timezone-aware datetime."""
        return parse_time(self.created)

    def binding(self) -> bytes:
        """What the KEK derivation and the wrap's AAD bind: lines 2 to 5 of the note text."""
        return f"{self.key_id}\n{self.recipient}\n{self.recipient_key_id}\n{self.created}\n".encode()

    def text(self) -> str:
        """The note text (ends with a newline)."""
        return (f"{DATAKEY_ORIGIN}\n{self.binding().decode()}"
                f"{_b64(self.ephemeral_public_key, newline=False).decode()}\n"
                f"{_b64(self.wrapped_key, newline=False).decode()}\n")

    @classmethod
    def parse(cls, text: str) -> DataKeyWrap:
        """Parse a note text; raises :class:`BadDataKeyError` unless it is exactly one well-formed wrap."""
        lines = text.split("\n")
        if len(lines) != 8 or lines[0] != DATAKEY_ORIGIN or lines[7] != "":
            raise BadDataKeyError(f"the data-key note is not an {DATAKEY_ORIGIN} note")
        key_id, recipient, recipient_key_id, created = lines[1:5]
        if not (_HEX32.fullmatch(key_id) and _SLUG.fullmatch(recipient) and _HEX8.fullmatch(recipient_key_id)):
            raise BadDataKeyError("the data-key note's key id, recipient or recipient key id is not well-formed")
        try:
            canonical = format_time(parse_time(created))
            ephemeral = b64decode_strict(lines[5])
            wrapped = b64decode_strict(lines[6])
        # binascii.Error is a ValueError; OverflowError: a time whose UTC form is outside the years 1 to 9999
        except (ValueError, OverflowError) as exc:
            raise BadDataKeyError(f"the data-key note's time or keys are not well-formed: {exc}") from exc
        if canonical != created:
            raise BadDataKeyError(f"the data-key note's time {created!r} is not in canonical form")
        if len(ephemeral) != _X25519_SIZE or len(wrapped) != _WRAPPED_SIZE:
            raise BadDataKeyError("the data-key note's ephemeral key or wrapped key has the wrong size")
        return cls(key_id, recipient, recipient_key_id, created, ephemeral, wrapped)


def _kek(shared: bytes, ephemeral: bytes, recipient: bytes, binding: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient,
                info=DATAKEY_ORIGIN.encode() + b"\x00" + binding)
    return AESGCM(hkdf.derive(shared))


def wrap_data_key(data_key: bytes, *, key_id: str, recipient: str, recipient_key_id: str,
                  recipient_public_key: X25519PublicKey, created: datetime) -> DataKeyWrap:
    """Wrap ``data_key`` for the recipient's public key with a fresh ephemeral key (see the module docstring)."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    wrap = DataKeyWrap(key_id, recipient, recipient_key_id, format_time(created), ephemeral_public, b"")
    binding = wrap.binding()
    kek = _kek(ephemeral.exchange(recipient_public_key), ephemeral_public, recipient_public_key.public_bytes_raw(),
               binding)
    return DataKeyWrap(key_id, recipient, recipient_key_id, wrap.created, ephemeral_public,
                       kek.encrypt(_ZERO_NONCE, data_key, binding))


def unwrap_data_key(wrap: DataKeyWrap, encryption_key: EncryptionKey) -> bytes:
    """The data key inside ``wrap``; raises :class:`WrongRecipientError` or :class:`BadDataKeyError`."""
    if wrap.recipient != encryption_key.name or wrap.recipient_key_id != encryption_key.key_id:
        raise WrongRecipientError(f"the data key is wrapped for {wrap.recipient}+{wrap.recipient_key_id}, this key "
                                  f"is {encryption_key.name}+{encryption_key.key_id}")
    binding = wrap.binding()
    try:
        shared = encryption_key.exchange(X25519PublicKey.from_public_bytes(wrap.ephemeral_public_key))
        kek = _kek(shared, wrap.ephemeral_public_key, encryption_key.public_key.public_bytes_raw(), binding)
        return kek.decrypt(_ZERO_NONCE, wrap.wrapped_key, binding)
    except ValueError as exc:  # a low-order ephemeral key: the shared secret would be all zeros
        raise BadDataKeyError("the data-key note's ephemeral key is not a usable X25519 key") from exc
    except InvalidTag as exc:
        raise BadDataKeyError(f"data key {wrap.key_id} does not unwrap with {encryption_key.key_id}") from exc


@dataclass(frozen=True, slots=True)
class OpenedDataKey:
    """A verified, unwrapped data key (recipient side)."""

    wrap: DataKeyWrap
    aead: AESGCM
    router_key_id: str


def open_data_key(note: bytes, registry: Registry,
                  encryption_keys: EncryptionKey | Sequence[EncryptionKey]) -> OpenedDataKey:
    """Verify a ``ce_exdatakey`` note and unwrap its key.

    The note must be signed by a key of ``exchange-router`` valid at the note's ``created`` time, be wrapped for
    one of ``encryption_keys`` (its holder and key id: the current key, or one retired by a rotation) and unwrap.
    Raises a :class:`BadDataKeyError` subclass or :class:`WrongRecipientError`.
    """
    try:
        text = note.decode()
    except UnicodeDecodeError as exc:
        raise BadDataKeyError("the data-key note is not UTF-8") from exc
    # The time to check the router's key at comes from the text before its signature is checked; the
    # signature then covers that very text, so a changed time fails the signature.
    body, sep, _ = text.rpartition("\n\n")
    if not sep:
        raise BadDataKeyError("the data-key note has no signature")
    unverified = DataKeyWrap.parse(body + "\n")
    try:
        opened = open_note(text, registry.note_verifiers(unverified.created_at, identities=[ROUTER_IDENTITY]))
    except InvalidSignatureError as exc:
        raise BadDataKeyError("the data-key note's signature does not verify") from exc
    except UnverifiedNoteError as exc:
        raise _router_key_error(exc) from exc
    except CryptoError as exc:
        raise BadDataKeyError(f"the data-key note cannot be opened: {exc}") from exc
    wrap = DataKeyWrap.parse(opened.text)
    keys = [encryption_keys] if isinstance(encryption_keys, EncryptionKey) else encryption_keys
    key = next((k for k in keys if k.key_id == wrap.recipient_key_id), keys[0])
    secret = unwrap_data_key(wrap, key)
    return OpenedDataKey(wrap, AESGCM(secret), opened.signatures[0].key_id)


def _router_key_error(exc: UnverifiedNoteError) -> BadDataKeyError:
    for miss in exc.ignored:
        cause = miss.__cause__
        if isinstance(cause, KeyRejectedError) and not isinstance(cause, UnknownKeyError):
            return RouterKeyRejectedError(f"the data-key note's router key cannot be used: {cause}")
    return UnknownRouterKeyError(f"the data-key note carries no signature by a registered key of "
                                 f"{ROUTER_IDENTITY} ({exc})")


class DataKey:
    """A data key in use by the router for one recipient: encrypts deliveries, numbering its nonces."""

    __slots__ = ("_aead", "expires", "header", "header_pair", "key_id", "limit", "recipient", "used")

    def __init__(self, key_id: str, recipient: str, secret: bytes, header: bytes, *, expires: float,
                 limit: int) -> None:
        self._aead = AESGCM(secret)
        self.used = 0
        """Messages encrypted so far (the next message's nonce)."""
        self.key_id = key_id
        self.recipient = recipient
        self.header = header
        """The signed note, as the ``ce_exdatakey`` header's bytes."""
        self.header_pair = (H_DATAKEY, header)
        self.expires = expires
        """Clock reading (seconds) from which the key is no longer used."""
        self.limit = limit
        """Number of messages after which the key is no longer used."""

    def usable(self, now: float) -> bool:
        """True while the key is neither expired nor used up."""
        return now < self.expires and self.used < self.limit

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """The delivery value: ``0x01 ‖ nonce ‖ ciphertext and tag``."""
        nonce = self.used.to_bytes(NONCE_SIZE, "big")
        self.used += 1
        return b"".join((VALUE_VERSION, nonce, self._aead.encrypt(nonce, plaintext, aad)))

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r}, recipient={self.recipient!r}, used={self.used})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a DataKey holds secret material and cannot be pickled or copied")


class DataKeys:
    """The router's current data key per recipient, rotated by time and by count; signs once per rotation."""

    def __init__(self, signer: NoteSigner, registry: Registry, *, rotate_after_s: float = 600.0,
                 rotate_after_count: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        if rotate_after_s <= 0 or rotate_after_count < 1:
            raise ValueError("data keys must rotate after a positive time and count")
        if signer.name != ROUTER_IDENTITY:
            raise ValueError(f"data-key notes are signed by {ROUTER_IDENTITY!r}, not {signer.name!r}")
        self._signer = signer
        self._registry = registry
        self._rotate_after_s = rotate_after_s
        self._rotate_after_count = rotate_after_count
        self._clock = clock
        self._keys: dict[str, DataKey] = {}
        self.rotations = 0
        """Data keys made (and notes signed) so far."""

    def current(self, recipient: str) -> DataKey:
        """The data key to encrypt the next delivery to ``recipient`` with; a new one when due."""
        key = self._keys.get(recipient)
        now = self._clock()
        if key is None or now >= key.expires or key.used >= key.limit:  # key.usable(now), inlined: per delivery
            key = self._keys[recipient] = self._rotate(recipient, now)
        return key

    def _rotate(self, recipient: str, now: float) -> DataKey:
        created = datetime.fromtimestamp(int(now * 1000) / 1000, UTC)
        try:
            public_key = self._registry.encryption_key(recipient, at=created)
            entry = self._registry.encryption_key_entry(recipient)
        except RegistryError as exc:
            raise RecipientKeyError(f"cannot encrypt for {recipient}: {exc}") from exc
        secret = AESGCM.generate_key(bit_length=256)
        key_id = os.urandom(16).hex()
        wrap = wrap_data_key(secret, key_id=key_id, recipient=recipient, recipient_key_id=entry.key_id,
                             recipient_public_key=public_key, created=created)
        header = sign_note(wrap.text(), [self._signer]).encode()
        # Never encrypt for a recipient key past its end: stop at its expiry or (known) revocation.
        expires = now + self._rotate_after_s
        for end in (entry.valid_until, entry.revoked_at):
            if end is not None:
                expires = min(expires, end.timestamp())
        self.rotations += 1
        return DataKey(key_id, recipient, secret, header, expires=expires, limit=self._rotate_after_count)

    def __repr__(self) -> str:
        return f"DataKeys(recipients={sorted(self._keys)}, rotations={self.rotations})"
