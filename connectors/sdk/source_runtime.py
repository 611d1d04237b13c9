"""The source runtime: everything between a :class:`~connectors.sdk.Source` and Kafka that an integrator should
not write.

One batch, exactly once (the KIP-618 idea, on one transactional producer):

1. poll the source after the committed offset, up to ``max_batch`` records (a :class:`BadRecord` is kept, with the
   offset after it, and polling goes on from there);
2. in **one Kafka transaction**: validate, sign and produce each record through the agency's Publisher; a record
   that fails validation, and every bad record, goes to the dead letters; then the offset of the batch's last
   record goes to the connector's offsets topic (``connector.<name>.offsets``, compacted);
3. commit; only then :meth:`Source.acknowledge` the offset.

The transactional id is ``connector.<name>``: a second instance fences the first (its next transaction fails), and
the offset is read only after ``init_transactions``, when no transaction of an older instance is pending. A Kafka
failure aborts the batch and, after a backoff, polls again from the committed offset: nothing is lost and a
read_committed reader sees nothing twice. While Kafka is down nothing is polled, so in-flight memory is one batch
and the producer's buffer (``max_in_flight_bytes``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.sdk._loop import run_steps
from connectors.sdk.api import (
    Backpressure,
    BadRecord,
    Offset,
    OffsetError,
    Retryable,
    Source,
    SourceContext,
    SourceRecord,
    offset_bytes,
    parse_offset,
)
from connectors.sdk.config import ConnectorConfig
from connectors.sdk.deadletters import DEAD_LETTER_TOPIC, DeadLetters
from connectors.sdk.metrics import COMMIT_SECONDS, RECORDS
from exchange.context import Context
from exchange.errors import ExchangeError
from exchange.kafka import ConsumedRecord, Consumer, KafkaError, TransactionalProducer, make_admin, read_ranges
from exchange.kafka.admin import apply_topics, broker_count
from exchange.log import get_logger
from exchange.publisher import DELIVERY_TIMEOUT_MS, Publisher
from exchange.settings import Settings
from exchange.topics import TopicSpec

__all__ = ["FIRST_BACKOFF_S", "SourceRunner", "SourceStats", "ToleranceExceededError", "offsets_topic"]

FIRST_BACKOFF_S = 0.5
"""The first wait after a failure (a Kafka transaction, or a source's Retryable); it doubles while they go on."""
_MAX_BACKOFF_S = 30.0


def offsets_topic(name: str) -> str:
    """The topic holding a source connector's committed offsets."""
    return f"connector.{name}.offsets"


class ToleranceExceededError(ExchangeError):
    """A bad record with ``errors_tolerance: none``: it is dead-lettered and committed, and the connector stops."""


@dataclass
class SourceStats:
    records: int = 0
    dead_letters: int = 0
    batches: int = 0
    aborted: int = 0
    commit_seconds: list[float] = field(default_factory=list)


Item = SourceRecord | BadRecord


class SourceRunner:
    """Runs one source connector: :meth:`run` until :meth:`stop` (or idle), one transaction per batch."""

    def __init__(self, source: Source, config: ConnectorConfig, *, agency: str, settings: Settings,
                 progress: Callable[[int], None] | None = None,
                 boundary: Callable[[str], None] | None = None) -> None:
        """``boundary`` is called with ``"produced"`` (the batch is in the open transaction), ``"committed"`` and
        ``"acknowledged"``: the conformance kit kills the process there to prove no boundary loses or repeats."""
        self.source, self.config, self.agency = source, config, agency
        self._boundary = boundary or _no_boundary
        self.stats = SourceStats()
        self._settings = settings
        self._progress = progress
        self._stop = threading.Event()
        self._backoff = FIRST_BACKOFF_S
        self._poll_backoff = FIRST_BACKOFF_S
        self._waited = False
        self._first_letter: tuple[str, str] | None = None
        """Where the batch's first dead letter came from, and why (for the error of ``errors_tolerance: none``)."""
        self._log = get_logger("connectors.source", connector=config.name)
        context = Context(settings)
        self._topic = offsets_topic(config.name)
        _ensure_offsets_topic(settings, self._topic)
        self._producer = TransactionalProducer(f"connector.{config.name}", settings=settings, overrides={
            "queue.buffering.max.kbytes": max(1, config.max_in_flight_bytes // 1024),
            "message.timeout.ms": DELIVERY_TIMEOUT_MS})
        self._context = context
        self._publisher = self._new_publisher()
        self._letters = DeadLetters(config.name, context.catalogue)
        self.position = self._committed_offset()  # after init_transactions: no older transaction is pending
        self._records = RECORDS.labels(connector=config.name, outcome="published")
        self._dead = RECORDS.labels(connector=config.name, outcome="dead-lettered")
        self._commit_seconds = COMMIT_SECONDS.labels(connector=config.name)

    def _new_publisher(self) -> Publisher:
        # Batches are sealed at 64 records and at the flush before each commit, never by time.
        c = self._context
        return Publisher.from_keystore(self.agency, c.keystore, registry=c.registry, catalogue=c.catalogue,
                                       pseudonymiser=c.pseudonymiser, producer=self._producer, batch_size=64,
                                       linger_ms=3_600_000)

    def stop(self) -> None:
        """Finish the batch in progress, then stop."""
        self._stop.set()

    def run(self, max_idle_s: float | None = None) -> SourceStats:
        """Poll, publish and commit until stopped (or idle for ``max_idle_s``); the source is opened and closed."""
        self.source.open(SourceContext(self.config.name, self.agency))
        try:
            run_steps(self._step_or_wait, self._stop, max_idle_s, pause_s=0.05)  # nothing new: polled again soon
        finally:
            self.source.close()
            self._producer.flush(30)
        return self.stats

    def _step_or_wait(self) -> int:
        """A step for the loop: a wait (a source's Retryable or Backpressure, an aborted batch) is not idleness."""
        self._waited = False
        return self.step() or int(self._waited)

    def step(self) -> int:
        """One batch: poll, publish and commit; returns how many records (dead letters included) it handled."""
        items, position = self._collect()
        if not items or position is None:  # every item carries an offset: None only with no items
            return 0
        self._first_letter = None
        try:
            self._producer.begin()
            letters, done = self._publish(items)
            if done < len(items):  # stopped at a bad record (errors_tolerance: none): commit up to it
                items, position = items[:done], _offset_of(items[done - 1]) or position
            self._producer.produce(self._topic, offset_bytes(position), self.config.name.encode(), partition=0)
            started = time.perf_counter()
            self._publisher.flush(DELIVERY_TIMEOUT_MS / 1000)
            self._boundary("produced")
            self._producer.commit()
            elapsed = time.perf_counter() - started
        except KafkaError as exc:
            if exc.fatal:
                raise
            self._abort(exc, len(items))
            return 0
        self._backoff = FIRST_BACKOFF_S
        self.position = position
        self._count(len(items) - letters, letters, elapsed)
        self._boundary("committed")
        self._acknowledge(position)
        self._boundary("acknowledged")
        if letters and self.config.errors_tolerance == "none":
            where, why = self._first_letter or ("?", "?")
            raise ToleranceExceededError(
                f"connector {self.config.name} stopped: a bad record was dead-lettered and errors_tolerance is "
                f"none (at {where}: {why}). It is committed with the records before it; a restart goes on after "
                "it")
        return len(items)

    # -- the steps ------------------------------------------------------------------------------------------

    def _collect(self) -> tuple[list[Item], Offset | None]:
        """Up to ``max_batch`` records after the committed offset, and the offset after the last of them."""
        items: list[Item] = []
        position = self.position
        limit = self.config.max_batch
        while len(items) < limit:
            try:
                before = len(items)
                for record in self.source.poll(position):
                    items.append(record)
                    position = record.offset
                    if len(items) >= limit:
                        break
                if len(items) == before or len(items) >= limit:
                    break
            except BadRecord as bad:
                if bad.offset is None:
                    raise OffsetError(f"connector {self.config.name}: BadRecord({bad.reason!r}) was raised without "
                                      "the offset after the bad record; the runtime cannot go on past it") from bad
                items.append(bad)
                position = bad.offset
                if self.config.errors_tolerance == "none":
                    break
            except (Retryable, Backpressure) as wait:
                if isinstance(wait, Backpressure):
                    delay = wait.retry_after
                else:
                    delay, self._poll_backoff = self._poll_backoff, min(_MAX_BACKOFF_S, self._poll_backoff * 2)
                self._log.warning("source asked to wait", reason=str(wait), retry_in_s=delay)
                self._waited = True
                self._stop.wait(delay)
                return [], self.position  # nothing was produced: poll again from the committed offset
        self._poll_backoff = FIRST_BACKOFF_S  # the source answered: its next Retryable waits the first backoff
        if self.config.errors_tolerance == "none":
            first_bad = next((i for i, item in enumerate(items) if isinstance(item, BadRecord)), None)
            if first_bad is not None:
                items = items[:first_bad + 1]
                cut = items[first_bad]
                position = cut.offset if isinstance(cut, BadRecord) and cut.offset is not None else position
        return items, position

    def _publish(self, items: list[Item]) -> tuple[int, int]:
        """Produce the batch into the open transaction; returns the number of dead letters and of items done
        (fewer than all when a bad record stops it: ``errors_tolerance: none``)."""
        letters = 0
        for done, item in enumerate(items, start=1):
            if isinstance(item, BadRecord):
                self._dead_letter("poll", "BAD_RECORD", item.reason, item.original, item.offset)
                letters += 1
                continue
            try:
                self._publisher.publish(item.record_type, item.values)
            except KafkaError:
                raise
            except Exception as exc:  # noqa: BLE001 - any record the publisher refuses is dead-lettered
                reason = "INVALID_RECORD" if isinstance(exc, ExchangeError) else "INTERNAL"
                self._dead_letter("validate", reason, f"{type(exc).__name__}: {exc}", _original(item), item.offset)
                letters += 1
                if self.config.errors_tolerance == "none":
                    return letters, done
        return letters, len(items)

    def _dead_letter(self, stage: str, reason: str, detail: str, original: bytes | None,
                     offset: Offset | None) -> None:
        value, key, headers = self._letters.letter(stage, reason, detail, original=original,
                                                   place=None if offset is None else offset_bytes(offset))
        self._producer.produce(DEAD_LETTER_TOPIC, value, key, headers=headers)
        if self._first_letter is None:
            self._first_letter = (json.dumps(dict(offset)) if offset is not None else "?", detail[:300])
        self._log.warning("record dead-lettered", stage=stage, reason=reason, detail=detail[:300])

    def _abort(self, exc: KafkaError, count: int) -> None:
        self._log.warning("batch aborted; polling again from the committed offset", error=str(exc), records=count,
                          retry_in_s=self._backoff)
        try:
            self._producer.abort()
        except KafkaError as failure:
            self._log.warning("abort failed", error=str(failure))
        self._publisher = self._new_publisher()  # records it held unsigned belong to the aborted batch
        self.stats.aborted += 1
        self._waited = True
        self._stop.wait(self._backoff)
        self._backoff = min(_MAX_BACKOFF_S, self._backoff * 2)

    def _count(self, published: int, letters: int, commit_s: float) -> None:
        self.stats.records += published
        self.stats.dead_letters += letters
        self.stats.batches += 1
        self.stats.commit_seconds.append(commit_s)
        self._records.inc(published)
        self._dead.inc(letters)
        self._commit_seconds.observe(commit_s)
        if self._progress is not None:
            self._progress(self.stats.records + self.stats.dead_letters)

    def _acknowledge(self, position: Offset) -> None:
        """Tell the source the batch is committed; retried a few times, never undoing the commit."""
        for attempt in range(5):
            try:
                self.source.acknowledge(position)
            except Retryable as exc:
                self._log.warning("acknowledge failed; retrying", error=str(exc), attempt=attempt + 1)
                self._stop.wait(FIRST_BACKOFF_S * 2 ** attempt)
            else:
                return
        self._log.error("acknowledge kept failing; the next batch acknowledges past it", offset=dict(position))

    def _committed_offset(self) -> Offset | None:
        last = _last_committed(self._settings, self._topic)
        if last is None:
            return None
        if last.value is None:
            return None  # reset to the start (`exchange connector reset-offset NAME --from-start`)
        try:
            return parse_offset(last.value or b"")
        except OffsetError as exc:
            raise OffsetError(f"connector {self.config.name}: the committed offset at {self._topic}@{last.offset} "
                              f"is corrupt ({exc}); nothing was polled. Reset it with `exchange connector "
                              f"reset-offset {self.config.name}` once you know where the source stands") from exc


def _last_committed(settings: Settings, topic: str) -> ConsumedRecord | None:
    """The last committed record of the one-partition ``topic``, read from its tail: a window before the end,
    widened while it holds only aborted records and transaction markers."""
    with Consumer("connector-offsets", settings=settings) as consumer:
        end = consumer.end_offsets([(topic, 0)])[(topic, 0)]
    window = 16
    while True:
        start = max(0, end - window)
        records = read_ranges({(topic, 0): (start, end)}, settings=settings)
        if records or start == 0:
            return records[-1] if records else None
        window *= 8


def _no_boundary(_: str) -> None:
    return None


def _offset_of(item: Item) -> Offset | None:
    return item.offset


def _original(record: SourceRecord) -> bytes:
    return json.dumps(dict(record.values), default=str, sort_keys=True).encode()


def _ensure_offsets_topic(settings: Settings, topic: str) -> None:
    admin = make_admin(settings)
    replicas = 3 if broker_count(admin) >= 3 else 1
    config = {"cleanup.policy": "compact", "min.insync.replicas": "2" if replicas == 3 else "1"}
    apply_topics(admin, [TopicSpec(topic, 1, replicas, config)], prefix=settings.topic_prefix)
