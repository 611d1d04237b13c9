"""A fresh exchange-consent key in a copy of the shipped registry, the shipped catalogue and policies."""

from __future__ import annotations

import pytest

from exchange.crypto.keys import Signer
from exchange.policy import PolicyIndex
from exchange.registry import Registry
from exchange.schemas import Catalogue

from .support import compile_shipped, load_catalogue, make_registry


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer.generate("exchange-consent")


@pytest.fixture(scope="session")
def registry(signer: Signer) -> Registry:
    return make_registry(signer)


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="session")
def policies(catalogue: Catalogue, registry: Registry) -> PolicyIndex:
    return compile_shipped(catalogue, registry)
