"""The Publisher against the real broker: what it produces verifies; what is wrong never leaves."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from exchange.envelope import CommitmentMismatchError, EnvelopeVerifier, Pseudonymiser
from exchange.errors import ConfigError
from exchange.kafka import ConsumedRecord, Consumer, Producer
from exchange.publisher import Delivery, Publisher
from exchange.registry.errors import NotAuthoritativeError
from exchange.schemas import Catalogue
from exchange.schemas.errors import RecordValidationError
from exchange.schemas.samples import sample_record
from tests.keys import ROOT, identity_signers, registry_with_keys

TYPE = "population.address-changed"
PSEUDO = Pseudonymiser(b"integration-pseudonym-secret-01")


@pytest.fixture(scope="module")
def world() -> tuple[Catalogue, dict, object]:
    signers = identity_signers()
    return Catalogue.load(ROOT / "schemas"), signers, registry_with_keys(signers)


def _consume(bootstrap: str, topic: str, want: int, group: str) -> list[ConsumedRecord]:
    records: list[ConsumedRecord] = []
    with Consumer(group, [topic], bootstrap=bootstrap) as consumer:
        empty = 0
        while len(records) < want and empty < 20:
            batch = consumer.poll_batch(100, timeout=1.0)
            empty = 0 if batch else empty + 1
            records.extend(batch)
    return records


def _publisher(world: tuple, bootstrap: str, topic: str, deliveries: list[Delivery], batch_size: int) -> Publisher:
    catalogue, signers, registry = world
    return Publisher("population-registry", signer=signers["population-registry"], registry=registry,
                     catalogue=catalogue, pseudonymiser=PSEUDO, producer=Producer(bootstrap=bootstrap),
                     batch_size=batch_size, linger_ms=10_000, on_delivery=deliveries.append,
                     topic_for=lambda _type: topic)


def test_published_records_are_read_back_and_verify(world: tuple, bootstrap: str,
                                                    make_topic: Callable[..., str], unique: str) -> None:
    """Ten records in batches of four (the last one sealed by flush) all arrive, verify, and decode as sent."""
    topic = make_topic(f"{unique}.ingress.{TYPE}", partitions=3)
    rng = random.Random(3)
    originals = [sample_record(TYPE, rng) for _ in range(10)]
    deliveries: list[Delivery] = []
    with _publisher(world, bootstrap, topic, deliveries, batch_size=4) as publisher:
        ids = [publisher.publish(TYPE, r) for r in originals]
    assert sorted(d.event_id for d in deliveries) == sorted(ids)
    assert all(d.ok and d.offset >= 0 and d.topic == topic for d in deliveries)
    assert publisher.delivered == 10

    catalogue, _, registry = world
    verifier = EnvelopeVerifier(registry, catalogue)
    received = _consume(bootstrap, topic, 10, f"g-{unique}")
    events = {e.attributes.id: e for e in (verifier.verify(r) for r in received)}
    assert sorted(events) == sorted(ids)
    for event_id, original in zip(ids, originals, strict=True):
        assert events[event_id].record == original
    # Every record of one citizen lands in one partition: the key is the subject pseudonym.
    for r in received:
        person = events[dict(r.headers)["ce_id"].decode()].record["person_id"]
        assert r.key == PSEUDO.subject(person).encode()
        assert person.encode() not in r.key


def test_a_tampered_copy_fails_verification(world: tuple, bootstrap: str, make_topic: Callable[..., str],
                                           unique: str) -> None:
    """A record copied with one field changed and produced again is caught as a commitment mismatch."""
    topic = make_topic(f"{unique}.ingress.{TYPE}")
    catalogue, _, registry = world
    with _publisher(world, bootstrap, topic, [], batch_size=1) as publisher:
        publisher.publish(TYPE, sample_record(TYPE, random.Random(5)))
    (original,) = _consume(bootstrap, topic, 1, f"g1-{unique}")
    schema, record = catalogue.decode(original.value or b"")
    forged = catalogue.encode(schema, {**record, "street_address": "Forged street 1"})
    producer = Producer(bootstrap=bootstrap)
    producer.produce(topic, forged, original.key, headers=original.headers)
    producer.flush()
    both = _consume(bootstrap, topic, 2, f"g2-{unique}")
    verifier = EnvelopeVerifier(registry, catalogue)
    verifier.verify(both[0])
    with pytest.raises(CommitmentMismatchError):
        verifier.verify(both[1])


def test_bad_records_never_reach_kafka(world: tuple, bootstrap: str, make_topic: Callable[..., str],
                                       unique: str) -> None:
    """A record with bad fields, or of a type the agency is not authoritative for, is refused before producing."""
    topic = make_topic(f"{unique}.ingress.{TYPE}")
    deliveries: list[Delivery] = []
    publisher = _publisher(world, bootstrap, topic, deliveries, batch_size=1)
    bad = {**sample_record(TYPE, random.Random(8)), "moved_on": "yesterday", "postal_code": 12345}
    del bad["municipality_code"]
    with pytest.raises(RecordValidationError) as info:
        publisher.publish(TYPE, bad)
    problems = " ".join(info.value.problems)
    assert "moved_on" in problems
    assert "postal_code" in problems
    assert "municipality_code" in problems
    with pytest.raises(NotAuthoritativeError):
        publisher.publish("tax.income-assessed", sample_record("tax.income-assessed", random.Random(1)))
    publisher.flush()
    assert deliveries == []
    assert publisher.published == 0
    with Consumer(f"g-{unique}", bootstrap=bootstrap) as consumer:
        assert consumer.end_offsets([(topic, 0)]) == {(topic, 0): 0}


def test_publisher_refuses_a_key_the_registry_does_not_list(world: tuple, bootstrap: str) -> None:
    """A publisher whose signing key is not registered fails at construction, not on every event."""
    catalogue, _, _ = world
    registry = registry_with_keys(identity_signers())  # other keys than the publisher's
    signer = identity_signers()["population-registry"]
    with pytest.raises(ConfigError, match="cannot publish with key"):
        Publisher("population-registry", signer=signer, registry=registry, catalogue=catalogue,
                  pseudonymiser=PSEUDO, producer=Producer(bootstrap=bootstrap),
                  clock=lambda: datetime.now(UTC))
