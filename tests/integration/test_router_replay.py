"""No event is routed twice: replays after newer traffic, restarts and rebalances, replays of old events with an
old producer timestamp, and copies put on another partition, all on the real broker."""

from __future__ import annotations

import time
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from exchange.envelope import prepare, seal_events
from exchange.kafka import ConsumedRecord, make_admin
from exchange.router import RouterConfig, RouterThread, build_router
from tests.integration.router_world import World

TYPE = "population.death-registered"
TOPIC = f"ingress.{TYPE}"
AGENCY = "population-registry"


def _original(world: World, event_id: str) -> ConsumedRecord:
    (record,) = [r for r in world.read(TOPIC) if dict(r.headers)["ce_id"].decode() == event_id]
    return record


def _produce_again(world: World, record: ConsumedRecord, *, partition: int | None = None,
                   timestamp_ms: int | None = None) -> None:
    producer = world.raw_producer()
    producer.produce(record.topic, record.value, record.key, headers=record.headers, partition=partition,
                     timestamp_ms=timestamp_ms)
    producer.flush()


def _outcomes(world: World, event_id: str) -> Counter[str]:
    return Counter(e["outcome"] for e in world.decisions([event_id]))


def _route(world: World, router_id: str, events: int) -> None:
    """Run a router of its own group until it has committed ``events`` records."""
    router = RouterThread(build_router(RouterConfig(router_id=router_id, group_id=f"{router_id}-routers"),
                                       world.settings))
    try:
        router.wait_events(events)
    finally:
        router.stop()


def _reasons(world: World) -> list[str]:
    return [q["reason_code"] for q in world.quarantined()]


def test_a_replay_is_refused_after_newer_events_and_after_a_restart(bootstrap: str, tmp_path: Path) -> None:
    """The original, produced again after 1,500 newer events of the same subject — by the same router, then by
    a new one after a restart — is quarantined as REPLAYED both times and delivered once."""
    world = World.create(bootstrap, tmp_path)
    config = RouterConfig(router_id="replay", group_id="replayers", max_batch=200)
    original_record = world.records(TYPE, 1, seed=40)[0]
    (event_id,) = world.publish(AGENCY, TYPE, [original_record])
    newer = world.records(TYPE, 1500, seed=41, person_id=original_record["person_id"])
    world.publish(AGENCY, TYPE, newer)
    first = RouterThread(build_router(config, world.settings))
    try:
        first.wait_events(1501)
        permits = _outcomes(world, event_id)["PERMIT"]
        assert permits >= 1
        original = _original(world, event_id)
        _produce_again(world, original)
        first.wait_events(1502)
    finally:
        first.stop()
    assert _reasons(world) == ["REPLAYED"]

    second = RouterThread(build_router(config, world.settings))  # a new process's memory: only what was committed
    try:
        _produce_again(world, original)
        second.wait_events(1)
    finally:
        second.stop()
    assert _reasons(world) == ["REPLAYED", "REPLAYED"]
    assert _outcomes(world, event_id)["PERMIT"] == permits
    assert [d.event_id for d in world.deliveries("social-insurance", [event_id])] == [event_id]


def test_an_old_event_with_an_old_producer_timestamp_is_refused(bootstrap: str, tmp_path: Path) -> None:
    """An event signed two hours ago with a key valid then, produced with a matching old CreateTime, is refused
    by the broker's clock (LogAppendTime): TIME_SKEW, nothing delivered."""
    world = World.create(bootstrap, tmp_path)
    context = world.context
    schema = context.catalogue.current(TYPE)
    record = world.records(TYPE, 1, seed=42)[0]
    then = datetime.now(UTC) - timedelta(hours=2)
    key = context.pseudonymiser.subject(record["person_id"]).encode()
    (envelope,) = seal_events(AGENCY, [prepare(schema, record, source=AGENCY, key=key, now=then)],
                              context.keystore.signer(AGENCY))
    producer = world.raw_producer()
    producer.produce(envelope.topic, envelope.value, envelope.key, headers=envelope.headers,
                     timestamp_ms=int(then.timestamp() * 1000))
    producer.flush()
    (genuine,) = world.publish(AGENCY, TYPE, world.records(TYPE, 1, seed=43))
    _route(world, "old", 2)
    assert _reasons(world) == ["TIME_SKEW"]
    assert _outcomes(world, envelope.event_id) == {"REJECT": 1}
    assert [d.event_id for d in world.deliveries("social-insurance")] == [genuine]


def test_a_copy_on_another_partition_is_refused(bootstrap: str, tmp_path: Path) -> None:
    """The same record produced to a partition its key does not map to is WRONG_PARTITION, not a second
    routing by whichever router owns that partition."""
    world = World.create(bootstrap, tmp_path)
    (event_id,) = world.publish(AGENCY, TYPE, world.records(TYPE, 1, seed=44))
    original = _original(world, event_id)
    assert original.partition == zlib.crc32(original.key or b"") % 6  # the producers' partitioner
    _produce_again(world, original, partition=(original.partition + 1) % 6)
    _route(world, "moved", 2)
    assert _reasons(world) == ["WRONG_PARTITION"]
    assert [d.event_id for d in world.deliveries("social-insurance")] == [event_id]


def test_a_replay_is_refused_across_rebalances(bootstrap: str, tmp_path: Path) -> None:
    """Routed by one router, then produced again once a second router has joined the group and once the first
    has left: refused both times, whichever router owns the partition."""
    world = World.create(bootstrap, tmp_path)
    (event_id,) = world.publish(AGENCY, TYPE, world.records(TYPE, 1, seed=45))
    a = RouterThread(build_router(RouterConfig(router_id="a", group_id="rebalancers"), world.settings))
    b: RouterThread | None = None
    try:
        a.wait_events(1)
        original = _original(world, event_id)
        b = RouterThread(build_router(RouterConfig(router_id="b", group_id="rebalancers"), world.settings))
        b.wait_for(lambda r: bool(r.assigned_partitions()), timeout=90)
        _produce_again(world, original)
        a.wait_for(lambda _: a.router.stats.events + (b.router.stats.events if b else 0) >= 2, timeout=90)
        a.stop()
        _produce_again(world, original)
        b.wait_for(lambda r: r.stats.events + a.router.stats.events >= 3, timeout=90)
    finally:
        a.stop()
        if b is not None:
            b.stop()
    assert _reasons(world) == ["REPLAYED", "REPLAYED"]
    assert [d.event_id for d in world.deliveries("social-insurance")] == [event_id]


def test_an_ingress_topic_with_producer_timestamps_is_refused(bootstrap: str, tmp_path: Path) -> None:
    """Fail closed: on an ingress topic switched to CreateTime, a genuine event is UNTRUSTED_TIMESTAMP."""
    world = World.create(bootstrap, tmp_path)
    admin = make_admin(bootstrap=bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, world.settings.topic_prefix + TOPIC, incremental_configs=[
        ConfigEntry("message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    # The broker applies a topic's new config a moment after acknowledging it: publish until an event is stamped
    # with its producer's time. Those published before are stamped by the broker and are routed as usual.
    stamped_by_broker: list[str] = []
    deadline = time.monotonic() + 60
    while True:
        (event_id,) = world.publish(AGENCY, TYPE, world.records(TYPE, 1, seed=46 + len(stamped_by_broker)))
        if not _original(world, event_id).log_append_time:
            break
        stamped_by_broker.append(event_id)
        assert time.monotonic() < deadline, "the topic still stamps records with the broker's time after 60 s"
    _route(world, "ct", len(stamped_by_broker) + 1)
    assert _reasons(world) == ["UNTRUSTED_TIMESTAMP"]
    assert _outcomes(world, event_id) == {"REJECT": 1}
    assert sorted(d.event_id for d in world.deliveries("social-insurance")) == sorted(stamped_by_broker)
