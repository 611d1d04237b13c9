"""The routing service: verify → decide → minimise → encrypt → deliver and log, one Kafka transaction a batch.

For each batch read from ``ingress.*`` (consumer group, read_committed) the router first brings its consent view
up to the end offsets of the matching consent partitions (the consent barrier), then, inside one transaction:
produces every permitted delivery, one access-log entry per decision, the quarantine record and REJECT entry of
every record that fails verification, and the consumer offsets (KIP-447). A crash anywhere leaves either the
whole batch or none of it; the batch is then consumed again. Run any number of routers with distinct ids.
"""

from __future__ import annotations

import gc
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from exchange.delivery.errors import SealError
from exchange.envelope import (
    InternalError,
    OversizedRecordError,
    SchemaMismatchError,
    UntrustedTimestampError,
    VerificationError,
    VerifiedEvent,
    WrongPartitionError,
    ingress_topic,
)
from exchange.envelope.attributes import ID_TIME_TOLERANCE_MS
from exchange.kafka import ConsumedRecord, Consumer, KafkaError, TransactionalProducer, read_since
from exchange.kafka.lag import LagGauge
from exchange.log import get_logger
from exchange.metrics import CONSUMER_LAG, DECISIONS, EVENTS, QUARANTINED, ROUTING_LATENCY
from exchange.policy import (
    PUBLIC_RECIPIENT,
    Decision,
    EventFacts,
    Outcome,
    conditions_held,
    decide,
    held_restrictions,
)
from exchange.router.entries import router_headers
from exchange.router.model import (
    INGRESS_PATTERN,
    Batch,
    ConsentSource,
    Output,
    RouterConfig,
    RouterStats,
    Sealed,
    Sealer,
    Snapshot,
)
from exchange.router.replay import SEEN_TOPIC, ReplayGuard
from exchange.settings import Settings

__all__ = ["INGRESS_PATTERN", "ConsentSource", "Router", "RouterConfig", "RouterStats", "Sealed", "Sealer",
           "Snapshot"]

AUDIT_TOPIC = "audit.decisions"
QUARANTINE_TOPIC = "exchange.quarantine"
BUNDLE_TOPIC = "policy.bundles"
METADATA_REFRESH_MS = 3000
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 5.0
OUTPUT_LIMIT = 900 * 1024
"""The largest delivery the router produces: within Kafka's default 1 MiB record limit on every topic."""
BUNDLE_TYPE = "exchange.policy-bundle"
SEEN_TYPE = "exchange.router-seen"

_log = get_logger("exchange.router")


class Router:
    """One router process. ``run`` loops until :meth:`stop`; SIGHUP-style reloads via :meth:`request_reload`."""

    def __init__(self, config: RouterConfig, *, load: Callable[[], Snapshot], consent: ConsentSource,
                 settings: Settings | None = None, bootstrap: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.stats = RouterStats()
        self._load = load
        self._snapshot = load()
        self._consent = consent
        self._clock = clock
        self._settings = settings
        self._bootstrap = bootstrap
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.reloads = 0
        self.reload_error: str | None = None
        """Why the last reload failed (the bundle in force was kept), or None."""
        self._guard = ReplayGuard(config.max_skew // timedelta(milliseconds=1) + ID_TIME_TOLERANCE_MS)
        self._partition_counts: dict[str, int] = {}
        self._assignment: list[tuple[str, int]] = []
        self._backoff = _FIRST_BACKOFF_S
        self._batch = Batch()
        self._consumer = Consumer(config.group_id, settings=settings, bootstrap=bootstrap,
                                  overrides={"max.poll.interval.ms": 300_000, "session.timeout.ms": 30_000,
                                             # A pattern subscription sees a topic only once the client's
                                             # metadata lists it: look every few seconds, not librdkafka's 5
                                             # minutes, so fresh ingress topics (and new record types) are
                                             # routed at once.
                                             "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS},
                                  on_assign=self._assigned, on_revoke=self._revoked)
        self._lag = LagGauge(CONSUMER_LAG, self._consumer)
        self._producer = TransactionalProducer(f"exchange-router.{config.router_id}", settings=settings,
                                               bootstrap=bootstrap, overrides={"linger.ms": 5})
        self._log = _log.bind(router_id=config.router_id)
        # Labelled metric children, looked up once: labels() costs a few microseconds on the per-event path.
        self._verified = EVENTS.labels(stage="verify", outcome="ok")
        self._rejected = EVENTS.labels(stage="verify", outcome="rejected")
        self._decided: dict[tuple[str, str, str], Any] = {}
        self._consent_read: dict[int, int] = {}  # the consent positions after the batch's barrier

    @property
    def bundle_id(self) -> str:
        return self._snapshot.index.bundle_id

    # -- control --------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the batch in progress, then leave the group and return from :meth:`run`."""
        self._stop.set()

    def request_reload(self) -> None:
        """Reload registry and policies before the next batch; a broken file keeps the current bundle."""
        self._reload.set()

    def run(self, *, max_idle_s: float | None = None) -> RouterStats:
        """Route until stopped (or, with ``max_idle_s``, until nothing arrived for that long)."""
        self._consumer.subscribe([self.config.pattern])
        self._publish_bundle()
        # Registry, catalogue and policies live as long as the process: keep them out of every GC pass.
        gc.collect()
        gc.freeze()
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    self._reload_snapshot()
                records = self._consumer.poll_batch(self.config.max_batch, self.config.poll_timeout)
                if records:
                    self.route(records)
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                    break
                self._measure_lag()
        finally:
            self._lag.clear()
            self._consumer.close()
            self._consent.close()
            self._producer.flush()
        self._log.info("router stopped", **self._summary())
        return self.stats

    def _measure_lag(self) -> None:
        """``exchange_consumer_lag`` of the ingress partitions, at most once a second; never stops routing."""
        try:
            self._lag.update()
        except KafkaError as exc:
            self._log.warning("consumer lag not measured", error=str(exc))

    # -- one batch ------------------------------------------------------------------------------------------

    def route(self, records: Sequence[ConsumedRecord]) -> None:
        """Route one batch in one transaction; on an abortable failure, abort and consume the batch again."""
        self._consent.sync({r.partition for r in records})  # the consent barrier, as of the batch start
        self._consent_read = dict(self._consent.positions)  # what every decision of the batch saw
        snapshot = self._snapshot
        now = self._clock()
        batch = self._batch
        batch.reset()
        first: dict[tuple[str, int], int] = {}
        offsets: dict[tuple[str, int], int] = {}
        try:
            self._producer.begin()
            for record in records:
                tp = (record.topic, record.partition)
                first.setdefault(tp, record.offset)
                offsets[tp] = record.offset + 1
                self._route_one(record, snapshot, now, batch)
            for (topic, partition), watermark, seen in self._guard.pending():
                self._producer.produce(SEEN_TOPIC, seen, topic.encode(), partition=partition, timestamp_ms=watermark,
                                       headers=router_headers(SEEN_TYPE, now, "application/octet-stream"))
            self._producer.send_offsets(self._consumer, offsets, metadata={
                tp: str(w) for tp, w in self._guard.watermarks(offsets).items()})
            self._producer.commit()
        except KafkaError as exc:
            # Kafka, not a record, failed (a record's own failures are quarantined in _route_one): abort, back off
            # and consume the batch again; nothing is lost and nothing is half-written.
            if exc.fatal:
                raise
            self._log.warning("batch aborted; consuming it again", error=str(exc), records=len(records),
                              retry_in_s=self._backoff)
            self._producer.abort()
            self._guard.abort_batch()
            self.stats.aborted_batches += 1
            for (topic, partition), offset in first.items():
                self._consumer.seek(topic, partition, offset)
            self._stop.wait(self._backoff)
            self._backoff = min(_MAX_BACKOFF_S, self._backoff * 2)
            return
        self._backoff = _FIRST_BACKOFF_S
        self._guard.commit_batch(offsets)
        batch.count_into(self.stats)
        self.stats.events += len(records)
        self.stats.batches += 1

    def _route_one(self, record: ConsumedRecord, snapshot: Snapshot, now: datetime, batch: Batch) -> None:
        """Route one record: its deliveries and entries, or its quarantine record and REJECT entry.

        Whatever a record makes any step raise, it is quarantined (``INTERNAL``, with the exception's type) and
        the stream goes on: what a record produces is gathered first and produced only once all of it is known.
        """
        scope = (record.topic, record.partition)
        admitted: str | None = None
        try:
            event = snapshot.verifier.verify(record)
            self._check_place(record, event)
            self._guard.admit(scope, event.attributes.id, event.id_ms, record.timestamp_ms)
            admitted = event.attributes.id
            outputs, counts = self._decide(record, event, snapshot, now)
        except VerificationError as error:
            if admitted is not None:
                self._guard.release(scope, admitted)
            self._quarantine(record, error, snapshot, now, batch)
            return
        except Exception as exc:  # defence in depth: one record never stops the router
            if admitted is not None:
                self._guard.release(scope, admitted)
            if isinstance(exc, KafkaError):
                raise  # Kafka failed, not the record: the batch is aborted and consumed again
            self._log.exception("a step failed on one record; it is quarantined", topic=record.topic,
                                partition=record.partition, offset=record.offset, error_type=type(exc).__name__)
            internal = InternalError(f"{type(exc).__name__} while routing: {str(exc)[:300]}")
            self._quarantine(record, internal, snapshot, now, batch)
            return
        self._verified.inc()
        produce = self._producer.produce
        for topic, value, key, headers in outputs:
            produce(topic, value, key, headers=headers)
        delivered, denied, entries = counts
        batch.delivered.update(delivered)
        batch.denied.update(denied)
        batch.audit_entries += entries

    def _check_place(self, record: ConsumedRecord, event: VerifiedEvent) -> None:
        """The record is on its type's topic, stamped by the broker, on the partition its key maps to."""
        if record.topic != ingress_topic(event.attributes.type):
            raise SchemaMismatchError(f"a {event.attributes.type} event arrived on {record.topic}")
        if not record.log_append_time:
            raise UntrustedTimestampError(f"{record.topic} stamps records with the producer's time; ingress topics "
                                          "must use message.timestamp.type=LogAppendTime")
        count = self._partition_counts.get(record.topic)
        if count is None:
            count = self._partition_counts[record.topic] = self._consumer.partition_count(record.topic)
        expected = zlib.crc32(event.key) % count  # librdkafka's default (consistent) partitioner
        if record.partition != expected:
            raise WrongPartitionError(f"the key maps to partition {expected} of {record.topic}, not "
                                      f"{record.partition}")

    def _decide(self, record: ConsumedRecord, event: VerifiedEvent, snapshot: Snapshot,
                now: datetime) -> tuple[list[Output], tuple[Counter[str], Counter[str], int]]:
        """Every decision about a verified event: the records to produce and what to count."""
        outputs: list[Output] = []
        delivered: Counter[str] = Counter()
        denied: Counter[str] = Counter()
        facts = EventFacts(event.attributes.id, event.attributes.type, event.attributes.source, event.time,
                           event.key.decode() if event.schema.key_kind == "person" else None, event.record)
        fired = conditions_held(snapshot.index, facts)
        decisions = decide(snapshot.index, facts, self._consent, fired)
        # The facts the decisions rest on, for a verifier once the event is gone: the restrictions that held, and
        # how much of the subject's consent partition (numbered like the ingress partition) was read.
        held = held_restrictions(snapshot.index, facts.record_type, fired) if fired else ()
        consent_offset = self._consent_read.get(record.partition, 0)
        for decided in decisions:
            decision = self._deliver(record, event, decided, snapshot, outputs) if decided.permitted else decided
            if decision.permitted:
                delivered[decision.recipient] += 1
            else:
                denied.update(decision.reasons or ("DENIED",))
            entry, headers = snapshot.entries.decision(event, decision, topic=record.topic,
                                                       partition=record.partition, offset=record.offset, now=now,
                                                       held=held, consent_offset=consent_offset)
            outputs.append((AUDIT_TOPIC, entry, event.key, headers))
            labels = (decision.recipient, str(decision.outcome), decision.reasons[0] if decision.reasons else "")
            counter = self._decided.get(labels)
            if counter is None:
                counter = self._decided[labels] = DECISIONS.labels(*labels)
            counter.inc()
        if delivered:
            ROUTING_LATENCY.observe(max(0.0, (now - event.time).total_seconds()))
        return outputs, (delivered, denied, len(decisions))

    def _deliver(self, record: ConsumedRecord, event: VerifiedEvent, decision: Decision, snapshot: Snapshot,
                 outputs: list[Output]) -> Decision:
        """Add one permitted delivery to ``outputs``; returns the decision as it stands after (fail closed)."""
        if decision.recipient == PUBLIC_RECIPIENT:
            # Open data is public: the publisher's own signed record, unchanged, verifiable by anyone.
            outputs.append((decision.topic, record.value, record.key, record.headers))
            return decision
        try:
            sealed = snapshot.sealer.seal(event, decision)
        except SealError as exc:
            # No valid encryption key for the recipient: nothing can be delivered to it, and the log says so.
            self._log.error("delivery withheld", ce_id=event.attributes.id, recipient=decision.recipient,
                            error=str(exc))
            return decision._replace(outcome=Outcome.DENY, fields=(), withheld=decision.fields + decision.withheld,
                                     reasons=(*decision.reasons, f"UNDELIVERABLE:{exc.reason}"))
        if len(sealed.value) + len(sealed.key) > OUTPUT_LIMIT:  # the broker would refuse it: fail the record now
            raise OversizedRecordError(f"the delivery to {decision.recipient} would have {len(sealed.value)} bytes")
        outputs.append((sealed.topic, sealed.value, sealed.key, sealed.headers))
        return decision

    def _quarantine(self, record: ConsumedRecord, error: VerificationError, snapshot: Snapshot, now: datetime,
                    batch: Batch) -> None:
        topic, partition, offset = record.topic, record.partition, record.offset
        try:
            value, headers = snapshot.entries.quarantine(record.key, record.value, record.headers, error,
                                                         topic=topic, partition=partition, offset=offset, now=now)
        except Exception:  # noqa: BLE001 - a record that cannot be copied is still quarantined, by its place
            self._log.exception("the original cannot be copied into its quarantine record; its place is kept",
                                topic=topic, partition=partition, offset=offset)
            value, headers = snapshot.entries.quarantine(None, None, [], error, topic=topic, partition=partition,
                                                         offset=offset, now=now)
        headers.append(("reason", error.reason.encode()))
        self._producer.produce(QUARANTINE_TOPIC, value, record.key, headers=headers)
        value, headers = snapshot.entries.reject(record.headers, error, bundle_id=snapshot.index.bundle_id,
                                                 topic=topic, partition=partition, offset=offset, now=now)
        self._producer.produce(AUDIT_TOPIC, value, None, headers=headers)
        batch.quarantined[error.reason] += 1
        batch.audit_entries += 1
        self._rejected.inc()
        QUARANTINED.labels(reason=error.reason).inc()
        self._log.warning("record quarantined", reason=error.reason, detail=str(error)[:300], topic=record.topic,
                          partition=record.partition, offset=record.offset)

    # -- policies -------------------------------------------------------------------------------------------

    def _publish_bundle(self) -> None:
        bundle = self._snapshot.index.bundle
        self._producer.begin()
        self._producer.produce(BUNDLE_TOPIC, bundle.data, bundle.id.encode(),
                               headers=router_headers(BUNDLE_TYPE, self._clock(), "application/json"))
        self._producer.commit()
        self._log.info("policy bundle in force", bundle_id=bundle.id)

    def _reload_snapshot(self) -> None:
        try:
            snapshot = self._load()
        except Exception as exc:  # noqa: BLE001 - any failure to load keeps the bundle in force, and says why
            self.reload_error = str(exc)
            self._log.error("policy reload failed; keeping the bundle in force", error=str(exc),
                            bundle_id=self.bundle_id)
            return
        finally:
            self.reloads += 1
        self.reload_error = None
        self._snapshot = snapshot
        self._publish_bundle()

    # -- rebalancing ----------------------------------------------------------------------------------------

    def assigned_partitions(self) -> list[tuple[str, int]]:
        """The ingress partitions this router owns now."""
        return list(self._assignment)

    def _assigned(self, partitions: list[tuple[str, int]]) -> None:
        self._log.info("partitions assigned", partitions=len(partitions))
        self._partition_counts = {t: self._consumer.partition_count(t) for t in {t for t, _ in partitions}}
        self._restore_guard(partitions)
        self._assignment = list(partitions)

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        self._log.info("partitions revoked", partitions=len(partitions))
        gone = set(partitions)
        self._assignment = [tp for tp in self._assignment if tp not in gone]
        # The guard keeps its state: if the partition comes back with nobody having routed it since, it is
        # still exact (see _restore_guard); otherwise it is read back then.
        # A consent partition p serves partition p of every ingress topic: release it only when none is kept.
        revoked = set(partitions)
        kept = {p for tp in self._consumer.assignment() if tp not in revoked for p in (tp[1],)}
        self._consent.release({p for _, p in revoked} - kept)

    def _restore_guard(self, partitions: list[tuple[str, int]]) -> None:
        """Make the replay guard's state of each assigned partition the committed one (exact across restarts
        and rebalances): its watermark from the committed offset's metadata, its ids from ``router.seen``."""
        assigned = set(partitions)
        self._guard.drop([scope for scope in self._guard.scopes() if scope not in assigned])
        if not partitions:
            return
        committed = self._consumer.committed_with_metadata(partitions)
        horizon = self._guard.horizon_ms
        stale: dict[tuple[str, int], tuple[int | None, int]] = {}
        for scope in partitions:
            offset, metadata = committed.get(scope, (-1, ""))
            if not self._guard.current(scope, offset):
                stale[scope] = (int(metadata) if metadata.isascii() and metadata.isdigit() else None, offset)
        if not stale:
            return
        # One read of router.seen for all of them: each seen partition from the earliest time any scope needs.
        since: dict[tuple[str, int], int] = {}
        for (_, partition), (watermark, _) in stale.items():
            start = 0 if watermark is None else max(1, watermark - 2 * horizon)
            since[(SEEN_TOPIC, partition)] = min(since.get((SEEN_TOPIC, partition), start), start)
        values: dict[tuple[str, int], list[bytes]] = {scope: [] for scope in stale}
        for record in read_since(since, settings=self._settings, bootstrap=self._bootstrap, timeout=120.0):
            scope = ((record.key or b"").decode(errors="replace"), record.partition)
            if scope in values and record.value:
                values[scope].append(record.value)
        held = sum(self._guard.restore(scope, watermark, values[scope], offset)
                   for scope, (watermark, offset) in stale.items())
        self._log.info("replay guard restored", partitions=len(stale), ids=held)

    def _summary(self) -> dict[str, object]:
        s = self.stats
        return {"events": s.events, "batches": s.batches, "aborted": s.aborted_batches,
                "delivered": dict(s.delivered), "denied": dict(s.denied), "quarantined": dict(s.quarantined),
                "audit_entries": s.audit_entries}
