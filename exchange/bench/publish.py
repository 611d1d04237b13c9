"""``exchange bench publish``: signed publishing (batch 1 and 64) against producing the same records unsigned."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exchange.bench._world import BenchWorld, ensure_topics
from exchange.envelope import format_time, uuid7
from exchange.envelope.attributes import CONTENT_TYPE, dataschema_uri
from exchange.kafka import Producer
from exchange.publisher import Publisher
from exchange.schemas.samples import sample_record

__all__ = ["PublishFigures", "bench_publish"]

RECORD_TYPE = "population.address-changed"
TOPIC = "bench.ingress"


@dataclass(frozen=True)
class PublishFigures:
    events: int
    signed_b1_per_s: float
    signed_b64_per_s: float
    unsigned_per_s: float
    ratio_b64_vs_unsigned: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_publish(world: BenchWorld, events: int, seed: int = 1) -> PublishFigures:
    """Publish ``events`` records three ways and return events/s for each (records are made before timing)."""
    ensure_topics(world.bootstrap, [TOPIC], partitions=6)
    rng = random.Random(seed)  # noqa: S311 - synthetic benchmark data, not secrets
    records = [sample_record(RECORD_TYPE, rng) for _ in range(events)]
    unsigned = _unsigned(world, records)
    b1 = _signed(world, records, batch_size=1)
    b64 = _signed(world, records, batch_size=64)
    return PublishFigures(events, round(b1), round(b64), round(unsigned), round(b64 / unsigned, 3))


def _warm_producer(world: BenchWorld) -> Producer:
    """A producer that has already connected and fetched the topic's metadata, so timing starts warm."""
    producer = Producer(bootstrap=world.bootstrap)
    for _ in range(50):
        producer.produce(TOPIC, b"warm-up", b"warm-up")
    producer.flush(30)
    return producer


def _signed(world: BenchWorld, records: list[dict[str, Any]], batch_size: int) -> float:
    publisher = Publisher.from_keystore(
        "population-registry", world.keystore, registry=world.registry, catalogue=world.catalogue,
        pseudonymiser=world.pseudonymiser, producer=_warm_producer(world), batch_size=batch_size,
        linger_ms=50, topic_for=lambda _type: TOPIC)
    started = time.perf_counter()
    for record in records:
        publisher.publish(RECORD_TYPE, record)
    publisher.flush(timeout=120)
    elapsed = time.perf_counter() - started
    return len(records) / elapsed


def _unsigned(world: BenchWorld, records: list[dict[str, Any]]) -> float:
    """The baseline: the same validation, encoding, pseudonymised key and CloudEvents headers; no commitments,
    no proof, no signature."""
    schema = world.catalogue.current(RECORD_TYPE)
    producer = _warm_producer(world)
    dataschema = dataschema_uri(schema.type_name, schema.revision, schema.fingerprint).encode()
    started = time.perf_counter()
    for record in records:
        value = schema.encode(record)
        now = datetime.now(UTC)
        headers = [("ce_specversion", b"1.0"), ("ce_id", uuid7().encode()), ("ce_source", b"population-registry"),
                   ("ce_type", RECORD_TYPE.encode()), ("ce_time", format_time(now).encode()),
                   ("ce_dataschema", dataschema), ("content-type", CONTENT_TYPE.encode())]
        producer.produce(TOPIC, value, world.pseudonymiser.subject(record["person_id"]).encode(), headers=headers)
        producer.poll(0)
    producer.flush(120)
    return len(records) / (time.perf_counter() - started)
