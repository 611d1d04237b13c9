"""``exchange bench router``: routing throughput and publish-to-delivery latency, against a raw pass-through.

All runs happen under a fresh topic prefix, so a benchmark never mixes with other data on the cluster:

1. pre-load ``events`` signed events (types with about three subscribing agreements each);
2. **raw pass-through** baseline: a consumer group reads the same records and, in transactions of the same
   size, produces as many messages as the router will (copies of the input), with the offsets — no
   verification, decision or encryption;
3. **routing**: ``routers`` router processes (one in this process when 1) route the same records; throughput is
   measured from the first to the last access-log entry committed;
4. **latency**: with the routers caught up, events are published at a steady rate and their deliveries read
   back; latency is delivery receipt minus ``ce_time``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exchange.bench._world import BenchWorld, apply_bench_topics, bench_settings, raw_pass_through
from exchange.context import Context
from exchange.envelope import parse_time
from exchange.kafka import ConsumedRecord, Consumer, Producer, TransactionalProducer
from exchange.publisher import Publisher
from exchange.router import RouterConfig, build_router
from exchange.schemas.samples import sample_record
from exchange.settings import Settings
from exchange.topics import TopicSpec

__all__ = ["TYPES", "RouterFigures", "bench_router", "preload_events", "route_events"]

TYPES = {"population.person-registered": "population-registry", "tax.income-assessed": "tax-board"}
AUDIT = "audit.decisions"
RAW_OUT = "bench.raw-output"  # the baseline's own output: the access log must hold only the routers' entries
BATCH = 500


@dataclass(frozen=True)
class RouterFigures:
    events: int
    routers: int
    events_per_s: float
    raw_events_per_s: float
    ratio: float
    latency_ms_p50: float
    latency_ms_p99: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_router(world: BenchWorld, events: int, routers: int = 1, latency_events: int = 2000) -> RouterFigures:
    settings = bench_settings(world)
    apply_bench_topics(settings, [TopicSpec(RAW_OUT, 6, 1, {"retention.ms": "3600000"})])
    preload_events(world, settings, events)
    policies = Context(settings).policies
    decisions = {t: len(policies.agreements_for(t)) for t in TYPES}
    # Messages the router writes per event: an access-log entry per agreement, a delivery per permit (every
    # agreement here permits but the consent-based one: the synthetic citizens gave no consent).
    outputs = [decisions[t] + sum(1 for a in policies.agreements_for(t) if not a.consent_based) for t in TYPES]
    raw = _raw_pass_through(settings, events, round(sum(outputs) / len(outputs)))
    routed, stop_routers = route_events(world, settings, events, routers, decisions_per_event=sum(decisions.values())
                                  / len(decisions))
    try:
        p50, p99 = _latency(world, settings, latency_events)
    finally:
        stop_routers()
    return RouterFigures(events, routers, round(routed), round(raw), round(routed / raw, 3), round(p50, 2),
                         round(p99, 2))


# -- set-up -----------------------------------------------------------------------------------------------------

def _publisher(world: BenchWorld, settings: Settings, agency: str, producer: Producer) -> Publisher:
    return Publisher.from_keystore(agency, world.keystore, registry=world.registry, catalogue=world.catalogue,
                                   pseudonymiser=world.pseudonymiser, producer=producer, batch_size=64,
                                   linger_ms=5)


def preload_events(world: BenchWorld, settings: Settings, events: int) -> None:
    """Publish ``events`` signed sample events of :data:`TYPES`, alternating."""
    rng = random.Random(7)  # noqa: S311 - synthetic benchmark data
    producer = Producer(settings=settings)
    publishers = {a: _publisher(world, settings, a, producer) for a in set(TYPES.values())}
    kinds = list(TYPES.items())
    for i in range(events):
        record_type, agency = kinds[i % len(kinds)]
        publishers[agency].publish(record_type, sample_record(record_type, rng))
    for publisher in publishers.values():
        publisher.flush(timeout=120)


# -- the runs ---------------------------------------------------------------------------------------------------

def _raw_pass_through(settings: Settings, events: int, outputs_per_event: int) -> float:
    def emit(producer: TransactionalProducer, records: list[ConsumedRecord], _before: int) -> None:
        for record in records:
            for _ in range(outputs_per_event):
                producer.produce(RAW_OUT, record.value, record.key, headers=record.headers)

    return raw_pass_through(settings, [r"^ingress\..*"], events, BATCH, emit)


def route_events(world: BenchWorld, settings: Settings, events: int, routers: int,
           decisions_per_event: float) -> tuple[float, Callable[[], None]]:
    """Start the routers, wait until they have routed ``events``; returns events/s and a function to stop them."""
    group = f"bench-routers-{uuid.uuid4().hex[:6]}"
    if routers == 1:
        router = build_router(RouterConfig(router_id=f"{group}-0", group_id=group), settings)
        thread = threading.Thread(target=router.run, daemon=True)
        thread.start()

        def progress() -> tuple[int, float]:
            return router.stats.events, time.perf_counter()

        def stop() -> None:
            router.stop()
            thread.join(timeout=60)
    else:
        procs = [_router_process(settings, f"{group}-{i}", group) for i in range(routers)]
        counter = _Counter(settings)

        def progress() -> tuple[int, float]:
            routed = int(counter.poll() / decisions_per_event)
            # Seconds on the routers' own clock: the entries' timestamps, first entry to last.
            return routed, (counter.last_ms - counter.first_ms) / 1000

        def stop() -> None:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)
            counter.close()

    in_process = routers == 1  # else progress() already measures from the first entry
    first = 0.0
    deadline = time.monotonic() + 600
    while True:
        done, now = progress()
        if done and not first and in_process:
            first = now
        if done >= events:
            break
        if time.monotonic() > deadline:
            stop()
            raise TimeoutError(f"routers routed {done} of {events} events in 10 minutes")
        time.sleep(0.01)  # sampling progress counters
    return events / max(now - first, 1e-9), stop


def _router_process(settings: Settings, router_id: str, group: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EXCHANGE_BOOTSTRAP": settings.bootstrap or "", "EXCHANGE_TOPIC_PREFIX": settings.topic_prefix,
           "EXCHANGE_REGISTRY": str(settings.registry), "EXCHANGE_KEYSTORE": str(settings.keystore),
           "EXCHANGE_SCHEMAS": str(settings.schemas), "EXCHANGE_POLICIES": str(settings.policies),
           "EXCHANGE_PSEUDONYM_SECRET": "benchmark-pseudonym-secret-0001", "EXCHANGE_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "exchange", "router", "run", "--id", router_id,  # noqa: S603 - fixed argv
                             "--group", group], env=env, stdout=subprocess.DEVNULL)


class _Counter:
    """Counts committed access-log entries (multi-process runs) and remembers the first and last entry's
    timestamp, set when a router produced it: the routing interval does not depend on when this reader joined."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer(f"bench-count-{uuid.uuid4().hex[:6]}", [AUDIT], settings=settings)
        self._entries = 0
        self.first_ms = 0
        self.last_ms = 0

    def poll(self) -> int:
        for record in self._consumer.poll_batch(5000, timeout=0.05):
            self._entries += 1
            self.first_ms = min(self.first_ms or record.timestamp_ms, record.timestamp_ms)
            self.last_ms = max(self.last_ms, record.timestamp_ms)
        return self._entries

    def close(self) -> None:
        self._consumer.close()


def _latency(world: BenchWorld, settings: Settings, n: int) -> tuple[float, float]:
    """Publish ``n`` events at a steady pace with the routers running; latency to the tax board's delivery."""
    reader = Consumer(f"bench-latency-{uuid.uuid4().hex[:6]}", ["delivery.tax-board"], settings=settings,
                      overrides={"auto.offset.reset": "latest"})
    while not reader.assignment():
        reader.poll_batch(1, timeout=0.2)
    rng = random.Random(11)  # noqa: S311 - synthetic benchmark data
    producer = Producer(settings=settings)
    publisher = _publisher(world, settings, "population-registry", producer)
    latencies: list[float] = []
    sent = 0
    pace = 1 / 1000  # 1,000 events/s: a steady load well below the measured throughput
    start = time.perf_counter()
    deadline = time.monotonic() + 120
    while len(latencies) < n and time.monotonic() < deadline:
        while sent < n and time.perf_counter() - start >= sent * pace:
            publisher.publish("population.person-registered", sample_record("population.person-registered", rng))
            sent += 1
        publisher.poll()
        for record in reader.poll_batch(500, timeout=0.001):
            received = datetime.now(UTC)
            ce_time = parse_time(dict(record.headers)["ce_time"].decode())
            latencies.append((received - ce_time).total_seconds() * 1000)
    publisher.flush()
    reader.close()
    if not latencies:
        return float("nan"), float("nan")
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
