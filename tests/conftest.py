"""Shared fixtures. Tests under tests/integration are marked ``integration`` and get a real broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# Property tests assert behaviour, not speed: a per-example deadline only fails them on a loaded machine.
settings.register_profile("exchange", deadline=None)
settings.load_profile("exchange")

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
