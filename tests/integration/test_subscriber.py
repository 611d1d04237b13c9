"""The Subscriber against the real broker: sealed deliveries come back as typed, verified records; tampered ones
are reported and skipped; offsets are committed only after the caller processed a batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exchange.delivery import DeliverySealer, OpenError, SealedDelivery
from exchange.kafka import ConsumedRecord, Producer
from exchange.schemas import Catalogue
from exchange.subscriber import Subscriber
from tests.integration.router_world import drain
from tests.unit.delivery.support import PSEUDO, Keys, permit, signed_events

TYPE = "population.address-changed"
FIELDS = ("person_id", "postal_code", "municipality_code", "moved_on")
RECIPIENT = "municipal-services"


def _produce(bootstrap: str, deliveries: list[SealedDelivery], topic: str) -> None:
    producer = Producer(bootstrap=bootstrap)
    for d in deliveries:
        producer.produce(topic, d.value, d.key, headers=d.headers)
    producer.flush()


def test_subscriber_yields_verified_records_and_skips_tampered_ones(
        bootstrap: str, make_topic: Callable[..., str], unique: str, repo_root: Path) -> None:
    """Six good deliveries come back typed and equal to the permitted fields; three tampered ones are reported."""
    catalogue = Catalogue.load(repo_root / "schemas")
    keys = Keys()
    registry = keys.registry()
    topic = make_topic(f"delivery.{RECIPIENT}.{unique}")
    sealer = DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO)
    decision = permit(RECIPIENT, TYPE, FIELDS)._replace(topic=topic)
    events = signed_events(catalogue, keys, registry, TYPE, n=9)
    good = [sealer.seal(e, decision) for e in events[:6]]

    flipped = sealer.seal(events[6], decision)
    flipped = SealedDelivery(topic, flipped.key, flipped.value[:-5] + bytes([flipped.value[-5] ^ 1])
                             + flipped.value[-4:], flipped.headers)
    swapped = sealer.seal(events[7], decision)
    other_id = dict(good[0].headers)["ce_id"]
    swapped = SealedDelivery(topic, swapped.key, swapped.value,
                             [(n, other_id if n == "ce_id" else v) for n, v in swapped.headers])
    for_police = sealer.seal(events[8], permit("police-board", TYPE, FIELDS)._replace(topic=topic))
    _produce(bootstrap, [*good[:3], flipped, swapped, for_police, *good[3:]], topic)

    errors: list[tuple[int, str]] = []

    def report(record: ConsumedRecord, error: OpenError) -> None:
        errors.append((record.offset, error.reason))

    def subscriber() -> Subscriber:
        return Subscriber(RECIPIENT, encryption_key=keys.encryption[RECIPIENT], registry=registry,
                          catalogue=catalogue, bootstrap=bootstrap, topic=topic, group_id=f"g.{unique}",
                          on_error=report)

    with subscriber() as first:
        got = drain(first, want=9)
        # Closed without commit: the group has no position yet.
    assert [d.event_id for d in got] == [e.attributes.id for e in events[:6]]
    for delivery, event in zip(got, events[:6], strict=True):
        assert delivery.record_type == TYPE
        assert delivery.fields == {name: event.record[name] for name in FIELDS}
        assert delivery.provenance.source == "population-registry"
        assert delivery.provenance.agreement_id == "test-agreement"
    assert errors == [(3, "DECRYPT_FAILED"), (4, "DECRYPT_FAILED"), (5, "WRONG_RECIPIENT")]

    errors.clear()
    with subscriber() as second:
        again = drain(second, want=9)
        second.commit()
    assert [d.event_id for d in again] == [d.event_id for d in got]  # at-least-once: nothing was committed
    assert len(errors) == 3

    (late,) = signed_events(catalogue, keys, registry, TYPE, n=1, seed=99)
    _produce(bootstrap, [sealer.seal(late, decision)], topic)
    with subscriber() as third:
        after = drain(third, want=1)
    assert [d.event_id for d in after] == [late.attributes.id]  # the committed batch is not read again
