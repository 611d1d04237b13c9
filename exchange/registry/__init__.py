"""The trust registry: agencies and exchange services, their keys, and who is authoritative for which record type.

``Registry.load("policies/registry.yaml")`` checks the file (reporting every problem with file and line) and
answers lookups that fail closed. Private keys live in a :class:`Keystore` directory, never in the registry.
"""

from __future__ import annotations

from exchange.registry.errors import (
    KeyExpiredError,
    KeyNotYetValidError,
    KeyRejectedError,
    KeyRevokedError,
    KeystoreError,
    NotAuthoritativeError,
    Problem,
    RegistryError,
    RegistryFileError,
    UnknownAgencyError,
    UnknownIdentityError,
    UnknownKeyError,
)
from exchange.registry.keystore import DemoKeystore, Keystore, PublicEntry, make_demo_keystore
from exchange.registry.models import (
    Agency,
    EncryptionKeyEntry,
    Identity,
    KeyEntry,
    RegistryDocument,
    Service,
    SigningKeyEntry,
)
from exchange.registry.registry import Registry

__all__ = [
    "Agency",
    "DemoKeystore",
    "EncryptionKeyEntry",
    "Identity",
    "KeyEntry",
    "KeyExpiredError",
    "KeyNotYetValidError",
    "KeyRejectedError",
    "KeyRevokedError",
    "Keystore",
    "KeystoreError",
    "NotAuthoritativeError",
    "Problem",
    "PublicEntry",
    "Registry",
    "RegistryDocument",
    "RegistryError",
    "RegistryFileError",
    "Service",
    "SigningKeyEntry",
    "UnknownAgencyError",
    "UnknownIdentityError",
    "UnknownKeyError",
    "make_demo_keystore",
]
