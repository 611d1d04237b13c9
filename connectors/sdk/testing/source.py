"""The source half of the conformance kit: :class:`SourceConformance` (see the package doc and
docs/connectors.md, "The conformance kit")."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from connectors.sdk.api import OffsetError, Source, SourceContext, offset_bytes
from connectors.sdk.source_runtime import FIRST_BACKOFF_S, SourceStats, ToleranceExceededError
from connectors.sdk.testing._source_base import BOUNDARIES, SourceKit
from connectors.sdk.testing._support import canonical, equal, expect, within
from connectors.sdk.testing._watched import Acks, Watched
from connectors.sdk.testing.world import World
from exchange.kafka import KafkaError

__all__ = ["SourceConformance"]


class SourceConformance(SourceKit):
    """Inherited tests of a :class:`~connectors.sdk.Source` on the real broker."""

    def watched(self, world: World, directory: Path, *, max_batch: int | None = None, backpressure: bool = False,
                retryable: Mapping[int, int] | None = None,
                acks: Acks = "direct") -> tuple[Watched, SourceStats]:
        """A fresh source on ``directory``, watched (see :class:`Watched`), run until idle."""
        made: list[Watched] = []

        def wrap(source: Source) -> Source:
            made.append(Watched(source, backpressure=backpressure, retryable=retryable, acks=acks))
            return made[-1]

        stats = self.run_to_idle(world, directory, max_batch=max_batch, wrap=wrap)
        return made[0], stats

    def test_open_and_close_return_within_the_timeout(self, directory: Path) -> None:
        source, config = self.make(directory)
        context = SourceContext(config.name, self.agency)
        for step in (lambda: source.open(context), source.close):
            within(step, self.open_timeout_s)

    def test_injected_records_arrive_once_as_valid_events(self, world: World, directory: Path) -> None:
        self.make(directory)
        injected = self.inject(2 * self.kill_batch + 3)
        stats = self.run_to_idle(world, directory, max_batch=self.kill_batch)
        equal((stats.records, stats.dead_letters), (len(injected), 0), "records, dead letters")
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
        equal(first.run(max_idle_s=self.idle_s).records, len(injected), "records of the first run")
        again, _ = self.make(directory)
        restarted = self.runner(world, again, config)
        equal(restarted.position, first.position, "the offset after a restart")
        stats = restarted.run(max_idle_s=self.idle_s)
        equal((stats.records, stats.dead_letters), (0, 0), "records, dead letters of the restart")
        self.assert_once_each(world, injected)

    def test_late_out_of_order_and_lost_acknowledgements_repeat_and_lose_nothing(self, world: World,
                                                                                directory: Path) -> None:
        """Acknowledgements handed on late, newest first and in the middle of a later batch (and an old one
        again), with a SIGKILL in the open transaction of the third batch; then none at all: every restart
        emits only what was never committed, and everything arrives once."""
        self.make(directory)
        injected = self.inject(4 * self.kill_batch + self.kill_batch // 2)
        self.kill_at(world, directory, "produced", batch=3, acks="late")
        watched, _ = self.watched(world, directory, max_batch=self.kill_batch, acks="late")
        expect(watched.handed != sorted(watched.handed), f"no acknowledgement came out of order: {watched.handed}")
        equal(sorted(set(watched.handed)), list(range(watched.arrived)), "acknowledgements handed on")
        runs: tuple[tuple[Acks, int], ...] = (("never", self.kill_batch + 3), ("direct", self.kill_batch // 2 + 1))
        for acks, n in runs:
            injected += (added := self.inject(n))
            _, stats = self.watched(world, directory, max_batch=self.kill_batch, acks=acks)
            equal(stats.records, len(added), f"records of the run with {acks} acknowledgements")
        self.assert_once_each(world, injected)

    def test_records_keep_their_order_per_key_across_batches_and_a_restart(self, world: World,
                                                                           directory: Path) -> None:
        """Each partition of ``ingress.<type>`` — so each key, whose records share one — holds its records in
        the order they were injected, across batches and a restart."""
        self.make(directory)
        injected = self.inject(2 * self.kill_batch + 3)
        self.run_to_idle(world, directory, max_batch=self.kill_batch)
        injected += self.inject(self.kill_batch + 4)
        self.run_to_idle(world, directory, max_batch=self.kill_batch)
        self.assert_once_each(world, injected)
        places: dict[str, list[int]] = {}
        for i, values in enumerate(injected):
            places.setdefault(canonical(values), []).append(i)
        order: dict[int, list[int]] = {}
        keys: dict[bytes | None, int] = {}
        for record, values in self.verified(world):
            order.setdefault(record.partition, []).append(places[canonical(values)].pop(0))
            expect(keys.setdefault(record.key, record.partition) == record.partition, "a key on two partitions")
        expect(max(len(o) for o in order.values()) > 1, "no partition holds two records: nothing was checked")
        for partition, indices in order.items():
            equal(indices, sorted(indices), f"the injection order of partition {partition}'s records")

    def test_retryable_from_poll_is_retried_with_backoff_and_loses_nothing(self, world: World,
                                                                           directory: Path) -> None:
        """The second poll passes two records on and raises Retryable, the third raises it at once: both are
        retried, after growing waits, and every record arrives once."""
        self.make(directory)
        injected = self.inject(2 * self.kill_batch + 3)
        watched, stats = self.watched(world, directory, max_batch=self.kill_batch, retryable={2: 2, 3: 0})
        equal(watched.retried, 2, "polls that raised Retryable")
        first, second = (watched.poll_times[i + 1] - watched.poll_times[i] for i in (1, 2))
        expect(first >= 0.9 * FIRST_BACKOFF_S and second > first,
               f"the waits before the retries were {first:.2f} s and {second:.2f} s: not a growing backoff")
        equal(stats.records, len(injected), "records")
        self.assert_once_each(world, injected)

    def test_a_corrupt_offset_stops_the_connector_before_any_poll(self, world: World, directory: Path) -> None:
        source, config = self.make(directory)
        self.inject(3)
        self.write_offset(world, source, config, b"\x00not an offset")
        watched = Watched(source)
        with pytest.raises(OffsetError, match="corrupt"):
            self.runner(world, watched, config)
        equal(watched.polls, 0, "polls after a corrupt offset")
        equal(self.events(world), [], "events")

    def test_a_future_offset_is_a_typed_error_not_a_loop(self, world: World, directory: Path) -> None:
        source, config = self.make(directory)
        self.inject(3)
        future = self.future_offset()
        self.write_offset(world, source, config, offset_bytes(future))
        watched = Watched(source)
        runner = self.runner(world, watched, config)
        equal(runner.position, dict(future), "the committed offset")
        started = time.monotonic()
        with pytest.raises(OffsetError) as caught:
            runner.run(max_idle_s=self.idle_s)
        expect(bool(str(caught.value)), "the error must say what is wrong")
        expect(time.monotonic() - started < 30, "the error took 30 s or more")
        equal((watched.polls, watched.opened, watched.closed), (1, 1, 1), "polls, opens, closes")
        equal(self.events(world), [], "events")

    def test_a_bad_record_is_dead_lettered_and_the_rest_goes_on(self, world: World, directory: Path) -> None:
        """With ``errors_tolerance: all``."""
        _, config = self.make(directory)
        before = self.inject(4)
        self.inject_bad()
        after = self.inject(4)
        stats = self.run_to_idle(world, directory, errors_tolerance="all")
        equal((stats.records, stats.dead_letters), (8, 1), "records, dead letters")
        self.assert_once_each(world, before + after)
        letters = self.dead_letters(world, config)
        equal(len(letters), 1, "dead letters of the connector")
        expect(letters[0]["reason_code"] in ("BAD_RECORD", "INVALID_RECORD") and bool(letters[0]["detail"]),
               f"a dead letter says why: {letters[0]['reason_code']}")

    def test_tolerance_none_stops_at_the_first_bad_record(self, world: World, directory: Path) -> None:
        """With ``errors_tolerance: none`` the bad record is dead-lettered and the connector stops, saying so;
        started again (``all``) it goes on after it: the bad record is not dead-lettered twice."""
        _, config = self.make(directory)
        before = self.inject(4)
        self.inject_bad()
        after = self.inject(4)
        with pytest.raises(ToleranceExceededError) as stopped:
            self.run_to_idle(world, directory, errors_tolerance="none")
        message = str(stopped.value)
        expect(config.name in message and "errors_tolerance" in message and "dead-lettered" in message,
               f"the error does not say which connector stopped and why: {message}")
        self.assert_once_each(world, before)
        equal(len(self.dead_letters(world, config)), 1, "dead letters when the connector stopped")
        stats = self.run_to_idle(world, directory, errors_tolerance="all")
        equal((stats.records, stats.dead_letters), (len(after), 0), "records, dead letters after the restart")
        self.assert_once_each(world, before + after)
        equal(len(self.dead_letters(world, config)), 1, "dead letters after the restart")

    def test_backpressure_once_loses_nothing(self, world: World, directory: Path) -> None:
        self.make(directory)
        injected = self.inject(self.kill_batch + 2)
        watched, stats = self.watched(world, directory, max_batch=self.kill_batch, backpressure=True)
        equal(watched.pressed, 1, "backpressure answered")
        equal(stats.records, len(injected), "records")
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
            equal(first.step(), self.kill_batch, "records of the first instance's batch")
            again, _ = self.make(directory)
            second = self.runner(world, again, config)  # init_transactions: the first is fenced
            injected += self.inject(self.kill_batch)
            with pytest.raises(KafkaError) as fenced:
                first.step()
            equal(fenced.value.fatal, True, f"the fenced instance's error is fatal ({fenced.value})")
        finally:
            first.source.close()
        equal(second.run(max_idle_s=self.idle_s).records, self.kill_batch, "records of the second instance")
        self.assert_once_each(world, injected)
