"""The trust registry at run time: who is who, which key was valid when, who is authoritative for what.

Built once from ``policies/registry.yaml``; every lookup afterwards is a dictionary access on decoded keys, because
the router asks for a verification key for every batch it reads. Lookups fail closed with a typed error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import ValidationError

from exchange.crypto.errors import UnknownVerifierError
from exchange.crypto.keys import encode_public_key
from exchange.crypto.note import Verifier, Verifiers
from exchange.registry._yaml import format_location, parse, read
from exchange.registry.checks import decode_encryption_key, decode_signing_key, document_problems
from exchange.registry.errors import (
    KeyExpiredError,
    KeyNotYetValidError,
    KeyRevokedError,
    NotAuthoritativeError,
    Problem,
    RegistryError,
    RegistryFileError,
    UnknownAgencyError,
    UnknownIdentityError,
    UnknownKeyError,
)
from exchange.registry.models import Agency, EncryptionKeyEntry, Identity, KeyEntry, RegistryDocument, Service
from exchange.safeparse import YamlDocument

__all__ = ["Registry"]


class Registry:
    """Agencies and exchange services with their keys and authoritative record types. Immutable once built."""

    __slots__ = ("_agencies", "_authority", "_document", "_encryption", "_identities", "_signing", "_source")

    def __init__(self, document: RegistryDocument, *, source: str | None = None) -> None:
        """Index a validated document; raises :class:`RegistryFileError` for problems across entries."""
        problems = document_problems(document)
        if problems:
            raise RegistryFileError([Problem(source, None, format_location(loc), msg) for loc, msg in problems])
        self._document = document
        self._source = source
        self._agencies: dict[str, Agency] = {a.id: a for a in document.agencies}
        self._identities: dict[str, Identity] = {**self._agencies, **{s.id: s for s in document.services}}
        self._authority: dict[str, str] = {t: a.id for a in document.agencies for t in a.authoritative_for}
        self._signing: dict[str, dict[str, tuple[KeyEntry, Verifier]]] = {
            ident.id: {k.key_id: (k, decode_signing_key(ident.id, k)) for k in ident.signing_keys}
            for ident in self._identities.values()
        }
        self._encryption: dict[str, tuple[EncryptionKeyEntry, X25519PublicKey]] = {
            ident.id: (ident.encryption_key, decode_encryption_key(ident.id, ident.encryption_key))
            for ident in self._identities.values()
            if ident.encryption_key is not None
        }

    @classmethod
    def load(cls, path: Path | str) -> Registry:
        """Read and check a registry file; every problem is reported with the file and line.

        The file is read within the limits of :mod:`exchange.safeparse` (a regular file of at most 1 MiB, nesting
        at most 64 deep, no YAML aliases).
        """
        path = Path(path)
        return cls._from_document(read(path), str(path))

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> Registry:
        """Parse and check registry YAML; ``source`` names it in error messages."""
        return cls._from_document(parse(text, source), source)

    @classmethod
    def _from_document(cls, doc: YamlDocument, source: str | None) -> Registry:
        if doc.root is None:
            raise RegistryFileError([Problem(source, 1, "", "the registry is empty: it must list the agencies "
                                                            "(agencies: [...])")])
        problems = [Problem(source, line, key, "duplicate key") for line, key in doc.duplicates]
        try:
            document = RegistryDocument.model_validate(doc.data)
        except ValidationError as exc:
            problems += [
                Problem(source, doc.line_of(err["loc"]), format_location(err["loc"]), err["msg"])
                for err in exc.errors(include_url=False)
            ]
            raise RegistryFileError(problems) from None
        if not document.agencies:
            problems.append(Problem(source, doc.line_of(("agencies",)), "agencies", "the registry lists no agencies"))
        problems += [
            Problem(source, doc.line_of(loc), format_location(loc), msg) for loc, msg in document_problems(document)
        ]
        if problems:
            raise RegistryFileError(problems)
        return cls(document, source=source)

    @property
    def document(self) -> RegistryDocument:
        """The registry as loaded."""
        return self._document

    @property
    def source(self) -> str | None:
        """The file the registry came from, if any."""
        return self._source

    @property
    def agencies(self) -> tuple[Agency, ...]:
        """Every agency, in file order."""
        return self._document.agencies

    @property
    def services(self) -> tuple[Service, ...]:
        """Every exchange-operated identity, in file order."""
        return self._document.services

    def agency(self, agency_id: str) -> Agency:
        """The agency with this id; :class:`UnknownAgencyError` otherwise."""
        try:
            return self._agencies[agency_id]
        except KeyError:
            raise UnknownAgencyError(f"unknown agency {agency_id!r}") from None

    def identity(self, identity_id: str) -> Identity:
        """The agency or service with this id; :class:`UnknownIdentityError` otherwise."""
        try:
            return self._identities[identity_id]
        except KeyError:
            raise UnknownIdentityError(f"unknown identity {identity_id!r}") from None

    def verifier(self, identity_id: str, key_id: str, at: datetime) -> Verifier:
        """The note verifier of ``identity_id``'s signing key ``key_id``, checked for validity at ``at``.

        Raises :class:`UnknownIdentityError`, :class:`UnknownKeyError`, :class:`KeyNotYetValidError`,
        :class:`KeyExpiredError` or :class:`KeyRevokedError`. A key revoked *after* ``at`` still verifies what
        was signed before the revocation.
        """
        try:
            keys = self._signing[identity_id]
        except KeyError:
            raise UnknownIdentityError(f"unknown identity {identity_id!r}") from None
        try:
            entry, verifier = keys[key_id]
        except KeyError:
            raise UnknownKeyError(f"{identity_id} has no signing key {key_id!r}") from None
        _check_validity(f"signing key {identity_id}+{key_id}", entry, at)
        return verifier

    def verification_key(self, identity_id: str, key_id: str, at: datetime) -> Ed25519PublicKey:
        """The Ed25519 public key of ``identity_id``'s key ``key_id`` if valid at ``at`` (see :meth:`verifier`)."""
        return self.verifier(identity_id, key_id, at).public_key

    def note_verifiers(self, at: datetime, *, identities: Iterable[str] | None = None) -> Verifiers:
        """A trust store for :func:`~exchange.crypto.note.open_note`: keys valid at ``at``, of ``identities`` only.

        A signature by a key that is unknown, not valid at ``at`` or not held by one of ``identities`` is ignored;
        if no other signature verifies, the note is refused and the reason is chained on each ignored signature.
        """
        return _RegistryVerifiers(self, at, None if identities is None else frozenset(identities))

    def authoritative_agency(self, record_type: str) -> str:
        """The id of the one agency authoritative for ``record_type``; :class:`NotAuthoritativeError` if none."""
        try:
            return self._authority[record_type]
        except KeyError:
            raise NotAuthoritativeError(f"no agency is authoritative for {record_type!r}") from None

    def require_authoritative(self, agency_id: str, record_type: str) -> None:
        """Check that ``agency_id`` may publish ``record_type``; raises :class:`NotAuthoritativeError`."""
        owner = self._authority.get(record_type)
        if owner != agency_id:
            source = f"{owner!r} is" if owner else "no agency is"
            raise NotAuthoritativeError(f"{agency_id!r} is not authoritative for {record_type!r} ({source})")

    def encryption_key(self, identity_id: str, *, at: datetime | None = None) -> X25519PublicKey:
        """The X25519 public key deliveries to ``identity_id`` are encrypted for.

        With ``at``, the key must also be valid then (the router passes the time it wraps a data key).
        Raises :class:`UnknownIdentityError`, :class:`UnknownKeyError` (no encryption key) or a validity error.
        """
        entry, key = self._encryption_record(identity_id)
        if at is not None:
            _check_validity(f"encryption key {identity_id}+{entry.key_id}", entry, at)
        return key

    def encryption_key_entry(self, identity_id: str) -> EncryptionKeyEntry:
        """The registry entry (key id, validity) of ``identity_id``'s encryption key."""
        return self._encryption_record(identity_id)[0]

    def canonical(self) -> dict[str, Any]:
        """A JSON-able canonical form for policy bundles: sorted, times in UTC, public keys as raw base64."""
        return {
            "agencies": [self._canonical_identity(a) for a in sorted(self.agencies, key=lambda a: a.id)],
            "services": [self._canonical_identity(s) for s in sorted(self.services, key=lambda s: s.id)],
        }

    def _encryption_record(self, identity_id: str) -> tuple[EncryptionKeyEntry, X25519PublicKey]:
        if identity_id not in self._identities:
            raise UnknownIdentityError(f"unknown identity {identity_id!r}")
        try:
            return self._encryption[identity_id]
        except KeyError:
            raise UnknownKeyError(f"{identity_id} has no encryption key") from None

    def _canonical_identity(self, identity: Identity) -> dict[str, Any]:
        out: dict[str, Any] = {"id": identity.id}
        if isinstance(identity, Agency):
            out |= {
                "legal_name": identity.legal_name,
                "code": identity.code,
                "authoritative_for": sorted(identity.authoritative_for),
            }
        else:
            out["description"] = identity.description
        keys = self._signing[identity.id]
        out["signing_keys"] = [
            _canonical_key(entry, encode_public_key(verifier.public_key))
            for entry, verifier in (keys[k] for k in sorted(keys))
        ]
        enc = self._encryption.get(identity.id)
        out["encryption_key"] = None if enc is None else _canonical_key(enc[0], encode_public_key(enc[1]))
        return out

    def __repr__(self) -> str:
        return f"Registry(source={self._source!r}, agencies={len(self.agencies)}, services={len(self.services)})"


class _RegistryVerifiers:
    __slots__ = ("_at", "_identities", "_registry")

    def __init__(self, registry: Registry, at: datetime, identities: frozenset[str] | None) -> None:
        self._registry = registry
        self._at = at
        self._identities = identities

    def verifier(self, name: str, key_id: str) -> Verifier:
        if self._identities is not None and name not in self._identities:
            raise UnknownVerifierError(name, key_id, "not an expected signer")
        try:
            return self._registry.verifier(name, key_id, self._at)
        except RegistryError as exc:
            raise UnknownVerifierError(name, key_id, str(exc)) from exc


def _check_validity(what: str, entry: KeyEntry, at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the time a key is checked at must be timezone-aware")
    if entry.revoked_at is not None and entry.revoked_at <= at:
        raise KeyRevokedError(f"{what} was revoked at {_utc(entry.revoked_at)} (checked at {_utc(at)})")
    if at < entry.valid_from:
        raise KeyNotYetValidError(f"{what} is valid from {_utc(entry.valid_from)} (checked at {_utc(at)})")
    if entry.valid_until is not None and entry.valid_until <= at:
        raise KeyExpiredError(f"{what} expired at {_utc(entry.valid_until)} (checked at {_utc(at)})")


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _canonical_key(entry: KeyEntry, public_key: str) -> dict[str, Any]:
    return {
        "key_id": entry.key_id,
        "public_key": public_key,
        "valid_from": _utc(entry.valid_from),
        "valid_until": None if entry.valid_until is None else _utc(entry.valid_until),
        "revoked_at": None if entry.revoked_at is None else _utc(entry.revoked_at),
    }
