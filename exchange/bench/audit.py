"""``exchange bench audit``: the sequencer's throughput against a raw transactional pass-through, and the speed
of the integrity check.

All runs happen under a fresh topic prefix:

1. pre-load ``entries`` access-log entries (sample ``exchange.decision`` records) on ``audit.decisions``;
2. **raw pass-through** baseline: the same records read from every partition and written to one partition in
   transactions of the sequencer's batch size, with the offsets — no tree, no state, no checkpoint;
3. **sequencer**: the real one sequences the same records (a checkpoint every 1,000 entries); throughput is
   measured from its first committed batch to its last;
4. **integrity**: ``verify_integrity`` replays the sequenced log in memory (tree and checkpoint signatures);
5. **re-evaluation**, on a real log under a second prefix: signed events routed by a router (about a third as many
   as ``entries``: each has about three decisions), sequenced, then replayed with every decision taken again —
   with each event read back from ingress and verified (``verify_reevaluate_per_s``, what ``exchange audit
   verify`` does while events are retained) and from the facts the entries record (``…_facts_per_s``, an
   archive or a log whose events are gone). Reading the log and its sources from Kafka is timed apart
   (``verify_read_s``).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exchange.audit import (
    AUDIT_IDENTITY,
    Sequencer,
    SequencerConfig,
    read_checkpoints,
    read_log_entries,
    verify_integrity,
)
from exchange.audit.reevaluate import Reevaluator
from exchange.audit.sources import LogSources
from exchange.bench._world import BenchWorld, apply_bench_topics, bench_settings, raw_pass_through
from exchange.bench.router import preload_events, route_events
from exchange.envelope import uuid7
from exchange.kafka import ConsumedRecord, Producer, TransactionalProducer, read_to_end
from exchange.runner import ServiceThread
from exchange.schemas.samples import sample_record
from exchange.settings import Settings
from exchange.topics import TopicSpec

__all__ = ["AuditFigures", "bench_audit"]

DECISIONS = "audit.decisions"
RAW_OUT = "bench.raw-log"
BATCH = 1000


@dataclass(frozen=True)
class AuditFigures:
    entries: int
    sequencer_per_s: float
    raw_per_s: float
    ratio: float
    checkpoints: int
    verify_integrity_per_s: float
    verify_reevaluate_per_s: float
    verify_reevaluate_facts_per_s: float
    reevaluated: int
    verify_read_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_audit(world: BenchWorld, entries: int) -> AuditFigures:
    settings = bench_settings(world)
    apply_bench_topics(settings, [TopicSpec(RAW_OUT, 1, 1, {"retention.ms": "3600000"})])
    _preload(world, settings, entries)
    raw = _raw_pass_through(settings, entries)
    sequenced = _sequence(world, settings, entries)
    notes = read_checkpoints(settings)
    log = read_log_entries(settings)
    verifiers = world.registry.note_verifiers(datetime.now(UTC), identities=[AUDIT_IDENTITY])
    started = time.perf_counter()
    report = verify_integrity(log, notes, verifiers, settings.audit_origin)
    integrity = len(log) / (time.perf_counter() - started)
    if not report.ok:
        raise AssertionError(f"the benchmark's own log does not verify: {report.first_error}")
    reevaluated = _reevaluate(world, max(1, entries // 3))
    return AuditFigures(entries, round(sequenced), round(raw), round(sequenced / raw, 3), report.checkpoints,
                        round(integrity), *reevaluated)


def _reevaluate(world: BenchWorld, events: int) -> tuple[float, float, int, float]:
    """Route ``events`` real events, sequence their decisions, and replay the log taking every decision again."""
    settings = bench_settings(world)  # another log: its sequencer keeps its own record of what it signed
    settings = settings.model_copy(update={"audit_state_dir": world.directory / f"audit-{settings.topic_prefix}"})
    apply_bench_topics(settings, [])
    preload_events(world, settings, events)
    _, stop = route_events(world, settings, events, 1, decisions_per_event=1.0)
    stop()
    decisions = len(read_to_end(DECISIONS, settings=settings))
    _sequence(world, settings, decisions)
    started = time.perf_counter()
    log, notes = read_log_entries(settings), read_checkpoints(settings)
    sources = LogSources.read(settings, world.registry, world.catalogue)
    read_s = time.perf_counter() - started
    verifiers = world.registry.note_verifiers(datetime.now(UTC), identities=[AUDIT_IDENTITY])
    try:
        rates = []
        for reevaluator in (sources.reevaluator(), Reevaluator(world.catalogue, sources.bundles, sources.consents)):
            started = time.perf_counter()
            report = sources.verify(log, notes, verifiers, settings.audit_origin, reevaluator=reevaluator)
            rates.append(len(log) / (time.perf_counter() - started))
            if not report.ok or report.decisions_reevaluated != len(log):
                raise AssertionError(f"the benchmark's routed log does not re-evaluate: {report}")
    finally:
        sources.close()
    return round(rates[0]), round(rates[1]), len(log), round(read_s, 2)


def _preload(world: BenchWorld, settings: Settings, entries: int) -> None:
    rng = random.Random(11)  # noqa: S311 - synthetic benchmark data
    schema = world.catalogue.current("exchange.decision")
    template = sample_record("exchange.decision", rng)
    producer = Producer(settings=settings)
    for _ in range(entries):
        record = {**template, "decision_id": uuid7()}
        producer.produce(DECISIONS, schema.encode(record), rng.randbytes(16).hex().encode())
    producer.flush(120)


def _raw_pass_through(settings: Settings, entries: int) -> float:
    def emit(producer: TransactionalProducer, records: list[ConsumedRecord], before: int) -> None:
        for i, record in enumerate(records):  # as the sequencer: one partition, keyed by index, then its state
            producer.produce(RAW_OUT, record.value, str(before + i).encode(), headers=record.headers, partition=0)
        producer.produce(RAW_OUT, b"state", b"state", partition=0)

    return raw_pass_through(settings, [DECISIONS], entries, BATCH, emit)


def _sequence(world: BenchWorld, settings: Settings, entries: int) -> float:
    config = SequencerConfig(checkpoint_every=BATCH, checkpoint_interval=5.0, max_batch=BATCH)
    running = ServiceThread(Sequencer(config, world.keystore.signer(AUDIT_IDENTITY), settings=settings),
                            "bench-sequencer")
    try:
        running.wait_for(lambda s: s.size > 0, timeout=120)
        started, first = time.perf_counter(), running.service.size
        running.wait_for(lambda s: s.size >= entries, timeout=600)
        elapsed = time.perf_counter() - started
        running.wait_for(lambda s: s.signed is not None and s.signed.size >= entries, timeout=60)
    finally:
        running.stop()
    return (entries - first) / max(elapsed, 1e-9)
