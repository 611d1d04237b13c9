"""Fresh keys, a registry with them and the shipped catalogue, for delivery tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from exchange.delivery import DeliveryOpener, DeliverySealer
from exchange.registry import Registry
from exchange.schemas import Catalogue
from tests.unit.delivery.support import PSEUDO, T0, Keys


class Clock:
    """A clock the test moves by hand (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def catalogue(repo_root: Path) -> Catalogue:
    return Catalogue.load(repo_root / "schemas")


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def registry(keys: Keys) -> Registry:
    return keys.registry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sealer(keys: Keys, registry: Registry, clock: Clock) -> DeliverySealer:
    return DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO, clock=clock)


@pytest.fixture
def opener(keys: Keys, registry: Registry, catalogue: Catalogue) -> Callable[[str], DeliveryOpener]:
    """``opener(recipient)``: a fresh opener with that recipient's key."""

    def make(recipient: str) -> DeliveryOpener:
        return DeliveryOpener(recipient, keys.encryption[recipient], registry, catalogue)

    return make
