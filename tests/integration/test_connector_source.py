"""The source runtime on the real broker: records published exactly once with the source's offset in the same
transaction, bad records dead-lettered while the stream goes on, a restart resuming from the committed offset."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import NewTopic

from connectors.sdk import BadRecord, ConnectorConfig, Offset, OffsetError, Source, SourceRecord
from connectors.sdk.source_runtime import FIRST_BACKOFF_S, SourceRunner, ToleranceExceededError, offsets_topic
from exchange.envelope import EnvelopeVerifier
from exchange.kafka import make_admin
from tests.integration.router_world import World

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
TYPE = "population.address-changed"
AGENCY = "population-registry"


class ListSource(Source):
    """Records from a list; the offset is the index of the last record read. Index ``bad`` cannot be read."""

    def __init__(self, records: Sequence[dict[str, Any]], bad: frozenset[int] = frozenset(), batch: int = 40):
        self.records, self.bad, self.batch = list(records), bad, batch
        self.acknowledged: list[Offset] = []
        self.opened = self.closed = 0

    def open(self, context: object) -> None:
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def poll(self, after: Offset | None) -> Iterator[SourceRecord]:
        start = 0 if after is None else int(after["i"]) + 1
        for i in range(start, min(start + self.batch, len(self.records))):
            if i in self.bad:
                raise BadRecord(f"line {i} is not CSV", offset={"i": i}, original=b"\x00garbage")
            yield SourceRecord(TYPE, self.records[i], {"i": i})

    def acknowledge(self, upto: Offset) -> None:
        self.acknowledged.append(dict(upto))


def _config(name: str, **extra: Any) -> ConnectorConfig:
    return ConnectorConfig(name=name, kind="test", **{"max_batch": 100, **extra})


def _events(world: World) -> list[str]:
    verifier = EnvelopeVerifier(world.context.registry, world.context.catalogue)
    return [verifier.verify(r).attributes.id for r in world.read(f"ingress.{TYPE}")]


def _letters(world: World, name: str) -> list[dict[str, Any]]:
    return [q for q in world.quarantined() if q["quarantined_by"] == f"connector:{name}"]


def test_records_are_published_once_and_a_restart_resumes(bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path)
    records = world.records(TYPE, 250, seed=1)
    source = ListSource(records, bad=frozenset({7, 130}))
    runner = SourceRunner(source, _config("list-one"), agency=AGENCY, settings=world.settings)
    assert runner.position is None
    stats = runner.run(max_idle_s=0.5)
    assert (stats.records, stats.dead_letters) == (248, 2)
    assert (source.opened, source.closed) == (1, 1)
    assert len(set(_events(world))) == len(_events(world)) == 248
    letters = _letters(world, "list-one")
    assert [q["reason_code"] for q in letters] == ["BAD_RECORD", "BAD_RECORD"]
    assert [q["original_key"] for q in letters] == [b'{"i":7}', b'{"i":130}']
    assert letters[0]["original_value"] == b"\x00garbage"
    assert source.acknowledged[-1] == {"i": 249}
    assert [r.value for r in world.read(offsets_topic("list-one"))][-1] == b'{"i":249}'

    # A restart reads the committed offset and, with nothing new, emits nothing.
    again = ListSource(records)
    restarted = SourceRunner(again, _config("list-one"), agency=AGENCY, settings=world.settings)
    assert restarted.position == {"i": 249}
    assert restarted.run(max_idle_s=0.3).records == 0
    assert len(_events(world)) == 248


def test_an_invalid_record_is_dead_lettered_and_the_rest_goes_on(bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path)
    records = world.records(TYPE, 20, seed=2)
    records[5] = {**records[5], "postal_code": 12345}  # not a string
    runner = SourceRunner(ListSource(records), _config("list-two"), agency=AGENCY, settings=world.settings)
    stats = runner.run(max_idle_s=0.3)
    assert (stats.records, stats.dead_letters) == (19, 1)
    (letter,) = _letters(world, "list-two")
    assert letter["reason_code"] == "INVALID_RECORD"
    assert "field 'postal_code': expected string, got int" in letter["detail"]
    assert "12345" not in letter["detail"]  # the value is not repeated in the reason


def test_tolerance_none_stops_at_the_first_bad_record(bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path)
    records = world.records(TYPE, 30, seed=3)
    runner = SourceRunner(ListSource(records, bad=frozenset({12})), _config("list-three", errors_tolerance="none"),
                          agency=AGENCY, settings=world.settings)
    with pytest.raises(ToleranceExceededError):
        runner.run(max_idle_s=0.3)
    assert len(_events(world)) == 12  # the records before it
    assert len(_letters(world, "list-three")) == 1
    assert runner.position == {"i": 12}


def test_a_corrupt_committed_offset_is_a_clear_error(bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path)
    SourceRunner(ListSource([]), _config("list-four"), agency=AGENCY, settings=world.settings)  # makes the topic
    producer = world.raw_producer()
    producer.produce(offsets_topic("list-four"), b"{not json", b"list-four", partition=0)
    producer.flush()
    with pytest.raises(OffsetError, match="corrupt"):
        SourceRunner(ListSource([]), _config("list-four"), agency=AGENCY, settings=world.settings)


def test_reset_offset_moves_where_a_source_resumes(bootstrap: str, tmp_path: Path) -> None:
    """`exchange connector reset-offset` (with the connector's own transactional id) sets the committed offset."""
    world = World.create(bootstrap, tmp_path)
    records = world.records(TYPE, 10, seed=4)
    SourceRunner(ListSource(records), _config("list-five"), agency=AGENCY, settings=world.settings).run(
        max_idle_s=0.3)
    env = {**os.environ, **world.env()}
    done = subprocess.run([EXCHANGE, "connector", "reset-offset", "list-five", "--to", '{"i": 4}'], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    resumed = SourceRunner(ListSource(records), _config("list-five"), agency=AGENCY, settings=world.settings)
    assert resumed.position == {"i": 4}
    assert resumed.run(max_idle_s=0.3).records == 5  # 5 to 9 again: an operator's choice, made explicit
    done = subprocess.run([EXCHANGE, "connector", "reset-offset", "list-five", "--from-start"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert SourceRunner(ListSource(records), _config("list-five"), agency=AGENCY,
                        settings=world.settings).position is None


class WatchedListSource(ListSource):
    """A ListSource that records where each poll starts, and when."""

    def __init__(self, records: Sequence[dict[str, Any]], batch: int) -> None:
        super().__init__(records, batch=batch)
        self.polls: list[tuple[float, Offset | None]] = []

    def poll(self, after: Offset | None) -> Iterator[SourceRecord]:
        self.polls.append((time.monotonic(), None if after is None else dict(after)))
        return super().poll(after)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.05)  # polling the runner's counters, the condition checked above


def test_while_kafka_takes_no_records_the_source_is_not_read_ahead(bootstrap: str, tmp_path: Path) -> None:
    """The ingress topic deleted under a running source (on a shared broker, Kafka away for this connector
    alone): each batch fails, is aborted and waits a doubling backoff; the source is polled once an attempt,
    always from the committed offset and never during a wait, so what is in flight is one batch. Once the topic
    is back every record arrives once."""
    world = World.create(bootstrap, tmp_path)
    records = world.records(TYPE, 120, seed=9)
    source = WatchedListSource(records, batch=40)
    runner = SourceRunner(source, _config("list-away", max_batch=40), agency=AGENCY, settings=world.settings)
    admin = make_admin(bootstrap=bootstrap)
    topic = world.settings.topic_prefix + f"ingress.{TYPE}"
    (deleted,) = admin.delete_topics([topic], operation_timeout=60).values()
    deleted.result(timeout=60)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: len(source.polls) >= 4, "a fourth attempt, after three aborted ones")
        polls, aborted = len(source.polls), runner.stats.aborted
        assert polls <= aborted + 1  # one poll an attempt: none while produce or the backoff waits
        assert runner.stats.records == 0
        assert [after for _, after in source.polls] == [None] * polls  # each from the committed offset
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(source.polls)]
        assert gaps[1] >= 0.9 * FIRST_BACKOFF_S
        assert gaps[2] >= 1.8 * FIRST_BACKOFF_S  # the wait doubles while Kafka stays away
        (created,) = admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1,
                                                   config={"message.timestamp.type": "LogAppendTime"})],
                                         operation_timeout=60).values()
        created.result(timeout=60)
        _wait(lambda: runner.stats.records == len(records), "every record published once the topic is back")
    finally:
        runner.stop()
        thread.join(timeout=90)
    assert len(set(_events(world))) == len(_events(world)) == len(records)
