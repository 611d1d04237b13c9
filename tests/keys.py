"""Registries with freshly generated keys, for tests (no keystore on disk, nothing shipped)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from exchange.crypto.keys import Signer
from exchange.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def shipped_registry_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "policies" / "registry.yaml").read_text())
    return document


def identity_signers() -> dict[str, Signer]:
    """A fresh signing key for every agency and service of the shipped registry."""
    document = shipped_registry_document()
    ids = [a["id"] for a in document["agencies"]] + [s["id"] for s in document.get("services", [])]
    return {i: Signer.generate(i) for i in ids}


def registry_with_keys(signers: dict[str, Signer], *, valid_from: datetime = T0 - timedelta(days=365),
                       **overrides: dict[str, Any] | None) -> Registry:
    """The shipped registry with each identity's key from ``signers``; ``overrides`` maps an identity to extra
    key-entry fields (``revoked_at=…``) or to ``None`` to leave it without keys."""
    document = shipped_registry_document()
    for section in ("agencies", "services"):
        for identity in document.get(section, []):
            extra = overrides.get(identity["id"], {})
            if extra is None or identity["id"] not in signers:
                continue
            signer = signers[identity["id"]]
            identity["signing_keys"] = [{"key_id": signer.key_id, "public_key": signer.verifier_key(),
                                         "valid_from": valid_from.isoformat(), **extra}]
    return Registry.from_yaml(yaml.safe_dump(document), source="test-registry")
