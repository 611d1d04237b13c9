"""The conformance kit: pytest base classes a connector's tests subclass, so every connector keeps the same
promises — records arrive once, a crash at any boundary loses and repeats nothing, bad input is a dead letter.

A source's tests subclass :class:`SourceConformance` and say how to reach their system::

    class TestMySource(SourceConformance):
        agency = "population-registry"
        record_type = "population.address-changed"

        def make(self, directory: Path) -> tuple[Source, ConnectorConfig]: ...  # a source on `directory`
        def inject(self, n: int) -> list[dict[str, Any]]: ...   # add n records; return them as they must arrive
        def inject_bad(self) -> None: ...                       # add one record the source cannot read
        def future_offset(self) -> Offset: ...                  # a well-formed offset the system does not have

Each ``test_…`` method is inherited. They run on the real broker: they need the ``bootstrap`` fixture of
``tests/integration/conftest.py``, so **a subclass lives under tests/integration** (its module must be importable
by name: the crash tests import it again in a child process). ``make`` may be called in that child, on a fresh
instance of the class, and again after a restart: everything the source reads must live in (or be reached from)
``directory``, and ``inject`` writes to the system of the last ``make``. The kit adjusts ``max_batch`` of the
config ``make`` returns; the connector's name is its own (each test has a fresh world of topics).

It checks (docs/connectors.md, "The conformance kit", has the table): ``open`` and ``close`` return in time;
injected records arrive as valid events, once each; a SIGKILL at each boundary (``produced``, ``committed``,
``acknowledged``) of the second batch and a restart lose and repeat nothing; a restart with nothing new emits
nothing; a corrupt or a future offset is an :class:`~connectors.sdk.OffsetError`, not a loop; a bad record is one
dead letter and the rest arrive; :class:`~connectors.sdk.Backpressure` once loses nothing; a second instance of
the connector fences the first, which then fails without publishing.

Not checked yet (the SQL connectors will need them): acknowledgements that reach the upstream system out of
order or late (a source whose upstream must tolerate an acknowledge for an older batch after a newer one);
per-key order through the runtime (records of one key published in the order the system wrote them, across
batches and restarts); :class:`~connectors.sdk.Retryable` from a source; ``errors_tolerance: none``; memory
bounds while Kafka is down. :class:`SinkConformance` checks what the
:class:`~connectors.sdk.Sink` surface alone can show (idempotence, per-key order), not a sink under the
:class:`~connectors.sdk.sink_runtime.SinkRunner` and the broker.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors.sdk.api import (
    Backpressure,
    Offset,
    OffsetError,
    Sink,
    SinkRecord,
    Source,
    SourceContext,
    SourceRecord,
    offset_bytes,
)
from connectors.sdk.config import ConnectorConfig
from connectors.sdk.source_runtime import SourceRunner, SourceStats, offsets_topic
from exchange.envelope import EnvelopeVerifier
from exchange.kafka import KafkaError
from exchange.schemas.samples import sample_record
from exchange.settings import Settings, get_settings
from tests.integration.router_world import World

__all__ = ["BOUNDARIES", "SinkConformance", "SourceConformance", "canonical"]

BOUNDARIES = ("produced", "committed", "acknowledged")
"""Where the source runtime calls its ``boundary`` hook in each batch, in order."""

_NOT_KILLED = 3
_CHILD = """
import importlib, sys
from pathlib import Path
from connectors.sdk.testing import run_until_killed
module, qualname, directory, boundary, batch, max_batch = sys.argv[1:7]
kit = importlib.import_module(module)
for part in qualname.split("."):
    kit = getattr(kit, part)
run_until_killed(kit(), Path(directory), boundary, int(batch), int(max_batch))
"""


def canonical(values: Mapping[str, Any]) -> str:
    """A record's values as one comparable string (dates ISO, times in UTC, bytes hex, keys sorted)."""
    return json.dumps(_plain(dict(values)), sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Watched(Source):
    """The subclass's source, counted; with ``backpressure`` its first poll answers Backpressure instead."""

    def __init__(self, inner: Source, *, backpressure: bool = False) -> None:
        self.inner = inner
        self.opened = self.closed = self.polls = self.pressed = 0
        self._press = backpressure

    def open(self, context: SourceContext) -> None:
        self.opened += 1
        self.inner.open(context)

    def close(self) -> None:
        self.closed += 1
        self.inner.close()

    def poll(self, after: Offset | None) -> Iterable[SourceRecord]:
        self.polls += 1
        if self._press:
            self._press = False
            self.pressed += 1
            raise Backpressure(0.05, "the kit: saturated once")
        return self.inner.poll(after)

    def acknowledge(self, upto: Offset) -> None:
        self.inner.acknowledge(upto)


class SourceConformance:
    """Inherited tests of a :class:`~connectors.sdk.Source` on the real broker (see the module doc)."""

    agency: ClassVar[str]
    record_type: ClassVar[str]
    open_timeout_s: ClassVar[float] = 10.0
    idle_s: ClassVar[float] = 0.5
    """How long a run waits with nothing new before it counts as done."""
    kill_batch: ClassVar[int] = 10
    """``max_batch`` in the crash tests (they inject three and a half batches and kill in the second)."""

    # -- what a subclass provides ---------------------------------------------------------------------------

    def make(self, directory: Path) -> tuple[Source, ConnectorConfig]:
        """A new source on the system at ``directory``, and its config."""
        raise NotImplementedError(f"{type(self).__name__} must implement make(directory)")

    def inject(self, n: int) -> list[dict[str, Any]]:
        """Add ``n`` new records to the system; return their values as the events must carry them."""
        raise NotImplementedError(f"{type(self).__name__} must implement inject(n)")

    def inject_bad(self) -> None:
        """Add one record the source cannot read (it must raise BadRecord for it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement inject_bad()")

    def future_offset(self) -> Offset:
        """A well-formed offset beyond anything the system has; the source must raise an OffsetError for it."""
        raise NotImplementedError(f"{type(self).__name__} must implement future_offset()")

    # -- fixtures and helpers -------------------------------------------------------------------------------

    @pytest.fixture
    def world(self, bootstrap: str, tmp_path: Path) -> World:
        """A throw-away exchange (keys, registry, topics under a fresh prefix)."""
        return World.create(bootstrap, tmp_path / "world")

    @pytest.fixture
    def directory(self, tmp_path: Path) -> Path:
        """Where the connector's system lives."""
        path = tmp_path / "system"
        path.mkdir()
        return path

    def runner(self, world: World, source: Source, config: ConnectorConfig, **kwargs: Any) -> SourceRunner:
        return SourceRunner(source, config, agency=self.agency, settings=world.settings, **kwargs)

    def run_to_idle(self, world: World, directory: Path, *, max_batch: int | None = None,
                    wrap: Callable[[Source], Source] | None = None) -> SourceStats:
        """A fresh source on ``directory`` run until it has nothing new."""
        source, config = self.make(directory)
        if max_batch is not None:
            config = config.model_copy(update={"max_batch": max_batch})
        return self.runner(world, wrap(source) if wrap else source, config).run(max_idle_s=self.idle_s)

    def events(self, world: World) -> list[dict[str, Any]]:
        """Every committed event of the record type, verified; fails if one is not valid or not this agency's,
        or if an event id repeats."""
        verifier = EnvelopeVerifier(world.context.registry, world.context.catalogue)
        verified = [verifier.verify(record) for record in world.read(f"ingress.{self.record_type}")]
        ids = Counter(v.attributes.id for v in verified)
        _expect(all(n == 1 for n in ids.values()), "an event id appears twice")
        kinds = {(v.attributes.source, v.attributes.type) for v in verified}
        _expect(kinds <= {(self.agency, self.record_type)}, f"events of other sources or types: {kinds}")
        return [v.record for v in verified]

    def assert_once_each(self, world: World, injected: Sequence[Mapping[str, Any]]) -> None:
        """The events are exactly ``injected``: nothing missing, nothing twice, nothing else."""
        got = Counter(canonical(r) for r in self.events(world))
        want = Counter(canonical(r) for r in injected)
        missing, extra = want - got, got - want
        _expect(not missing and not extra, f"{sum(missing.values())} injected records missing, "
                                           f"{sum(extra.values())} events not injected or repeated")

    def dead_letters(self, world: World, config: ConnectorConfig) -> list[dict[str, Any]]:
        return [q for q in world.quarantined() if q["quarantined_by"] == f"connector:{config.name}"]

    def kill_at(self, world: World, directory: Path, boundary: str, *, batch: int = 2,
                max_batch: int | None = None) -> None:
        """Run the source in a child process that SIGKILLs itself at ``boundary`` of batch number ``batch``."""
        cls = type(self)
        env = {**os.environ, **world.env(), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run(  # noqa: S603 - the interpreter running the tests, with the kit's own script
            [sys.executable, "-c", _CHILD, cls.__module__, cls.__qualname__, str(directory), boundary, str(batch),
             str(max_batch or self.kill_batch)], env=env, capture_output=True, timeout=120, check=False)
        _expect(done.returncode == -signal.SIGKILL,
                f"the child did not die at {boundary} of batch {batch} (exit {done.returncode}): "
                f"{done.stderr.decode(errors='replace')[-3000:]}")

    def write_offset(self, world: World, source: Source, config: ConnectorConfig, value: bytes) -> None:
        """Store ``value`` as the connector's committed offset, by hand (a runner made first makes its topic;
        it does not touch the source)."""
        self.runner(world, source, config)
        producer = world.raw_producer()
        producer.produce(offsets_topic(config.name), value, config.name.encode(), partition=0)
        producer.flush()

    # -- the tests ------------------------------------------------------------------------------------------

    def test_open_and_close_return_within_the_timeout(self, directory: Path) -> None:
        source, config = self.make(directory)
        context = SourceContext(config.name, self.agency)
        for step in (lambda: source.open(context), source.close):
            _within(step, self.open_timeout_s)

    def test_injected_records_arrive_once_as_valid_events(self, world: World, directory: Path) -> None:
        self.make(directory)
        injected = self.inject(2 * self.kill_batch + 3)
        stats = self.run_to_idle(world, directory, max_batch=self.kill_batch)
        _equal((stats.records, stats.dead_letters), (len(injected), 0), "records, dead letters")
        self.assert_once_each(world, injected)

    @pytest.mark.parametrize("boundary", BOUNDARIES)
    def test_a_kill_at_a_boundary_then_a_restart_loses_and_repeats_nothing(self, world: World, directory: Path,
                                                                          boundary: str) -> None:
        self.make(directory)
        injected = self.inject(3 * self.kill_batch + self.kill_batch // 2)
        self.kill_at(world, directory, boundary)
        self.run_to_idle(world, directory, max_batch=self.kill_batch)
        self.assert_once_each(world, injected)

    def test_a_restart_with_nothing_new_emits_nothing(self, world: World, directory: Path) -> None:
        source, config = self.make(directory)
        injected = self.inject(5)
        first = self.runner(world, source, config)
        _equal(first.run(max_idle_s=self.idle_s).records, len(injected), "records of the first run")
        again, _ = self.make(directory)
        restarted = self.runner(world, again, config)
        _equal(restarted.position, first.position, "the offset after a restart")
        stats = restarted.run(max_idle_s=self.idle_s)
        _equal((stats.records, stats.dead_letters), (0, 0), "records, dead letters of the restart")
        self.assert_once_each(world, injected)

    def test_a_corrupt_offset_stops_the_connector_before_any_poll(self, world: World, directory: Path) -> None:
        source, config = self.make(directory)
        self.inject(3)
        self.write_offset(world, source, config, b"\x00not an offset")
        watched = _Watched(source)
        with pytest.raises(OffsetError, match="corrupt"):
            self.runner(world, watched, config)
        _equal(watched.polls, 0, "polls after a corrupt offset")
        _equal(self.events(world), [], "events")

    def test_a_future_offset_is_a_typed_error_not_a_loop(self, world: World, directory: Path) -> None:
        source, config = self.make(directory)
        self.inject(3)
        future = self.future_offset()
        self.write_offset(world, source, config, offset_bytes(future))
        watched = _Watched(source)
        runner = self.runner(world, watched, config)
        _equal(runner.position, dict(future), "the committed offset")
        started = time.monotonic()
        with pytest.raises(OffsetError) as caught:
            runner.run(max_idle_s=self.idle_s)
        _expect(bool(str(caught.value)), "the error must say what is wrong")
        _expect(time.monotonic() - started < 30, "the error took 30 s or more")
        _equal((watched.polls, watched.opened, watched.closed), (1, 1, 1), "polls, opens, closes")
        _equal(self.events(world), [], "events")

    def test_a_bad_record_is_dead_lettered_and_the_rest_goes_on(self, world: World, directory: Path) -> None:
        _, config = self.make(directory)
        before = self.inject(4)
        self.inject_bad()
        after = self.inject(4)
        stats = self.run_to_idle(world, directory)
        _equal((stats.records, stats.dead_letters), (8, 1), "records, dead letters")
        self.assert_once_each(world, before + after)
        letters = self.dead_letters(world, config)
        _equal(len(letters), 1, "dead letters of the connector")
        _expect(letters[0]["reason_code"] in ("BAD_RECORD", "INVALID_RECORD") and bool(letters[0]["detail"]),
                f"a dead letter says why: {letters[0]['reason_code']}")

    def test_backpressure_once_loses_nothing(self, world: World, directory: Path) -> None:
        self.make(directory)
        injected = self.inject(self.kill_batch + 2)
        watched: list[_Watched] = []

        def wrap(source: Source) -> Source:
            watched.append(_Watched(source, backpressure=True))
            return watched[-1]

        stats = self.run_to_idle(world, directory, max_batch=self.kill_batch, wrap=wrap)
        _equal(watched[0].pressed, 1, "backpressure answered")
        _equal(stats.records, len(injected), "records")
        self.assert_once_each(world, injected)

    def test_a_second_instance_fences_the_first(self, world: World, directory: Path) -> None:
        """Two instances of one connector (one name): the second's start fences the first, whose next batch
        fails without publishing, and the second publishes everything once."""
        source, config = self.make(directory)
        config = config.model_copy(update={"max_batch": self.kill_batch})
        injected = self.inject(self.kill_batch)
        first = self.runner(world, source, config)
        first.source.open(SourceContext(config.name, self.agency))
        try:
            _equal(first.step(), self.kill_batch, "records of the first instance's batch")
            again, _ = self.make(directory)
            second = self.runner(world, again, config)  # init_transactions: the first is fenced
            injected += self.inject(self.kill_batch)
            with pytest.raises(KafkaError) as fenced:
                first.step()
            _equal(fenced.value.fatal, True, f"the fenced instance's error is fatal ({fenced.value})")
        finally:
            first.source.close()
        _equal(second.run(max_idle_s=self.idle_s).records, self.kill_batch, "records of the second instance")
        self.assert_once_each(world, injected)


def run_until_killed(kit: SourceConformance, directory: Path, boundary: str, batch: int, max_batch: int) -> None:
    """The crash tests' child: run the source, SIGKILL at ``boundary`` of batch number ``batch``."""
    source, config = kit.make(directory)
    config = config.model_copy(update={"max_batch": max_batch})
    batches = 0

    def hook(name: str) -> None:
        nonlocal batches
        if name == "produced":
            batches += 1
        if name == boundary and batches == batch:
            os.kill(os.getpid(), signal.SIGKILL)

    settings: Settings = get_settings()
    SourceRunner(source, config, agency=kit.agency, settings=settings, boundary=hook).run(max_idle_s=kit.idle_s)
    sys.exit(_NOT_KILLED)


def _expect(condition: bool, message: str) -> None:
    """An assertion that stays under ``python -O`` and says what failed (this module is not rewritten by pytest)."""
    if not condition:
        raise AssertionError(message)


def _equal(got: object, want: object, what: str) -> None:
    _expect(got == want, f"{what}: got {got!r}, expected {want!r}")


def _within(step: Callable[[], object], timeout: float) -> None:
    failure: list[BaseException] = []

    def call() -> None:
        try:
            step()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which re-raises it
            failure.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    _expect(not thread.is_alive(), f"did not return within {timeout:g} s")
    if failure:
        raise failure[0]


class SinkConformance:
    """Inherited tests of a :class:`~connectors.sdk.Sink` through its surface alone (no broker).

    A subclass provides :meth:`make` (a new sink on a fresh system for each test) and :meth:`read` (the
    idempotency keys, ``(event_id, agreement_id)``, of what the sink's system holds, in the order it was written:
    an insertion sequence, a file's order).
    """

    record_type: ClassVar[str] = "population.address-changed"
    source_agency: ClassVar[str] = "population-registry"
    recipient: ClassVar[str] = "tax-board"

    def make(self) -> Sink:
        raise NotImplementedError(f"{type(self).__name__} must implement make()")

    def read(self) -> Sequence[tuple[str, str]]:
        raise NotImplementedError(f"{type(self).__name__} must implement read()")

    def sink_records(self, n: int, subjects: int = 3) -> list[SinkRecord]:
        """``n`` deliveries of sample records, spread over ``subjects`` subjects in turn."""
        rng = random.Random(n * 31 + subjects)  # noqa: S311 - reproducible sample data, not a secret
        start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        return [SinkRecord(f"0190a000-0000-7000-8000-{i:012d}", "agr-001", self.record_type,
                           sample_record(self.record_type, rng), f"{i % subjects:032x}", start + timedelta(seconds=i),
                           self.source_agency) for i in range(n)]

    def _opened(self) -> Sink:
        sink = self.make()
        sink.open(SourceContext("conformance", self.recipient))
        return sink

    def test_a_record_given_twice_is_written_once(self) -> None:
        records = self.sink_records(10)
        sink = self._opened()
        try:
            sink.write(records[:6])
            sink.write(records[4:])  # 4 and 5 again: the batch redelivered after a crash before the commit
            sink.write(records[:1])
        finally:
            sink.close()
        written = list(self.read())
        _equal(Counter(written), Counter(r.idempotency_key for r in records), "writes per idempotency key")

    def test_per_key_order_is_kept(self) -> None:
        records = self.sink_records(12, subjects=3)
        sink = self._opened()
        try:
            for i in range(0, len(records), 5):
                sink.write(records[i:i + 5])
        finally:
            sink.close()
        position = {key: i for i, key in enumerate(self.read())}
        for subject in {r.subject for r in records}:
            mine = [position[r.idempotency_key] for r in records if r.subject == subject]
            _expect(mine == sorted(mine), f"subject {subject}: written out of order")
