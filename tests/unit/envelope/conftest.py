"""A registry with fresh keys (in memory) and the shipped catalogue, for envelope tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from exchange.crypto.keys import Signer
from exchange.registry import Registry
from exchange.schemas import Catalogue

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

RegistryFactory = Callable[..., Registry]


@pytest.fixture(scope="session")
def catalogue(repo_root: Path) -> Catalogue:
    return Catalogue.load(repo_root / "schemas")


@pytest.fixture(scope="session")
def signers(repo_root: Path) -> dict[str, Signer]:
    document = yaml.safe_load((repo_root / "policies" / "registry.yaml").read_text())
    return {a["id"]: Signer.generate(a["id"]) for a in document["agencies"]}


@pytest.fixture(scope="session")
def make_registry(repo_root: Path, signers: dict[str, Signer]) -> RegistryFactory:
    """``make_registry(**overrides)``: the shipped registry with each agency's key; ``overrides`` maps an agency
    to extra key-entry fields (``revoked_at=…``) or to ``None`` to leave it without keys."""
    base = yaml.safe_load((repo_root / "policies" / "registry.yaml").read_text())

    def make(**overrides: dict[str, Any] | None) -> Registry:
        document = yaml.safe_load(yaml.safe_dump(base))
        for agency in document["agencies"]:
            signer = signers[agency["id"]]
            extra = overrides.get(agency["id"], {})
            if extra is None:
                continue
            entry = {"key_id": signer.key_id, "public_key": signer.verifier_key(),
                     "valid_from": (T0 - timedelta(days=365)).isoformat(), **extra}
            agency["signing_keys"] = [entry]
        return Registry.from_yaml(yaml.safe_dump(document), source="test-registry")

    return make
