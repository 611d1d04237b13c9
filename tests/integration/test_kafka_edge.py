"""The Kafka edge against the real broker: factories, transactions, topics as code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from confluent_kafka import TopicPartition

from exchange.kafka import Consumer, Producer, TransactionalProducer, make_admin, read_to_end
from exchange.kafka.admin import apply_topics
from exchange.topics import TopicInputs, expand, load_spec


def _read_all(consumer: Consumer, want: int, rounds: int = 30) -> list[bytes]:
    """Poll until ``want`` records arrived or ``rounds`` empty polls passed (each poll blocks up to 1 s)."""
    values: list[bytes] = []
    empty = 0
    while len(values) < want and empty < rounds:
        batch = consumer.poll_batch(100, timeout=1.0)
        empty = 0 if batch else empty + 1
        values.extend(r.value or b"" for r in batch)
    return values


def test_produce_and_consume_round_trip(bootstrap: str, make_topic: Callable[..., str], unique: str) -> None:
    """Records produced by the idempotent producer come back in order with their keys and headers."""
    topic = make_topic(f"t.roundtrip.{unique}")
    producer = Producer(bootstrap=bootstrap)
    reports: list[tuple[object, int]] = []
    for i in range(20):
        producer.produce(topic, f"v{i}".encode(), key=b"k", headers=[("ce_id", f"id-{i}".encode())],
                         on_delivery=lambda err, _t, _p, off: reports.append((err, off)))
    producer.flush()
    assert [err for err, _ in reports] == [None] * 20
    assert sorted(off for _, off in reports) == list(range(20))

    with Consumer(f"g.{unique}", [topic], bootstrap=bootstrap) as consumer:
        batch = []
        while len(batch) < 20:
            got = consumer.poll_batch(50, timeout=5.0)
            assert got, "the consumer received nothing within 5 s"
            batch.extend(got)
    assert [r.value for r in batch] == [f"v{i}".encode() for i in range(20)]
    assert batch[3].key == b"k"
    assert batch[3].headers == [("ce_id", b"id-3")]


def test_aborted_transaction_is_invisible_to_read_committed(bootstrap: str, make_topic: Callable[..., str],
                                                            unique: str) -> None:
    """A read_committed consumer sees the committed transaction's records and never the aborted one's."""
    topic = make_topic(f"t.txn.{unique}")
    txn = TransactionalProducer(f"txn-{unique}", bootstrap=bootstrap)
    txn.begin()
    for i in range(5):
        txn.produce(topic, f"aborted-{i}".encode())
    txn.flush()
    txn.abort()
    txn.begin()
    for i in range(3):
        txn.produce(topic, f"committed-{i}".encode())
    txn.commit()

    with Consumer(f"g.{unique}", [topic], bootstrap=bootstrap) as consumer:
        values = _read_all(consumer, want=3)
        # The abort marker and the commit marker are both written; read a little longer to be sure
        # nothing aborted trails the committed records.
        values.extend(_read_all(consumer, want=1, rounds=2))
    assert values == [b"committed-0", b"committed-1", b"committed-2"]


def test_transaction_commits_consumer_offsets(bootstrap: str, make_topic: Callable[..., str], unique: str) -> None:
    """Offsets sent to a committed transaction become the group's committed position (KIP-447)."""
    source = make_topic(f"t.src.{unique}")
    sink = make_topic(f"t.sink.{unique}")
    plain = Producer(bootstrap=bootstrap)
    for i in range(4):
        plain.produce(source, f"in-{i}".encode())
    plain.flush()

    group = f"g.{unique}"
    txn = TransactionalProducer(f"txn-{unique}", bootstrap=bootstrap)
    with Consumer(group, [source], bootstrap=bootstrap) as consumer:
        records = []
        while len(records) < 4:
            got = consumer.poll_batch(10, timeout=5.0)
            assert got, "nothing to consume within 5 s"
            records.extend(got)
        txn.begin()
        for record in records:
            txn.produce(sink, (record.value or b"").replace(b"in", b"out"))
        txn.send_offsets(consumer, {(source, 0): records[-1].offset + 1})
        txn.commit()
        committed = consumer.raw.committed([TopicPartition(source, 0)], timeout=10)
    assert committed[0].offset == 4

    with Consumer(f"g2.{unique}", [sink], bootstrap=bootstrap) as reader:
        assert _read_all(reader, want=4) == [f"out-{i}".encode() for i in range(4)]


def test_topics_apply_is_idempotent(bootstrap: str, tmp_path: Path, unique: str, repo_root: Path) -> None:
    """Applying the shipped spec creates topics the first time and changes nothing the second time."""
    spec = yaml.safe_load((repo_root / "deploy" / "topics.yaml").read_text())
    for family in spec["topics"]:  # this test owns its own set of topics on a shared cluster
        family["name"] = f"{unique}.{family['name']}"
    spec_file = tmp_path / "topics.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    specs = expand(load_spec(spec_file), TopicInputs(("population.address-changed",), ("tax-board",), ()), brokers=1)
    assert all(s.name.startswith(f"{unique}.") for s in specs)

    admin = make_admin(bootstrap=bootstrap)
    first = apply_topics(admin, specs)
    assert {c.topic for c in first if c.action == "create"} == {s.name for s in specs}
    second = apply_topics(admin, specs)
    assert second == []

    # A config drift is repaired, and reported as exactly that one change.
    drifted = [s if s.name != f"{unique}.exchange.quarantine" else
               type(s)(s.name, s.partitions, s.replication_factor, {**s.config, "retention.ms": "3600000"})
               for s in specs]
    third = apply_topics(admin, drifted)
    assert [(c.topic, c.action) for c in third] == [(f"{unique}.exchange.quarantine", "config")]
    assert "-> 3600000" in third[0].detail
    admin.delete_topics([s.name for s in specs], operation_timeout=30)


def test_read_to_end_right_after_a_commit_holds_every_committed_record(
        bootstrap: str, make_topic: Callable[..., str], unique: str) -> None:
    """A commit returns before the broker has written its markers; a read at once still has all of it, and a
    transaction still open when the read starts is waited for, then left out when it never decides."""
    topic = make_topic(f"t.settle.{unique}")
    txn = TransactionalProducer(f"settle-{unique}", bootstrap=bootstrap)
    for round_ in range(5):
        txn.begin()
        for i in range(20):
            txn.produce(topic, f"r{round_}-{i}".encode())
        txn.commit()
        assert len(read_to_end(topic, bootstrap=bootstrap)) == 20 * (round_ + 1)
    txn.begin()
    txn.produce(topic, b"undecided")
    txn.flush()
    values = [r.value for r in read_to_end(topic, bootstrap=bootstrap)]
    txn.abort()
    assert len(values) == 100
    assert b"undecided" not in values
