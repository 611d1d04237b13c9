"""A registry with fresh keys (in memory) and the shipped catalogue, for envelope tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exchange.crypto.keys import Signer
from exchange.registry import Registry
from exchange.schemas import Catalogue
from tests.keys import T0, identity_signers, registry_with_keys

__all__ = ["T0", "RegistryFactory"]

RegistryFactory = Callable[..., Registry]


@pytest.fixture(scope="session")
def catalogue(repo_root: Path) -> Catalogue:
    return Catalogue.load(repo_root / "schemas")


@pytest.fixture(scope="session")
def signers() -> dict[str, Signer]:
    return identity_signers()


@pytest.fixture(scope="session")
def make_registry(signers: dict[str, Signer]) -> RegistryFactory:
    """``make_registry(**overrides)``: the shipped registry with each identity's key (see tests.keys)."""

    def make(**overrides: dict[str, Any] | None) -> Registry:
        return registry_with_keys(signers, **overrides)

    return make
