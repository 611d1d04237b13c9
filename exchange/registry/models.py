"""The registry file's shape: agencies and exchange services, their keys and their authoritative record types.

These models check each value on its own (slugs, key ids, time zones); checks across entries (one source per
record type, key ids that match their keys) live in :mod:`exchange.registry.checks`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

__all__ = [
    "Agency",
    "EncryptionKeyEntry",
    "Identity",
    "KeyEntry",
    "RegistryDocument",
    "Service",
    "SigningKeyEntry",
]

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)]
_NAME = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
RecordType = Annotated[str, StringConstraints(pattern=rf"^{_NAME}\.{_NAME}$")]


def _key_id_is_text(value: Any) -> Any:
    # YAML reads an unquoted 12345678 as a number (and 1e345678 as a float): say how to fix it.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError("key_id_not_text", "key ids are text: quote them in YAML, e.g. key_id: '12345678'")
    return value


KeyId = Annotated[str, BeforeValidator(_key_id_is_text), StringConstraints(pattern=r"^[0-9a-f]{8}$")]
AgencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,8}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyEntry(_Model):
    """A public key with its validity: usable from ``valid_from`` until ``valid_until`` unless revoked."""

    key_id: KeyId = Field(description="8 hex digits; for signing keys the C2SP signed-note key id")
    public_key: str = Field(min_length=1)
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = Field(default=None, description="exclusive end of validity")
    revoked_at: AwareDatetime | None = Field(
        default=None, description="from this instant on the key is refused; signatures made before still verify"
    )


class SigningKeyEntry(KeyEntry):
    """An Ed25519 signing key: ``public_key`` is the C2SP verifier key string or base64 of the 32 raw bytes."""


class EncryptionKeyEntry(KeyEntry):
    """An X25519 encryption key: ``public_key`` is base64 of the 32 raw bytes."""


class Agency(_Model):
    """An agency: publishes the record types it is authoritative for and receives what it is entitled to."""

    id: Slug
    legal_name: str = Field(min_length=1)
    code: AgencyCode
    authoritative_for: tuple[RecordType, ...] = ()
    signing_keys: tuple[SigningKeyEntry, ...] = ()
    encryption_key: EncryptionKeyEntry | None = Field(
        default=None, description="absent for agencies that only publish and receive nothing"
    )


class Service(_Model):
    """An identity the exchange itself operates (router, consent manager, audit sequencer)."""

    id: Slug
    description: str = ""
    signing_keys: tuple[SigningKeyEntry, ...] = ()
    encryption_key: EncryptionKeyEntry | None = None


Identity = Agency | Service
"""Anything that holds keys: an agency or an exchange service."""


class RegistryDocument(_Model):
    """The whole registry file."""

    agencies: tuple[Agency, ...] = ()
    services: tuple[Service, ...] = ()
