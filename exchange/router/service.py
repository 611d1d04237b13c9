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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from exchange.delivery.errors import SealError
from exchange.envelope import (
    EnvelopeVerifier,
    ReplayedEventError,
    SchemaMismatchError,
    VerificationError,
    VerifiedEvent,
    ingress_topic,
)
from exchange.kafka import ConsumedRecord, Consumer, Headers, TransactionalProducer, TransactionError
from exchange.log import get_logger
from exchange.metrics import DECISIONS, EVENTS, QUARANTINED, ROUTING_LATENCY
from exchange.policy import PUBLIC_RECIPIENT, ConsentView, Decision, EventFacts, Outcome, PolicyIndex, decide
from exchange.router.entries import EntryWriter
from exchange.router.replay import ReplayWindow
from exchange.settings import Settings

__all__ = ["ConsentSource", "Router", "RouterConfig", "RouterStats", "Sealer", "Snapshot"]

AUDIT_TOPIC = "audit.decisions"
QUARANTINE_TOPIC = "exchange.quarantine"
BUNDLE_TOPIC = "policy.bundles"
INGRESS_PATTERN = r"^ingress\..*"

_log = get_logger("exchange.router")


class ConsentSource(ConsentView, Protocol):
    """The router's consent view: answers lookups and honours the barrier."""

    def sync(self, partitions: Iterable[int], timeout: float = 30.0) -> object: ...
    def release(self, partitions: Iterable[int]) -> None: ...
    def close(self) -> None: ...


class Sealed(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> Headers: ...


class Sealer(Protocol):
    """Minimises and encrypts one permitted delivery."""

    def seal(self, event: VerifiedEvent, decision: Decision) -> Sealed: ...


@dataclass(frozen=True)
class Snapshot:
    """Everything a batch is routed with; replaced as a whole when policies are reloaded."""

    index: PolicyIndex
    verifier: EnvelopeVerifier
    entries: EntryWriter
    sealer: Sealer


@dataclass(frozen=True)
class RouterConfig:
    router_id: str = "router-0"
    group_id: str = "exchange-router"
    pattern: str = INGRESS_PATTERN
    max_batch: int = 500
    poll_timeout: float = 0.05  # a light load is not held back waiting for a full batch
    replay_window: int = 100_000
    replay_seed: int = 10_000


@dataclass
class RouterStats:
    """What the router has done since it started (committed batches only)."""

    events: int = 0
    batches: int = 0
    aborted_batches: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    denied: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    audit_entries: int = 0


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
        self._replay = ReplayWindow(config.replay_window)
        self._batch = _Batch()
        self._consumer = Consumer(config.group_id, settings=settings, bootstrap=bootstrap,
                                  overrides={"max.poll.interval.ms": 300_000, "session.timeout.ms": 30_000},
                                  on_assign=self._assigned, on_revoke=self._revoked)
        self._producer = TransactionalProducer(f"exchange-router.{config.router_id}", settings=settings,
                                               bootstrap=bootstrap, overrides={"linger.ms": 5})
        self._log = _log.bind(router_id=config.router_id)
        # Labelled metric children, looked up once: labels() costs a few microseconds on the per-event path.
        self._verified = EVENTS.labels(stage="verify", outcome="ok")
        self._rejected = EVENTS.labels(stage="verify", outcome="rejected")
        self._decided: dict[tuple[str, str, str], Any] = {}

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
        finally:
            self._consumer.close()
            self._consent.close()
            self._producer.flush()
        self._log.info("router stopped", **self._summary())
        return self.stats

    # -- one batch ------------------------------------------------------------------------------------------

    def route(self, records: Sequence[ConsumedRecord]) -> None:
        """Route one batch in one transaction; on an abortable failure, abort and consume the batch again."""
        self._consent.sync({r.partition for r in records})  # the consent barrier, as of the batch start
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
            self._producer.send_offsets(self._consumer, offsets)
            self._producer.commit()
        except TransactionError as exc:
            if exc.fatal:
                raise
            self._log.warning("batch aborted; consuming it again", error=str(exc), records=len(records))
            self._producer.abort()
            self._replay.abort_batch()
            self.stats.aborted_batches += 1
            for (topic, partition), offset in first.items():
                self._consumer.seek(topic, partition, offset)
            return
        self._replay.commit_batch()
        batch.count_into(self.stats)
        self.stats.events += len(records)
        self.stats.batches += 1

    def _route_one(self, record: ConsumedRecord, snapshot: Snapshot, now: datetime, batch: _Batch) -> None:
        try:
            event = snapshot.verifier.verify(record)
            if record.topic != ingress_topic(event.attributes.type):
                raise SchemaMismatchError(f"a {event.attributes.type} event arrived on {record.topic}")
            if self._replay.check_and_hold((record.topic, record.partition), event.attributes.id):
                raise ReplayedEventError(f"event {event.attributes.id} was routed before")
        except VerificationError as error:
            self._quarantine(record, error, snapshot, now, batch)
            return
        self._verified.inc()
        facts = EventFacts(event.attributes.id, event.attributes.type, event.attributes.source, event.time,
                           event.key.decode() if event.schema.key_kind == "person" else None, event.record)
        for decided in decide(snapshot.index, facts, self._consent):
            decision = self._deliver(record, event, decided, snapshot) if decided.permitted else decided
            if decision.permitted:
                batch.delivered[decision.recipient] += 1
                ROUTING_LATENCY.observe(max(0.0, (now - event.time).total_seconds()))
            else:
                batch.denied.update(decision.reasons or ("DENIED",))
            labels = (decision.recipient, str(decision.outcome), decision.reasons[0] if decision.reasons else "")
            counter = self._decided.get(labels)
            if counter is None:
                counter = self._decided[labels] = DECISIONS.labels(*labels)
            counter.inc()
            entry = snapshot.entries.decision(event, decision, topic=record.topic, partition=record.partition,
                                              offset=record.offset, now=now)
            self._producer.produce(AUDIT_TOPIC, entry, event.key)
            batch.audit_entries += 1

    def _deliver(self, record: ConsumedRecord, event: VerifiedEvent, decision: Decision,
                 snapshot: Snapshot) -> Decision:
        """Produce one permitted delivery; returns the decision as it stands after delivery (fail closed)."""
        if decision.recipient == PUBLIC_RECIPIENT:
            # Open data is public: the publisher's own signed record, unchanged, verifiable by anyone.
            self._producer.produce(decision.topic, record.value, record.key, headers=record.headers)
            return decision
        try:
            sealed = snapshot.sealer.seal(event, decision)
        except SealError as exc:
            # No valid encryption key for the recipient: nothing can be delivered to it, and the log says so.
            self._log.error("delivery withheld", ce_id=event.attributes.id, recipient=decision.recipient,
                            error=str(exc))
            return decision._replace(outcome=Outcome.DENY, fields=(), withheld=decision.fields + decision.withheld,
                                     reasons=(*decision.reasons, f"UNDELIVERABLE:{exc.reason}"))
        self._producer.produce(sealed.topic, sealed.value, sealed.key, headers=sealed.headers)
        return decision

    def _quarantine(self, record: ConsumedRecord, error: VerificationError, snapshot: Snapshot, now: datetime,
                    batch: _Batch) -> None:
        topic, partition, offset = record.topic, record.partition, record.offset
        self._producer.produce(QUARANTINE_TOPIC, snapshot.entries.quarantine(
            record.key, record.value, record.headers, error, topic=topic, partition=partition, offset=offset,
            now=now), record.key, headers=[("ce_type", b"exchange.quarantine"), ("reason", error.reason.encode())])
        self._producer.produce(AUDIT_TOPIC, snapshot.entries.reject(
            record.headers, error, bundle_id=snapshot.index.bundle_id, topic=topic, partition=partition,
            offset=offset, now=now), None)
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
        self._producer.produce(BUNDLE_TOPIC, bundle.data, bundle.id.encode())
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

    def _assigned(self, partitions: list[tuple[str, int]]) -> None:
        self._log.info("partitions assigned", partitions=len(partitions))
        self._seed_replay_window(partitions)

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        self._log.info("partitions revoked", partitions=len(partitions))
        self._replay.drop(partitions)
        # A consent partition p serves partition p of every ingress topic: release it only when none is kept.
        revoked = set(partitions)
        kept = {p for tp in self._consumer.assignment() if tp not in revoked for p in (tp[1],)}
        self._consent.release({p for _, p in revoked} - kept)

    def _seed_replay_window(self, partitions: list[tuple[str, int]]) -> None:
        """Remember the ids routed just before each partition's committed offset (survives restarts)."""
        if self.config.replay_seed <= 0 or not partitions:
            return
        committed = {tp: o for tp, o in self._consumer.committed(partitions).items() if o > 0}
        if not committed:
            return
        reader = Consumer(f"{self.config.group_id}.replay-seed", settings=self._settings, bootstrap=self._bootstrap)
        try:
            reader.assign([(t, p, max(0, o - self.config.replay_seed)) for (t, p), o in committed.items()])
            remaining = dict(committed)
            verifier = self._snapshot.verifier
            while remaining:
                batch = reader.poll_batch(1000, timeout=2.0)
                if not batch:
                    break
                for record in batch:
                    tp = (record.topic, record.partition)
                    if tp not in remaining or record.offset >= remaining[tp]:
                        continue
                    if record.offset == remaining[tp] - 1:
                        del remaining[tp]
                    try:
                        self._replay.add(tp, [verifier.verify(record).attributes.id])
                    except VerificationError:
                        continue
        finally:
            reader.close()

    def _summary(self) -> dict[str, object]:
        s = self.stats
        return {"events": s.events, "batches": s.batches, "aborted": s.aborted_batches,
                "delivered": dict(s.delivered), "denied": dict(s.denied), "quarantined": dict(s.quarantined),
                "audit_entries": s.audit_entries}


@dataclass
class _Batch:
    """Counts of the batch in progress; added to the stats only when its transaction commits."""

    delivered: Counter[str] = field(default_factory=Counter)
    denied: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    audit_entries: int = 0

    def reset(self) -> None:
        self.delivered.clear()
        self.denied.clear()
        self.quarantined.clear()
        self.audit_entries = 0

    def count_into(self, stats: RouterStats) -> None:
        stats.delivered.update(self.delivered)
        stats.denied.update(self.denied)
        stats.quarantined.update(self.quarantined)
        stats.audit_entries += self.audit_entries
