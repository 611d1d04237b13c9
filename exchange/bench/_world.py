"""A throw-away world for benchmarks: keys in a temporary keystore, a registry that lists them, topics."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from exchange.context import Context
from exchange.envelope import Pseudonymiser
from exchange.kafka import ConsumedRecord, Consumer, TransactionalProducer, make_admin
from exchange.kafka.admin import apply_topics, broker_count
from exchange.kafka.local import deploy_dir
from exchange.registry import Keystore, Registry, make_demo_keystore
from exchange.schemas import Catalogue
from exchange.settings import Settings, get_settings
from exchange.topics import TopicSpec, discover_inputs, expand, load_spec

__all__ = ["BenchWorld", "Emit", "apply_bench_topics", "bench_settings", "delete_namespaces", "make_world",
           "raw_pass_through"]

Emit = Callable[[TransactionalProducer, list[ConsumedRecord], int], None]
"""Produces a batch's outputs in the open transaction (the batch, and how many records came before it)."""


@dataclass
class BenchWorld:
    bootstrap: str
    registry: Registry
    catalogue: Catalogue
    keystore: Keystore
    pseudonymiser: Pseudonymiser
    directory: Path
    namespaces: list[str] = field(default_factory=list)
    """The topic prefixes its runs used (:func:`bench_settings`), deleted by :func:`delete_namespaces`."""


def make_world(bootstrap: str, settings: Settings | None = None) -> BenchWorld:
    """Fresh keys for every identity in a temporary keystore (mode 0600) and the registry that lists them."""
    settings = settings or get_settings()
    directory = Path(tempfile.mkdtemp(prefix="exchange-bench-"))
    registry_file = directory / "registry.yaml"
    make_demo_keystore(directory / "keystore", settings.registry, registry_file)
    context = Context(settings)
    return BenchWorld(bootstrap, Registry.load(registry_file), context.catalogue, Keystore(directory / "keystore"),
                      Pseudonymiser(b"benchmark-pseudonym-secret-0001"), directory)


def ensure_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = make_admin(bootstrap=bootstrap)
    rf = 1 if broker_count(admin) < 3 else 3
    apply_topics(admin, [TopicSpec(n, partitions, rf, {"retention.ms": "3600000"}) for n in names],
                 prefix=get_settings().topic_prefix)


def bench_settings(world: BenchWorld) -> Settings:
    """The settings of one benchmark run: the world's keys and registry, a fresh topic namespace."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    world.namespaces.append(prefix)
    return get_settings().model_copy(update={
        "bootstrap": world.bootstrap, "topic_prefix": prefix,
        "registry": world.directory / "registry.yaml", "keystore": world.directory / "keystore",
        "pseudonym_secret": SecretStr("benchmark-pseudonym-secret-0001"),
        "audit_state_dir": world.directory / "audit-state",
    })


def delete_namespaces(world: BenchWorld) -> int:
    """Delete the topics of every namespace the world's runs used (a broker keeps files open per partition:
    benchmarks must not pile them up); how many were deleted."""
    if not world.namespaces:
        return 0
    admin = make_admin(bootstrap=world.bootstrap)
    prefixes = tuple(world.namespaces)
    topics = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefixes)]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=60).values():
            future.result(timeout=60)
    world.namespaces.clear()
    return len(topics)


def apply_bench_topics(settings: Settings, extra: list[TopicSpec]) -> None:
    """The exchange's topics (deploy/topics.yaml) and ``extra`` ones, under the run's namespace."""
    inputs = discover_inputs(settings.schemas, settings.registry, settings.policies)
    specs = expand(load_spec(deploy_dir().parent / "topics.yaml"), inputs, brokers=1)
    apply_topics(make_admin(settings), [*specs, *extra], prefix=settings.topic_prefix)


def raw_pass_through(settings: Settings, topics: list[str], records: int, batch: int, emit: Emit) -> float:
    """A baseline: read ``records`` from ``topics`` in a fresh group and, in transactions of ``batch`` records,
    produce what ``emit`` produces with the offsets, and nothing else; records/s from the first batch on."""
    consumer = Consumer(f"bench-raw-{uuid.uuid4().hex[:6]}", topics, settings=settings)
    producer = TransactionalProducer(f"bench-raw-{uuid.uuid4().hex[:6]}", settings=settings)
    done, started = 0, 0.0
    try:
        while done < records:
            polled = consumer.poll_batch(batch, timeout=1.0)
            if not polled:
                continue
            started = started or time.perf_counter()
            producer.begin()
            emit(producer, polled, done)
            offsets = {(r.topic, r.partition): r.offset + 1 for r in polled}
            producer.send_offsets(consumer, offsets)
            producer.commit()
            done += len(polled)
    finally:
        consumer.close()
    return records / max(time.perf_counter() - started, 1e-9)
