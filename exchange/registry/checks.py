"""Checks across registry entries, and the decoding of registry keys.

Pure functions over a :class:`~exchange.registry.models.RegistryDocument`: each problem comes back with the field
path it concerns (as pydantic reports it, ``("agencies", 3, "signing_keys", 0, "key_id")``) so the loader can
point at the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from exchange.crypto.errors import KeyFormatError
from exchange.crypto.keys import decode_encryption_public_key, decode_signing_public_key, encryption_key_id
from exchange.crypto.note import Verifier
from exchange.registry.models import EncryptionKeyEntry, Identity, KeyEntry, RegistryDocument, SigningKeyEntry

__all__ = ["Location", "decode_encryption_key", "decode_signing_key", "document_problems"]

Location = tuple[str | int, ...]

_RAW_KEY_B64_LENGTH = 44


def decode_signing_key(identity_id: str, entry: SigningKeyEntry) -> Verifier:
    """The verifier of a signing key entry; raises :class:`KeyFormatError` if it cannot be decoded or does not match.

    The public key is a C2SP verifier key string (whose name must be the identity id) or base64 of the raw key.
    """
    # Base64 of 32 raw bytes is always 44 characters; a verifier key string is always longer.
    if len(entry.public_key) == _RAW_KEY_B64_LENGTH:
        verifier = Verifier(identity_id, decode_signing_public_key(entry.public_key))
    else:
        verifier = Verifier.from_key_string(entry.public_key)
    if verifier.name != identity_id:
        raise KeyFormatError(f"verifier key is named {verifier.name!r}, not {identity_id!r}")
    if verifier.key_id != entry.key_id:
        raise KeyFormatError(f"key id {entry.key_id} does not match the public key (expected {verifier.key_id})")
    return verifier


def decode_encryption_key(identity_id: str, entry: EncryptionKeyEntry) -> X25519PublicKey:
    """The X25519 public key of an encryption key entry; raises :class:`KeyFormatError` if it does not match."""
    key = decode_encryption_public_key(entry.public_key)
    expected = encryption_key_id(identity_id, key)
    if expected != entry.key_id:
        raise KeyFormatError(f"key id {entry.key_id} does not match the public key (expected {expected})")
    return key


def document_problems(document: RegistryDocument) -> list[tuple[Location, str]]:
    """Every problem across entries: duplicate ids, two sources for one type, keys that do not match."""
    return [*_identity_problems(document), *_authority_problems(document), *_key_problems(document)]


def _identity_problems(document: RegistryDocument) -> Iterator[tuple[Location, str]]:
    first: dict[str, str] = {}
    for section, identities in _sections(document):
        for i, identity in enumerate(identities):
            where = f"{section}[{i}]"
            if identity.id in first:
                yield (section, i, "id"), f"duplicate identity id {identity.id!r} (first at {first[identity.id]})"
            else:
                first[identity.id] = where


def _authority_problems(document: RegistryDocument) -> Iterator[tuple[Location, str]]:
    source: dict[str, str] = {}
    for i, agency in enumerate(document.agencies):
        for j, record_type in enumerate(agency.authoritative_for):
            owner = source.setdefault(record_type, agency.id)
            loc: Location = ("agencies", i, "authoritative_for", j)
            if owner == agency.id and agency.authoritative_for.index(record_type) != j:
                yield loc, f"record type {record_type!r} is listed twice"
            elif owner != agency.id:
                yield loc, (
                    f"record type {record_type!r} already has authoritative agency {owner!r}: "
                    "once-only needs exactly one source per type"
                )


def _key_problems(document: RegistryDocument) -> Iterator[tuple[Location, str]]:
    for section, identities in _sections(document):
        for i, identity in enumerate(identities):
            seen: set[str] = set()
            for k, entry in enumerate(identity.signing_keys):
                loc: Location = (section, i, "signing_keys", k)
                yield from _validity_problems(loc, entry)
                if entry.key_id in seen:
                    yield (*loc, "key_id"), f"duplicate signing key id {entry.key_id}"
                seen.add(entry.key_id)
                try:
                    decode_signing_key(identity.id, entry)
                except KeyFormatError as exc:
                    yield (*loc, "public_key"), str(exc)
            if identity.encryption_key is not None:
                loc = (section, i, "encryption_key")
                yield from _validity_problems(loc, identity.encryption_key)
                try:
                    decode_encryption_key(identity.id, identity.encryption_key)
                except KeyFormatError as exc:
                    yield (*loc, "public_key"), str(exc)


def _sections(document: RegistryDocument) -> tuple[tuple[str, Sequence[Identity]], ...]:
    return ("agencies", document.agencies), ("services", document.services)


def _validity_problems(loc: Location, entry: KeyEntry) -> Iterator[tuple[Location, str]]:
    if entry.valid_until is not None and entry.valid_until <= entry.valid_from:
        yield (*loc, "valid_until"), (
            f"valid_until {entry.valid_until.isoformat()} is not after valid_from {entry.valid_from.isoformat()}"
        )
