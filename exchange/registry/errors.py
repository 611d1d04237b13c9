"""Errors raised by the trust registry and the keystore.

Lookups fail closed: an unknown agency, an unknown key or a key outside its validity is an error, never a
default::

    ExchangeError
    └── RegistryError                    agencies, keys, keystore
        ├── RegistryFileError            the registry file cannot be used (every problem with file and line)
        ├── UnknownIdentityError         no agency or service has this id
        │   └── UnknownAgencyError       no agency has this id
        ├── KeyRejectedError             a key cannot be used for this purpose at this time
        │   ├── UnknownKeyError          the identity has no key with this key id (or no encryption key)
        │   ├── KeyNotYetValidError      the time is before the key's valid_from
        │   ├── KeyExpiredError          the time is at or after the key's valid_until
        │   └── KeyRevokedError          the key was revoked at or before the time
        ├── NotAuthoritativeError        the agency is not the authoritative source of the record type
        └── KeystoreError                a key file is missing, exists already, is unreadable or too open
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange.errors import ExchangeError

__all__ = [
    "KeyExpiredError",
    "KeyNotYetValidError",
    "KeyRejectedError",
    "KeyRevokedError",
    "KeystoreError",
    "NotAuthoritativeError",
    "Problem",
    "RegistryError",
    "RegistryFileError",
    "UnknownAgencyError",
    "UnknownIdentityError",
    "UnknownKeyError",
]


class RegistryError(ExchangeError):
    """Something about agencies, keys or the keystore is wrong."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a registry file: where (file, line, field path) and what."""

    path: str | None
    line: int | None
    location: str
    message: str

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.path, self.line) if p is not None)
        parts = [p for p in (where, self.location, self.message) if p]
        return ": ".join(parts)


class RegistryFileError(RegistryError):
    """The registry file cannot be used; :attr:`problems` lists every problem found, each with file and line."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0] if self.problems else Problem(None, None, "", "invalid registry")
        self.path = first.path
        self.line = first.line
        super().__init__("\n".join(str(p) for p in self.problems) or str(first))


class UnknownIdentityError(RegistryError):
    """No agency or service in the registry has this id."""


class UnknownAgencyError(UnknownIdentityError):
    """No agency in the registry has this id."""


class KeyRejectedError(RegistryError):
    """A key cannot be used for this purpose at this time."""


class UnknownKeyError(KeyRejectedError):
    """The identity has no key with this key id (or no encryption key at all)."""


class KeyNotYetValidError(KeyRejectedError):
    """The time is before the key's ``valid_from``."""


class KeyExpiredError(KeyRejectedError):
    """The time is at or after the key's ``valid_until``."""


class KeyRevokedError(KeyRejectedError):
    """The key was revoked at or before the time (``revoked_at <= at``)."""


class NotAuthoritativeError(RegistryError):
    """The agency is not the authoritative source of the record type, or no agency is."""


class KeystoreError(RegistryError):
    """A key file is missing, exists already, cannot be read or is readable by others; the message says the fix."""
