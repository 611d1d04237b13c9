"""Key material: Ed25519 signing keys and X25519 encryption keys, named by the identity that holds them.

Private keys live in the keystore only (``exchange.registry.keystore``). The classes here never show private
material in ``repr``, ``str`` or exceptions, and refuse to be pickled; the private key string is produced only by
an explicitly named ``export_private_key_string()`` for the keystore to write.

Key ids: a signing key's id is its C2SP signed-note key id (see :func:`exchange.crypto.note.compute_key_id`); an
encryption key's id uses the same recipe with the "no assigned type" byte ``0xff`` followed by
``exchange/x25519``, so the two kinds can never share an id by construction.
"""

from __future__ import annotations

import base64
import binascii
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.errors import KeyFormatError
from exchange.crypto.note import ED25519_SIGNATURE_TYPE, Verifier, compute_key_id, is_valid_key_name

__all__ = [
    "EncryptionKey",
    "Signer",
    "decode_encryption_public_key",
    "decode_signing_public_key",
    "encode_public_key",
    "encryption_key_id",
    "signing_key_id",
]

_KEY_SIZE = 32
_SIGNER_PREFIX = "PRIVATE+KEY+"  # the golang.org/x/mod/sumdb/note signer key format
_X25519_PREFIX = "PRIVATE+X25519+KEY+"
_X25519_KEY_ID_TYPE = b"\xffexchange/x25519"


def encode_public_key(key: Ed25519PublicKey | X25519PublicKey) -> str:
    """Standard base64 of the raw 32-byte public key."""
    return base64.b64encode(key.public_bytes_raw()).decode()


def decode_signing_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of its 32 raw bytes; raises :class:`KeyFormatError`."""
    return Ed25519PublicKey.from_public_bytes(_decode_raw_key(text, "Ed25519 public key"))


def decode_encryption_public_key(text: str) -> X25519PublicKey:
    """An X25519 public key from base64 of its 32 raw bytes; raises :class:`KeyFormatError`."""
    return X25519PublicKey.from_public_bytes(_decode_raw_key(text, "X25519 public key"))


def signing_key_id(name: str, public_key: Ed25519PublicKey) -> str:
    """The C2SP key id (8 hex digits) of an Ed25519 key held by ``name``."""
    return compute_key_id(name, public_key.public_bytes_raw())


def encryption_key_id(name: str, public_key: X25519PublicKey) -> str:
    """The key id (8 hex digits) of an X25519 key held by ``name``."""
    return compute_key_id(name, _X25519_KEY_ID_TYPE[1:] + public_key.public_bytes_raw(), _X25519_KEY_ID_TYPE[0])


class Signer:
    """An Ed25519 private key held by ``name``: signs notes and batches. Never shows its private key."""

    __slots__ = ("_private", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not is_valid_key_name(name):
            raise KeyFormatError(f"invalid key name {name!r}: empty, or contains a space, '+' or control character")
        self._private = private_key
        self.name = name
        self.public_key = private_key.public_key()
        self.key_id = signing_key_id(name, self.public_key)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random signing key for ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_key_string(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte seed)>`` (the sumdb/note signer format)."""
        name, key_id, raw = _split_private(skey, _SIGNER_PREFIX, "signer key")
        if len(raw) != 1 + _KEY_SIZE or raw[0] != ED25519_SIGNATURE_TYPE:
            raise KeyFormatError(f"signer key {name}+{key_id} is not an Ed25519 seed (type 0x01, 32 bytes)")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id != key_id:
            raise KeyFormatError(f"signer key {name}+{key_id}: key id does not match the key")
        return signer

    def export_private_key_string(self) -> str:
        """The private key string, for the keystore to write to a mode-0600 file. Never log it."""
        seed = self._private.private_bytes_raw()
        encoded = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + seed).decode()
        return f"{_SIGNER_PREFIX}{self.name}+{self.key_id}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def verifier(self) -> Verifier:
        """The matching public verifier."""
        return Verifier(self.name, self.public_key)

    def verifier_key(self) -> str:
        """The C2SP verifier key string ``<name>+<key id>+<base64(0x01 || key)>`` for the registry."""
        return self.verifier().key_string()

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Signer holds a private key and cannot be pickled or copied")


class EncryptionKey:
    """An X25519 private key held by ``name``: recipients unwrap data keys with it. Never shows its private key."""

    __slots__ = ("_private", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: X25519PrivateKey) -> None:
        if not is_valid_key_name(name):
            raise KeyFormatError(f"invalid key name {name!r}: empty, or contains a space, '+' or control character")
        self._private = private_key
        self.name = name
        self.public_key = private_key.public_key()
        self.key_id = encryption_key_id(name, self.public_key)

    @classmethod
    def generate(cls, name: str) -> EncryptionKey:
        """A new random encryption key for ``name``."""
        return cls(name, X25519PrivateKey.generate())

    @classmethod
    def from_private_key_string(cls, skey: str) -> EncryptionKey:
        """Parse ``PRIVATE+X25519+KEY+<name>+<key id>+<base64(32-byte private key)>``."""
        name, key_id, raw = _split_private(skey, _X25519_PREFIX, "encryption key")
        if len(raw) != _KEY_SIZE:
            raise KeyFormatError(f"encryption key {name}+{key_id} is not a 32-byte X25519 key")
        key = cls(name, X25519PrivateKey.from_private_bytes(raw))
        if key.key_id != key_id:
            raise KeyFormatError(f"encryption key {name}+{key_id}: key id does not match the key")
        return key

    def export_private_key_string(self) -> str:
        """The private key string, for the keystore to write to a mode-0600 file. Never log it."""
        encoded = base64.b64encode(self._private.private_bytes_raw()).decode()
        return f"{_X25519_PREFIX}{self.name}+{self.key_id}+{encoded}"

    def exchange(self, peer_public_key: X25519PublicKey) -> bytes:
        """The X25519 shared secret with ``peer_public_key`` (feed it to a KDF, never use it directly)."""
        return self._private.exchange(peer_public_key)

    def __repr__(self) -> str:
        return f"EncryptionKey(name={self.name!r}, key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("an EncryptionKey holds a private key and cannot be pickled or copied")


def _decode_raw_key(text: str, what: str) -> bytes:
    try:
        raw = b64decode_strict(text)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"{what} is not valid base64") from exc
    if len(raw) != _KEY_SIZE:
        raise KeyFormatError(f"{what} has {len(raw)} bytes, expected {_KEY_SIZE}")
    return raw


def _split_private(skey: str, prefix: str, what: str) -> tuple[str, str, bytes]:
    # Messages name the key by name and id only: the string itself is secret.
    if not skey.startswith(prefix):
        raise KeyFormatError(f"{what} does not start with {prefix!r}")
    parts = skey[len(prefix) :].strip().split("+", 2)
    if len(parts) != 3:
        raise KeyFormatError(f"{what} must have the form {prefix}<name>+<key id>+<base64 key>")
    name, key_id, b64 = parts
    if not is_valid_key_name(name):
        raise KeyFormatError(f"{what} has an invalid name")
    try:
        raw = b64decode_strict(b64)
    except (binascii.Error, ValueError):
        # No "from exc": the chained error could quote the secret input.
        raise KeyFormatError(f"{what} {name}+{key_id} is not valid base64") from None
    return name, key_id, raw
