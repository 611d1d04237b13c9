"""The sink runtime on the real broker: a department's verified deliveries written in batches, committed only
after the write, a refused record dead-lettered while the rest is written, passing failures retried."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from connectors.sdk import BadRecord, ConnectorConfig, Retryable, Sink, SinkRecord
from connectors.sdk.sink_runtime import SinkRunner
from exchange.metrics import REGISTRY
from tests.integration.router_world import RunningRouter, World

TYPE = "population.address-changed"
RECIPIENT = "tax-board"


class TableSink(Sink):
    """Upserts into a dict keyed by (event id, agreement id); optionally refuses one event or fails once."""

    def __init__(self, refuse: str | None = None, fail_first: int = 0) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = 0
        self.refuse, self.fail_first = refuse, fail_first

    def write(self, batch: Sequence[SinkRecord]) -> None:
        self.writes += 1
        if self.fail_first:
            self.fail_first -= 1
            raise Retryable("the database is restarting")
        for record in batch:
            if record.event_id == self.refuse:
                raise BadRecord("the row violates a constraint", record=record)
        for record in batch:
            self.rows[record.idempotency_key] = dict(record.fields)


@pytest.fixture(scope="module")
def routed(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[World, list[str]]:
    world = World.create(bootstrap, tmp_path_factory.mktemp("sink"))
    ids = world.publish("population-registry", TYPE, world.records(TYPE, 60, seed=5, address_protected=False))
    router = RunningRouter(world, router_id="sink-router", group="sink-routers")
    try:
        router.wait_events(len(ids))
    finally:
        router.stop()
    return world, ids


def _config(name: str) -> ConnectorConfig:
    return ConnectorConfig(name=name, kind="test", max_batch=25)


def test_every_delivery_is_written_once_and_committed(routed: tuple[World, list[str]]) -> None:
    world, ids = routed
    sink = TableSink(fail_first=1)
    stats = SinkRunner(sink, _config("sink-one"), recipient=RECIPIENT, settings=world.settings).run(max_idle_s=1.0)
    assert {event for event, _ in sink.rows} == set(ids)
    assert stats.written == len(ids) == len(sink.rows)
    assert stats.retries == 1
    row = next(iter(sink.rows.values()))
    assert "street_address" in row  # the fields the tax board's agreement releases
    assert "address_protected" not in row  # and nothing else
    # Committed after the write: a restart writes nothing again.
    again = TableSink()
    assert SinkRunner(again, _config("sink-one"), recipient=RECIPIENT, settings=world.settings).run(
        max_idle_s=1.0).written == 0
    assert again.writes == 0


def test_a_refused_record_is_dead_lettered_and_the_rest_written(routed: tuple[World, list[str]]) -> None:
    world, ids = routed
    sink = TableSink(refuse=ids[10])
    stats = SinkRunner(sink, _config("sink-two"), recipient=RECIPIENT, settings=world.settings).run(max_idle_s=1.0)
    assert {event for event, _ in sink.rows} == set(ids) - {ids[10]}
    assert stats.dead_letters == 1
    (letter,) = [q for q in world.quarantined() if q["quarantined_by"] == "connector:sink-two"]
    assert letter["original_key"] == ids[10].encode()
    assert letter["detail"] == "the row violates a constraint"
    assert b'"record_type": "population.address-changed"' in letter["original_value"]


def _lag_gauge(name: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("exchange_connector_lag_records", {"connector": name, "partition": str(partition)})


def test_the_consumer_lag_is_measured_per_partition(routed: tuple[World, list[str]]) -> None:
    """The lag gauge, per partition of delivery.<recipient>: what is not yet written after one batch, none once
    the sink has written everything."""
    world, ids = routed  # one delivery to the tax board for each event
    runner = SinkRunner(TableSink(), ConnectorConfig(name="sink-lag", kind="test", max_batch=5),
                        recipient=RECIPIENT, settings=world.settings)
    first = 0
    for _ in range(60):  # a poll waits half a second; the first ones may come before the partitions are assigned
        if (first := runner.step()):
            break
    assert first == 5
    lags = runner.lag.update(now=True)
    assert lags is not None
    assert set(lags) == set(range(6))  # every partition of delivery.tax-board
    assert len(ids) - 5 <= sum(lags.values())
    assert {p: _lag_gauge("sink-lag", p) for p in lags} == {p: float(n) for p, n in lags.items()}
    stats = runner.run(max_idle_s=1.0)
    assert stats.written == len(ids)  # the first batch and the rest
    assert {p: _lag_gauge("sink-lag", p) for p in lags} == dict.fromkeys(lags, 0.0)
