"""The policy router on the real broker: exactly the agreed fields, consent with its barrier, pseudonyms,
quarantine of every bad-record kind."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from exchange.consent.manager import ConsentManager
from exchange.demo import bad_records
from exchange.metrics import REGISTRY
from tests.integration.router_world import RunningRouter, World

ROOT = Path(__file__).resolve().parents[2]


def _agreement(name: str) -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((ROOT / "policies" / "agreements" / f"{name}.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def world(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(bootstrap, tmp_path_factory.mktemp("router"))


@pytest.fixture(scope="module")
def router(world: World) -> Iterator[RunningRouter]:
    running = RunningRouter(world)
    yield running
    running.stop()


def test_statutory_delivery_carries_exactly_the_agreed_fields(world: World, router: RunningRouter) -> None:
    """A person-registered event reaches the tax board with exactly its agreement's fields, verified end to end,
    and the access log holds one entry per agreement of the type."""
    before = router.router.stats.events
    records = world.records("population.person-registered", 3, seed=11)
    ids = world.publish("population-registry", "population.person-registered", records)
    router.wait_events(before + 3)

    agreed = _agreement("tcb-person-registered-tax")["fields"]
    received = {d.event_id: d for d in world.deliveries("tax-board", ids)}
    assert sorted(received) == sorted(ids)
    for event_id, record in zip(ids, records, strict=True):
        delivery = received[event_id]
        assert list(delivery.fields) == agreed
        assert delivery.fields == {f: record[f] for f in agreed}
        assert delivery.provenance.source == "population-registry"
        assert delivery.provenance.agreement_id == "tcb-person-registered-tax"

    agreements = [p for p in (ROOT / "policies" / "agreements").glob("*.yaml")
                  if yaml.safe_load(p.read_text())["record_type"] == "population.person-registered"]
    entries = world.decisions(ids)
    assert Counter(e["event_id"] for e in entries) == dict.fromkeys(ids, len(agreements))
    assert all(e["subject_ref"] is not None and e["outcome"] in {"PERMIT", "DENY"} for e in entries)


def test_the_pseudonymising_recipient_never_receives_a_person_id(world: World, router: RunningRouter) -> None:
    """The statistics office gets a recipient pseudonym instead of the person id, in no byte of its records."""
    before = router.router.stats.events
    records = world.records("population.person-registered", 2, seed=12)
    ids = world.publish("population-registry", "population.person-registered", records)
    router.wait_events(before + 2)

    raw = [r for r in world.read("delivery.statistics-office") if dict(r.headers)["ce_id"].decode() in ids]
    assert len(raw) == 2
    for record in raw:
        blob = (record.key or b"") + (record.value or b"") + b"".join(v for _, v in record.headers)
        for person in records:
            assert person["person_id"].encode() not in blob
    by_event = {d.event_id: d for d in world.deliveries("statistics-office", ids)}
    assert sorted(by_event) == sorted(ids)
    for event_id, record in zip(ids, records, strict=True):
        delivery = by_event[event_id]
        assert "person_id" not in delivery.fields
        pseudonymiser = world.context.pseudonymiser
        assert delivery.subject_pseudonym == pseudonymiser.for_recipient("statistics-office", record["person_id"])
        assert delivery.subject_pseudonym != pseudonymiser.subject(record["person_id"])


def test_consent_is_required_granted_and_revoked_with_the_barrier(world: World, router: RunningRouter) -> None:
    """Municipal services get an income assessment only while the citizen's consent is active: denied without
    consent, delivered after a grant, denied after a revocation acknowledged before the event was consumed."""
    person = world.records("tax.income-assessed", 1, seed=13)[0]["person_id"]

    def publish_one(seed: int) -> str:
        before = router.router.stats.events
        (event_id,) = world.publish("tax-board", "tax.income-assessed",
                                    world.records("tax.income-assessed", 1, seed=seed, person_id=person))
        router.wait_events(before + 1)
        return event_id

    def municipal(event_id: str) -> dict[str, object]:
        (entry,) = [e for e in world.decisions([event_id]) if e["recipient"] == "municipal-services"]
        return entry

    without = publish_one(20)
    assert municipal(without)["outcome"] == "DENY"
    assert "NO_CONSENT" in municipal(without)["reason_codes"]

    manager = ConsentManager.connect(world.context)
    consent = manager.grant(person_id=person, recipient="municipal-services", purpose="housing-allowance",
                            record_types=["tax.income-assessed"], expiry=datetime.now(UTC) + timedelta(days=30))
    granted = publish_one(21)
    assert municipal(granted)["outcome"] == "PERMIT"
    assert municipal(granted)["consent_ref"] == f"{consent.consent_id}@{consent.version}"
    assert [d.event_id for d in world.deliveries("municipal-services", [granted])] == [granted]

    manager.revoke(consent.consent_id)  # returns once the broker acknowledged it
    revoked = publish_one(22)
    assert municipal(revoked)["outcome"] == "DENY"
    assert "CONSENT_REVOKED" in municipal(revoked)["reason_codes"]
    assert world.deliveries("municipal-services", [revoked]) == []
    manager.close()


def test_every_bad_record_kind_is_quarantined_and_logged_as_reject(world: World, router: RunningRouter) -> None:
    """Bad signature, unknown key, a source not authoritative, a replayed event, garbage, an unknown schema, no
    envelope at all, a 70,000-byte key, a copy on another partition and an event signed two hours ago with that
    timestamp are each quarantined with their reason and logged as REJECT; the original bytes are kept;
    a good event after them is still delivered."""
    bad = bad_records(world.context, random.Random(30))
    producer = world.raw_producer()
    for record in bad:
        record.produce(producer)
    producer.flush()
    before = router.router.stats.events
    (good,) = world.publish("population-registry", "population.death-registered",
                            world.records("population.death-registered", 1, seed=36))
    router.wait_events(before + len(bad) + 1)

    expected = Counter(b.reason for b in bad if b.reason)
    quarantined = world.quarantined()
    assert Counter(q["reason_code"] for q in quarantined) == expected
    rejects = [e for e in world.decisions() if e["outcome"] == "REJECT"]
    assert Counter(e["reason_codes"][0] for e in rejects) == expected
    assert all(e["subject_ref"] is None and e["recipient"] is None for e in rejects)
    assert all(e["event_id"] != "x" for e in rejects)  # unverified header values stay out of the log
    for record in bad:
        if record.reason:
            kept = next(q for q in quarantined if q["reason_code"] == record.reason)
            assert kept["original_value"] == record.value
            assert kept["original_key"] == record.key
            assert [(h["name"], h["value"]) for h in kept["original_headers"]] == record.headers
    # The stream went on: the good event after the bad ones reached its recipients.
    assert [d.event_id for d in world.deliveries("social-insurance", [good])] == [good]


def test_the_routers_consumer_lag_is_measured(world: World, router: RunningRouter) -> None:
    """exchange_consumer_lag is set for the ingress partitions the router reads, and falls to 0 once it has
    routed everything published."""
    before = router.router.stats.events
    ids = world.publish("population-registry", "population.person-registered",
                        world.records("population.person-registered", 5, seed=31))
    router.wait_events(before + len(ids))
    topic = "ingress.population.person-registered"

    def lags() -> dict[str, float]:
        return {s.labels["partition"]: s.value for metric in REGISTRY.collect()
                if metric.name == "exchange_consumer_lag" for s in metric.samples if s.labels.get("topic") == topic}

    router.wait_for(lambda _r: bool(lags()) and set(lags().values()) == {0.0})
    assert len(lags()) >= 1
