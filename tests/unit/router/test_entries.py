"""Access-log entries: joined from cached pieces, byte for byte what encoding the whole record gives."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exchange.envelope import BadKeyError, VerifiedEvent
from exchange.policy import ConsentRef, Decision, Outcome
from exchange.router.entries import EntryWriter
from exchange.schemas import Catalogue, RecordValidationError
from tests.unit.delivery.support import T0, Keys, permit, signed_events

TYPE = "tax.income-assessed"


@pytest.fixture(scope="module")
def catalogue(repo_root: Path) -> Catalogue:
    return Catalogue.load(repo_root / "schemas")


@pytest.fixture(scope="module")
def events(catalogue: Catalogue) -> list[VerifiedEvent]:
    keys = Keys()
    return [*signed_events(catalogue, keys, keys.registry(), TYPE, 3),
            *signed_events(catalogue, keys, keys.registry(), "population.person-registered", 2)]


def _writer(catalogue: Catalogue) -> EntryWriter:
    return EntryWriter("router-7", catalogue, frozenset({"tax-board"}), frozenset({TYPE}))


Place = tuple[str, int, int]


Facts = tuple[tuple[str, ...], int | None]
NO_FACTS: Facts = ((), None)


def _entry(writer: EntryWriter, event: VerifiedEvent, decision: Decision, place: Place, now: datetime,
           facts: Facts = NO_FACTS) -> bytes:
    topic, partition, offset = place
    held, consent_offset = facts
    value, headers = writer.decision(event, decision, topic=topic, partition=partition, offset=offset, now=now,
                                     held=held, consent_offset=consent_offset)
    found = dict(headers)
    assert found["ce_type"] == b"exchange.decision"
    assert found["ce_source"] == b"exchange-router"
    assert found["ce_id"] in value  # the entry's own decision id is its CloudEvents id
    return value


def _expected(catalogue: Catalogue, entry: bytes, event: VerifiedEvent, decision: Decision, place: Place,
              now: datetime, facts: Facts = NO_FACTS) -> bytes:
    """The whole-record encoding of the entry (with the decision id the entry drew)."""
    schema, decoded = catalogue.decode(entry)
    topic, partition, offset = place
    a = event.attributes
    record: dict[str, Any] = {
        "decision_id": decoded["decision_id"], "decided_at": now, "router_id": "router-7", "event_id": a.id,
        "event_type": a.type, "event_source": a.source, "ingress_topic": topic, "ingress_partition": partition,
        "ingress_offset": offset, "event_digest": event.digest, "subject_ref": event.key,
        "recipient": decision.recipient, "agreement_id": decision.agreement_id,
        "agreement_version": decision.agreement_version, "bundle_id": decision.bundle_id,
        "purpose": decision.purpose, "legal_basis": decision.legal_basis,
        "consent_ref": None if decision.consent_ref is None else str(decision.consent_ref),
        "outcome": decision.outcome, "reason_codes": list(decision.reasons),
        "fields_released": list(decision.fields) if decision.permitted else [],
        "event_time": event.time, "restrictions_held": list(facts[0]), "consent_offset": facts[1],
    }
    return schema.encode(record)


def _decisions() -> list[Decision]:
    shared = permit("statistics-office", TYPE, ("tax_year", "taxable_income_cents"), pseudonymise=True)
    deny = Decision(Outcome.DENY, "municipal-services", "agr-m", 2, "benefits", "consent", None, (),
                    ("tax_year",), ("NO_CONSENT",), False, "delivery.municipal-services", "bundle-test")
    consented = [Decision(Outcome.PERMIT, "municipal-services", "agr-m", 2, "benefits", "consent",
                          ConsentRef(f"consent-{i % 2}", 1 + i % 2), ("tax_year",), (), (), False,
                          "delivery.municipal-services", "bundle-test") for i in range(4)]
    undeliverable = shared._replace(outcome=Outcome.DENY, fields=(), withheld=shared.fields,
                                    reasons=("UNDELIVERABLE:RECIPIENT_KEY",))
    return [shared, deny, shared, *consented, undeliverable, deny, shared]


def test_entries_equal_the_whole_record_encoding(catalogue: Catalogue, events: list[VerifiedEvent]) -> None:
    """Every entry, with cached and fresh pieces alike, is the bytes of encoding the whole record."""
    writer = _writer(catalogue)
    ids = set()
    for n, event in enumerate(events):
        now = T0 + timedelta(milliseconds=n // 2)  # batches share their time
        for offset in (n, n, n + 100):  # the same event at the same and at another place
            # the facts an entry records change with the event, and may change for the same event
            for facts in (NO_FACTS, (("r-young",), 7 * n), (("r-young", "r-secret"), 0), NO_FACTS):
                for decision in _decisions():
                    place = (f"ingress.{event.attributes.type}", n % 3, offset)
                    entry = _entry(writer, event, decision, place, now, facts)
                    assert entry == _expected(catalogue, entry, event, decision, place, now, facts)
                    ids.add(catalogue.decode(entry)[1]["decision_id"])
    assert len(ids) == len(events) * 3 * 4 * len(_decisions())  # a fresh decision id per entry


def test_more_decisions_than_the_cache_holds(catalogue: Catalogue, events: list[VerifiedEvent]) -> None:
    """Past the cache's bound (it is emptied), entries are still exact."""
    writer = _writer(catalogue)
    event, place = events[0], (f"ingress.{TYPE}", 0, 5)
    for i in range(4200):
        decision = permit("tax-board", TYPE, ("tax_year",), agreement=f"agr-{i}")
        entry = _entry(writer, event, decision, place, T0)
        if i % 500 == 0 or i > 4090:
            assert entry == _expected(catalogue, entry, event, decision, place, T0)


def test_a_bad_value_is_reported_as_before(catalogue: Catalogue, events: list[VerifiedEvent]) -> None:
    """A value that does not encode raises the whole-record error, even when an equal good value is cached."""
    writer = _writer(catalogue)
    event, place = events[0], (f"ingress.{TYPE}", 0, 5)
    good = permit("tax-board", TYPE, ("tax_year",), version=1)
    _entry(writer, event, good, place, T0)
    with pytest.raises(RecordValidationError, match="agreement_version"):
        _entry(writer, event, good._replace(agreement_version=True), place, T0)
    with pytest.raises(RecordValidationError, match="decided_at"):
        _entry(writer, event, good, place, T0.replace(tzinfo=None))
    with pytest.raises(RecordValidationError, match="recipient"):
        _entry(writer, event, good._replace(recipient=7), place, T0)  # type: ignore[arg-type]  # a bad value on purpose
    with pytest.raises(RecordValidationError, match="fields_released"):
        _entry(writer, event, good._replace(fields=["tax_year", 3]), place, T0)  # type: ignore[arg-type]  # unhashable and bad


def test_a_quarantine_record_copies_the_original_or_names_its_place(catalogue: Catalogue) -> None:
    """The original is copied whole, with CloudEvents headers of the quarantine record itself; one too large
    for the quarantine topic is named by its place and size instead, so producing it can never fail."""
    writer = _writer(catalogue)
    error = BadKeyError("the key has 70000 bytes")
    small, headers = writer.quarantine(b"k", b"value", [("ce_id", b"x")], error, topic="ingress.t", partition=2,
                                       offset=9, now=T0)
    _, record = catalogue.decode(small)
    assert (record["original_value"], record["original_key"], record["reason_code"]) == (b"value", b"k", "BAD_KEY")
    assert dict(headers)["ce_type"] == b"exchange.quarantine"
    large, _ = writer.quarantine(b"k", bytes(2 * 1024 * 1024), [], error, topic="ingress.t", partition=2, offset=10,
                                 now=T0)
    _, record = catalogue.decode(large)
    assert record["original_value"] is None
    assert "kept only at its place of origin" in record["detail"]
    assert (record["original_topic"], record["original_partition"], record["original_offset"]) == ("ingress.t", 2, 10)
    assert len(large) < 4096
