"""The Subscriber on the real broker, with hostile records produced straight onto a delivery topic between the
router's genuine deliveries: every genuine delivery is handed over (in order per partition), every hostile record
reaches on_error with its typed reason, and nothing stops the stream."""

from __future__ import annotations

import os
import time
from collections.abc import Container, Iterator, Sequence

import pytest
from confluent_kafka import Consumer as _Consumer
from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as _TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from exchange.delivery import DeliveryOpener, InternalOpenError, OpenError, ReceivedDelivery
from exchange.kafka import ConsumedRecord, make_admin
from exchange.subscriber import Subscriber
from tests.integration.router_world import RunningRouter, World, drain

RECIPIENT = "tax-board"
TOPIC = f"delivery.{RECIPIENT}"
TYPE = "population.person-registered"
YEAR_10000_MS = 253_402_300_800_000
Headers = list[tuple[str, bytes]]


@pytest.fixture(scope="module")
def world(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    created = World.create(bootstrap, tmp_path_factory.mktemp("hostile"))
    _wait_for_leaders(created)
    return created


def _wait_for_leaders(world: World, timeout: float = 30.0) -> None:
    """Topic creation returns before every partition's leader answers; the router reads its topics' end offsets
    as it starts. Wait until each partition of the world's topics answers that question."""
    prefix = world.settings.topic_prefix
    admin = make_admin(world.settings)
    probe = _Consumer({"bootstrap.servers": world.settings.bootstrap, "group.id": f"{prefix}probe"})
    try:
        parts = [_TopicPartition(name, p) for name, t in admin.list_topics(timeout=10).topics.items()
                 if name.startswith(prefix) for p in t.partitions]
        assert parts, "the world has no topics"
        deadline = time.monotonic() + timeout
        for part in parts:
            while True:
                try:
                    probe.get_watermark_offsets(part, timeout=5)
                    break
                except KafkaException:
                    assert time.monotonic() < deadline, f"{part.topic}[{part.partition}] has no leader yet"
                    time.sleep(0.05)  # polling the partition's leader; the condition is checked above
    finally:
        probe.close()


@pytest.fixture(scope="module")
def router(world: World) -> Iterator[RunningRouter]:
    running = RunningRouter(world)
    yield running
    running.stop()


class _Buggy(DeliveryOpener):
    """The recipient's opener with a bug that one record (its key) triggers: not an OpenError."""

    def open(self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]], topic: str, *,
             timestamp_ms: int = 0) -> ReceivedDelivery:
        if key == b"boom":
            raise KeyError("a bug in the recipient's code")
        return super().open(key, value, headers, topic, timestamp_ms=timestamp_ms)


def _accept_any_timestamp(world: World) -> None:
    """What a 3.x cluster does by default (4.x refuses timestamps over an hour ahead): accept any CreateTime."""
    resource = ConfigResource(ResourceType.TOPIC, world.settings.topic_prefix + TOPIC, incremental_configs=[
        ConfigEntry("message.timestamp.after.max.ms", str(2**63 - 1),
                    incremental_operation=AlterConfigOpType.SET)])
    admin = make_admin(world.settings)  # held until the futures resolve: a collected client cancels them
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def _genuine(world: World, ids: list[str], hostile: Container[tuple[int, int]] = ()) -> list[ConsumedRecord]:
    """The router's deliveries of ``ids`` (the hostile records, some with a copied ce_id, left out)."""
    wanted = set(ids)
    return [r for r in world.read(TOPIC)
            if (r.partition, r.offset) not in hostile and dict(r.headers).get("ce_id", b"").decode() in wanted]


def _hostile(good: ConsumedRecord) -> list[tuple[str, bytes | None, bytes | None, Headers, int, str]]:
    """(what, key, value, headers, timestamp, the reason it must get), from a genuine delivery."""
    assert good.key is not None
    assert good.value is not None

    def header(name: str, raw: bytes) -> Headers:
        return [(n, raw if n == name else v) for n, v in good.headers]

    key, value, headers = good.key, good.value, list(good.headers)
    return [
        ("ce_id of 70 KiB", key, value, header("ce_id", b"i" * 70_000), 0, "MALFORMED_DELIVERY"),
        ("key of 70 KiB", b"k" * 70_000, value, headers, 0, "MALFORMED_DELIVERY"),
        ("agreement of 70 KiB", key, value, header("ce_exagreement", b"a" * 70_000), 0, "MALFORMED_DELIVERY"),
        ("data key of 100 KiB", key, value, header("ce_exdatakey", b"d" * 102_400), 0, "MALFORMED_DELIVERY"),
        ("timestamp past the year 9999", key, value, headers, YEAR_10000_MS, "BAD_DATA_KEY"),
        ("random data key", key, value, header("ce_exdatakey", os.urandom(300)), 0, "BAD_DATA_KEY"),
        ("repeated header", key, value, [*headers, headers[1]], 0, "MALFORMED_DELIVERY"),
        ("unknown header with a 100 KiB name", key, value, [*headers, ("x" * 102_400, b"")], 0,
         "MALFORMED_DELIVERY"),
        ("tombstone", key, None, headers, 0, "MALFORMED_DELIVERY"),
        ("random value", key, b"\x01" + os.urandom(900), headers, 0, "DECRYPT_FAILED"),
        ("a record that trips a bug", b"boom", value, headers, 0, "INTERNAL"),
    ]


def _produce_hostile(world: World, good: ConsumedRecord) -> dict[tuple[int, int], tuple[str, str]]:
    """Produce the hostile records onto ``good``'s partition; (partition, offset) → (what, reason)."""
    producer = world.raw_producer()
    landed: dict[tuple[int, int], tuple[str, str]] = {}
    failures: list[str] = []
    for what, key, value, headers, timestamp, reason in _hostile(good):
        def report(err: KafkaError | None, msg: Message, what: str = what, reason: str = reason) -> None:
            if err is not None:
                failures.append(f"{what}: {err}")
            else:
                landed[(msg.partition() or 0, msg.offset() or 0)] = (what, reason)

        producer.raw.produce(producer.names.physical(TOPIC), value=value, key=key, headers=headers,
                             partition=good.partition, timestamp=timestamp, on_delivery=report)
    assert producer.raw.flush(30) == 0
    assert failures == []
    return landed


def test_hostile_records_never_stop_the_subscriber(world: World, router: RunningRouter, unique: str) -> None:
    """Genuine deliveries from the router, then hostile records on the same partition (70 KiB headers and key,
    a timestamp past 9999, a forged data key, a bug in the opener, …), then more genuine deliveries for the same
    person: the Subscriber hands over every genuine one in order and reports each hostile one with its reason."""
    _accept_any_timestamp(world)
    first = world.records(TYPE, 4, seed=41)
    ids = world.publish("population-registry", TYPE, first)
    router.wait_events(4)
    genuine = _genuine(world, ids)
    assert len(genuine) == 4
    (good,) = _genuine(world, ids[:1])
    hostile = _produce_hostile(world, good)
    person = first[0]["person_id"]  # the same subject, so the same partition: after the hostile records
    ids += world.publish("population-registry", TYPE, world.records(TYPE, 3, seed=42, person_id=person))
    router.wait_events(7)
    genuine = _genuine(world, ids, hostile)
    assert len(genuine) == 7
    last_hostile = max(offset for _, offset in hostile)
    assert len([r for r in genuine if r.partition == good.partition and r.offset > last_hostile]) == 3

    errors: list[tuple[int, int, OpenError]] = []
    c = world.context
    opener = _Buggy(RECIPIENT, c.keystore.encryption_private_key(RECIPIENT), c.registry, c.catalogue)
    with Subscriber(RECIPIENT, settings=world.settings, opener=opener, group_id=f"hostile.{unique}",
                    on_error=lambda r, e: errors.append((r.partition, r.offset, e))) as sub:
        got = drain(sub, want=len(genuine) + len(hostile))
        sub.commit()

    position = {dict(r.headers)["ce_id"].decode(): (r.partition, r.offset) for r in genuine}
    assert sorted(d.event_id for d in got) == sorted(ids)  # each genuine delivery once
    for partition in {p for p, _ in position.values()}:
        offsets = [position[d.event_id][1] for d in got if position[d.event_id][0] == partition]
        assert offsets == sorted(offsets), f"partition {partition} out of order"
    reported = {(p, o): e.reason for p, o, e in errors}
    assert reported == {where: reason for where, (_, reason) in hostile.items()}
    assert all(isinstance(e, OpenError) for _, _, e in errors)
    (internal,) = [e for _, _, e in errors if e.reason == "INTERNAL"]
    assert isinstance(internal, InternalOpenError)
    assert internal.exception_type == "KeyError"
    assert sub.rejected.total() == len(hostile)
    assert sub.received == len(genuine)

