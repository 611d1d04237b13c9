"""The sink runtime: a department's deliveries, read and verified by the Subscriber, written in batches by a
:class:`~connectors.sdk.Sink`; the consumer offsets are committed only after :meth:`Sink.write` returns.

Its consumer lag, per partition, is the gauge ``exchange_connector_lag_records`` (:mod:`connectors.sdk.lag`).

A record the sink refuses (:class:`BadRecord` naming it) goes to the dead letters and the rest of the batch is
written again; :class:`Retryable` retries the same batch with backoff; :class:`Backpressure` waits, without
committing. After a crash the batch since the last commit is written again, so a sink must be idempotent by
:attr:`SinkRecord.idempotency_key` — the conformance kit checks it.
"""

from __future__ import annotations

import json
import threading
import time

from connectors.sdk._loop import run_steps
from connectors.sdk.api import Backpressure, BadRecord, Retryable, Sink, SinkRecord, SourceContext
from connectors.sdk.config import ConnectorConfig
from connectors.sdk.deadletters import DEAD_LETTER_TOPIC, DeadLetters
from connectors.sdk.lag import SinkLag
from connectors.sdk.metrics import COMMIT_SECONDS, RECORDS
from exchange.context import Context
from exchange.delivery import delivery_topic
from exchange.delivery.open import ReceivedDelivery
from exchange.kafka import Consumer, Producer
from exchange.log import get_logger
from exchange.settings import Settings
from exchange.subscriber import Subscriber

__all__ = ["SinkRunner", "SinkStats", "sink_record"]

_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_MAX_ATTEMPTS = 8


def sink_record(delivery: ReceivedDelivery) -> SinkRecord:
    """The SDK's view of a verified delivery."""
    p = delivery.provenance
    subject = delivery.subject_pseudonym or delivery.key.decode("utf-8", "replace")
    return SinkRecord(p.event_id, p.agreement_id, delivery.record_type, dict(delivery.fields), subject,
                      p.event_time, p.source)


class SinkStats:
    def __init__(self) -> None:
        self.written = 0
        self.dead_letters = 0
        self.batches = 0
        self.retries = 0


class SinkRunner:
    """Runs one sink connector for ``recipient``: poll, write, commit, until :meth:`stop` (or idle)."""

    def __init__(self, sink: Sink, config: ConnectorConfig, *, recipient: str, settings: Settings) -> None:
        self.sink, self.config, self.recipient = sink, config, recipient
        self.stats = SinkStats()
        self._stop = threading.Event()
        self._log = get_logger("connectors.sink", connector=config.name)
        context = Context(settings)
        group = f"connector.{config.name}"
        consumer = Consumer(group, [delivery_topic(recipient)], settings=settings)  # the Subscriber's, watched
        self._subscriber = Subscriber(recipient, keystore=context.keystore, registry=context.registry,
                                      catalogue=context.catalogue, settings=settings, group_id=group,
                                      source=consumer)
        self.lag = SinkLag(config.name, consumer)
        self._letters = DeadLetters(config.name, context.catalogue)
        self._producer = Producer(settings=settings, overrides={"enable.idempotence": True, "acks": "all"})
        self._written = RECORDS.labels(connector=config.name, outcome="written")
        self._dead = RECORDS.labels(connector=config.name, outcome="dead-lettered")
        self._commit_seconds = COMMIT_SECONDS.labels(connector=config.name)

    def stop(self) -> None:
        """Finish the batch in progress (written and committed), then stop."""
        self._stop.set()

    def run(self, max_idle_s: float | None = None) -> SinkStats:
        """Write deliveries until stopped (or idle for ``max_idle_s``); the sink is opened and closed."""
        self.sink.open(SourceContext(self.config.name, self.recipient))
        try:
            run_steps(self.step, self._stop, max_idle_s)  # a step waits on its poll
        finally:
            self.sink.close()
            self.lag.update(now=True)
            self._subscriber.close()
            self._producer.flush(30)
        return self.stats

    def step(self) -> int:
        """One batch: poll, write (dead-lettering what the sink refuses), commit; how many records it handled."""
        deliveries = self._subscriber.poll(self.config.max_batch, timeout=0.5)
        if not deliveries:
            self._subscriber.commit()  # records skipped as unverifiable are past too
            self.lag.update()
            return 0
        batch = [sink_record(d) for d in deliveries]
        started = time.perf_counter()
        if not self._write(batch):
            return 0  # stopped while waiting: nothing committed, the batch is read again next time
        self._producer.flush(30)  # dead letters are durable before the offsets move past their records
        self._subscriber.commit()
        elapsed = time.perf_counter() - started
        self.lag.update()
        self.stats.batches += 1
        self._commit_seconds.observe(elapsed)
        return len(batch)

    def _write(self, batch: list[SinkRecord]) -> bool:
        """Write ``batch`` until it is written (True) or the runner is stopped (False)."""
        backoff = _FIRST_BACKOFF_S
        pending = list(batch)
        failures = 0  # Retryable in a row: a dead letter or a wait in between starts the count again
        waited = False
        while pending:
            if self._stop.is_set() and waited:
                return False
            try:
                self.sink.write(pending)
            except BadRecord as bad:
                refused = bad.record if bad.record in pending else None
                if refused is None:
                    raise ValueError(f"connector {self.config.name}: the sink raised BadRecord({bad.reason!r}) "
                                     "without naming a record of the batch") from bad
                self._dead_letter(refused, bad.reason)
                pending = [r for r in pending if r is not refused]
                failures, backoff = 0, _FIRST_BACKOFF_S
                continue
            except Backpressure as wait:
                self._log.warning("sink asked to wait", reason=str(wait), retry_in_s=wait.retry_after)
                self._stop.wait(wait.retry_after)
                failures, waited = 0, True
                continue
            except Retryable as exc:
                self.stats.retries += 1
                failures += 1
                waited = True
                if failures >= _MAX_ATTEMPTS:
                    raise
                self._log.warning("write failed; retrying", error=str(exc), retry_in_s=backoff)
                self._stop.wait(backoff)
                backoff = min(_MAX_BACKOFF_S, backoff * 2)
                continue
            self.stats.written += len(pending)
            self._written.inc(len(pending))
            return True
        return True

    def _dead_letter(self, record: SinkRecord, reason: str) -> None:
        original = json.dumps({"event_id": record.event_id, "agreement_id": record.agreement_id,
                               "record_type": record.record_type, "fields": dict(record.fields)},
                              default=str, sort_keys=True).encode()
        value, key, headers = self._letters.letter("write", "BAD_RECORD", reason, original=original,
                                                   place=record.event_id.encode())
        self._producer.produce(DEAD_LETTER_TOPIC, value, key, headers=headers)
        self.stats.dead_letters += 1
        self._dead.inc()
        self._log.warning("delivery dead-lettered", event_id=record.event_id, reason=reason[:300])
