"""Registry documents for tests: a small registry, and keys to put in it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from exchange.crypto.keys import EncryptionKey, Signer, encode_public_key

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def small_registry() -> dict[str, Any]:
    """Two publishing agencies, one recipient, one service; no keys."""
    return {
        "agencies": [
            {
                "id": "population-registry",
                "legal_name": "Population Register Centre",
                "code": "PRC",
                "authoritative_for": ["population.address-changed", "population.person-registered"],
                "signing_keys": [],
            },
            {
                "id": "tax-board",
                "legal_name": "Tax and Customs Board",
                "code": "TCB",
                "authoritative_for": ["tax.income-assessed"],
                "signing_keys": [],
            },
            {"id": "statistics-office", "legal_name": "Statistics Office", "code": "STO", "signing_keys": []},
        ],
        "services": [{"id": "exchange-audit", "description": "sequencer", "signing_keys": []}],
    }


def signing_entry(signer: Signer, valid_from: datetime = T0, **validity: datetime) -> dict[str, Any]:
    """A registry signing key entry for ``signer`` (public key as the C2SP verifier key string)."""
    entry: dict[str, Any] = {
        "key_id": signer.key_id,
        "public_key": signer.verifier_key(),
        "valid_from": valid_from.isoformat(),
    }
    entry.update({k: v.isoformat() for k, v in validity.items()})
    return entry


def encryption_entry(key: EncryptionKey, valid_from: datetime = T0, **validity: datetime) -> dict[str, Any]:
    """A registry encryption key entry for ``key``."""
    entry: dict[str, Any] = {
        "key_id": key.key_id,
        "public_key": encode_public_key(key.public_key),
        "valid_from": valid_from.isoformat(),
    }
    entry.update({k: v.isoformat() for k, v in validity.items()})
    return entry
