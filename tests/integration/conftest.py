"""The real Apache Kafka for integration tests.

If ``EXCHANGE_BOOTSTRAP`` is set, the tests use that cluster. Otherwise the session starts the local broker
(`exchange broker up`) unless one is already running, and stops it afterwards only if it started it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.sdk.testing import plugin
from tests.integration.router_world import CREATED

bootstrap = plugin.bootstrap
"""The session's broker: the conformance kit's own fixture."""


@pytest.fixture(scope="module", autouse=True)
def _delete_worlds() -> Iterator[None]:
    """After each test module, delete the topics of the worlds it created."""
    yield
    while CREATED:
        CREATED.pop().delete_topics()


@pytest.fixture
def unique() -> str:
    """A fresh suffix, so tests never see each other's topics or groups."""
    return uuid.uuid4().hex[:10]


def _has_leaders(admin: AdminClient, topic: str, partitions: int) -> bool:
    found = admin.list_topics(topic, timeout=10).topics.get(topic)
    return (found is not None and found.error is None and len(found.partitions) == partitions
            and all(p.leader >= 0 for p in found.partitions.values()))


@pytest.fixture
def make_topic(bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create throw-away topics: ``make_topic(name, partitions=1)``; deleted after the test."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    created: list[str] = []

    def make(name: str, partitions: int = 1) -> str:
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        futures[name].result(timeout=30)
        created.append(name)
        deadline = time.monotonic() + 30
        while not _has_leaders(admin, name, partitions):  # creation returns before metadata has settled
            assert time.monotonic() < deadline, f"topic {name} has no leaders after 30 s"
            time.sleep(0.05)  # polling cluster metadata; the condition is checked above
        return name

    yield make
    if created:
        for future in admin.delete_topics(created, operation_timeout=30).values():
            future.result(timeout=30)
