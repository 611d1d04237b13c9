"""A pytest plugin for a connector package's own tests: the ``bootstrap`` fixture the conformance kit needs.

In the package's ``conftest.py``::

    pytest_plugins = ["connectors.sdk.testing.plugin"]

``bootstrap`` is ``EXCHANGE_BOOTSTRAP`` (which must answer), or else the local broker of ``exchange broker up``,
started for the session if none is running (and then stopped after it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange.kafka.local import LocalBroker, broker_answers
from exchange.settings import get_settings

__all__ = ["bootstrap"]


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """The Kafka cluster the kit's tests run on."""
    settings = get_settings()
    if settings.bootstrap:
        if not broker_answers(settings.bootstrap, timeout=15):
            pytest.fail(f"EXCHANGE_BOOTSTRAP={settings.bootstrap} does not answer")
        yield settings.bootstrap
        return
    broker = LocalBroker(settings.cache_dir, settings.kafka_version, heap=settings.broker_heap)
    started = broker.state() is None
    state = broker.up()
    yield state.bootstrap
    if started:
        broker.down()
