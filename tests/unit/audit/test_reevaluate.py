"""Taking every access-log decision again: an entry the router wrote stands, every kind of untrue entry is named
at its index, by check, with what is wrong; with the ingress record retained the facts an entry records must be
the event's, and once it is gone the recorded facts are used."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exchange.audit.reevaluate import ConsentReplay, Reevaluator
from exchange.audit.sources import decision_checker, verify_decisions
from exchange.audit.verify import Discrepancy
from exchange.consent import ConsentLedger
from exchange.crypto.checkpoint import Checkpoint, sign_checkpoint
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.crypto.note import Verifier
from exchange.envelope import MalformedEnvelopeError
from exchange.kafka import ConsumedRecord
from exchange.policy import RECIPIENT_PSEUDONYM, ConsentStatus, PolicySet, make_bundle
from exchange.policy import reasons as r

from .reevaluate_support import T0, Events, Made, World

ADDRESS, INCOME, VEHICLE = "population.address-changed", "tax.income-assessed", "vehicle.vehicle-registered"
HOUSING = "municipal-services"  # the consent-based recipient of income assessments
Entry = dict[str, Any]


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def protected(world: World) -> Made:
    """An address change of a protected person: the restriction holds."""
    return world.route(ADDRESS, seed=2, address_protected=True)


@pytest.fixture(scope="module")
def plain(world: World) -> Made:
    return world.route(ADDRESS, seed=3, address_protected=False)


class Consented:
    """One subject's consent granted at offset 0 and revoked at offset 1 of consent partition 0, and income
    assessments of theirs decided having read 0, 1 and 2 records of it."""

    def __init__(self, world: World) -> None:
        self.subject = world.record(INCOME, seed=4)[1].key.decode()
        self.artefacts = world.consents(self.subject, ConsentStatus.REVOKED)
        self.records = world.consent_records({0: self.artefacts})
        self.made = [world.route(INCOME, seed=4, consent=world.ledger(self.records, {0: n}), consent_offset=n)
                     for n in range(3)]
        self.before, self.during, self.after = (m.entry(HOUSING) for m in self.made)


@pytest.fixture(scope="module")
def consented(world: World) -> Consented:
    return Consented(world)


def _check(world: World, entry: Entry, *, retained: Made | Sequence[Made] = (), records: Any = None,
           index: int = 7) -> Discrepancy | None:
    """What a re-evaluator finds in ``entry``, with the ingress records of ``retained`` (none: no event source)."""
    kept = [retained] if isinstance(retained, Made) else list(retained)
    events = Events({m.place: m.record for m in kept}) if kept else None
    return world.reevaluator(records, events=events).check(index, entry)


def _fails(found: Discrepancy | str | None, check: str, *words: str, index: int = 7) -> None:
    assert isinstance(found, Discrepancy), f"the untrue entry re-evaluated as {found!r}"
    assert (found.index, found.check) == (index, check), found
    for word in words:
        assert word in found.detail, found


# --- the router's own entries stand -----------------------------------------------------------------------------

@pytest.mark.parametrize("retained", [True, False], ids=["event retained", "event gone"])
def test_the_routers_entries_reevaluate_clean(world: World, protected: Made, plain: Made, consented: Consented,
                                              retained: bool) -> None:
    """Statutory, restricted, pseudonymising and consent-based decisions, PERMIT and DENY, taken again from the
    bundle (and the consent log as each decision saw it) give exactly what the entries say."""
    made = [protected, plain, *consented.made, world.route(VEHICLE, seed=5)]
    events = Events({m.place: m.record for m in made}) if retained else None
    reevaluator = world.reevaluator(consented.records, events=events)
    entries = [e for m in made for e in m.entries]
    assert [reevaluator.check(i, e) for i, e in enumerate(entries)] == [None] * len(entries)
    assert reevaluator.reevaluated == len(entries)
    # The cases are what they are meant to be.
    assert protected.entry("tax-board")["reason_codes"] == [r.restricted_field("protected-address")]
    assert protected.entry("tax-board")["restrictions_held"] == ["protected-address"]
    assert "street_address" in protected.entry("police-board")["fields_released"]
    assert plain.entry("statistics-office")["fields_released"][0] == RECIPIENT_PSEUDONYM
    assert plain.entry("tax-board")["legal_basis"].startswith("statute:Taxation Act")
    assert [e["reason_codes"] for e in (consented.before, consented.during, consented.after)] == [
        [r.NO_CONSENT], [], [r.CONSENT_REVOKED]]
    assert consented.during["consent_ref"] == f"{consented.artefacts[0].consent_id}@1"
    assert plain.entry(HOUSING, "school-placement")["reason_codes"] == [r.AGREEMENT_EXPIRED]


def test_the_log_verifies_and_counts_only_decisions(world: World, protected: Made) -> None:
    """Through verify_decisions: a REJECT entry is not taken again and is not counted; PERMIT and DENY are."""
    reject, _ = world.writer.reject([], MalformedEnvelopeError("no ce_id"), bundle_id=world.index.bundle_id,
                                    topic=f"ingress.{ADDRESS}", partition=0, offset=99, now=T0)
    values = [world.encode(e) for e in protected.entries]
    values.insert(2, reject)
    signer = Signer.generate("exchange-audit")
    tree = CompactTree()
    for value in values:
        tree.append(leaf_hash(value))
    note = sign_checkpoint(Checkpoint("test.local/log", tree.size, tree.root()), [signer])
    reevaluator = world.reevaluator()
    report = verify_decisions(list(enumerate(values)), [note], [Verifier(signer.name, signer.public_key)],
                              "test.local/log", catalogue=world.catalogue, reevaluator=reevaluator)
    assert report.ok, report.first_error
    assert report.decisions_reevaluated == len(protected.entries) == len(values) - 1
    assert reevaluator.check(50, dict(world.catalogue.decode(reject)[1])) is None
    assert reevaluator.reevaluated == len(protected.entries)


def test_a_decision_turned_into_a_reject_is_refused(world: World, protected: Made) -> None:
    """A REJECT is not taken again, so one that still records a decision's recipient, agreement, subject or
    fields (a PERMIT relabelled to hide it) is refused by its shape."""
    reevaluator = world.reevaluator()
    permit = protected.entry("police-board")
    relabelled = {**permit, "outcome": "REJECT"}
    error = reevaluator.check(7, relabelled)
    assert error is not None
    assert (error.index, error.check) == (7, "decision not supported")
    assert "recipient" in error.detail
    emptied = {**relabelled, **dict.fromkeys(("recipient", "agreement_id", "agreement_version", "purpose",
                                               "legal_basis", "consent_ref", "subject_ref", "event_digest",
                                               "event_time", "consent_offset")), "reason_codes": ["BAD_SIGNATURE"]}
    error = reevaluator.check(8, emptied)
    assert error is not None  # still its fields released
    assert "fields released" in error.detail
    assert reevaluator.check(9, {**emptied, "fields_released": []}) is None
    assert reevaluator.reevaluated == 0


# --- untrue entries are named ----------------------------------------------------------------------------------

Edit = Callable[[World, Made, Made, Consented], tuple[Entry, tuple[str, ...]]]


def _edited(base: Entry, **changes: Any) -> Entry:
    return {**base, **changes}


UNTRUE: dict[str, Edit] = {
    "a field outside the agreement": lambda w, p, a, c: (
        _edited(a.entry("tax-board"), fields_released=[*a.entry("tax-board")["fields_released"], "dwelling_type"]),
        ("dwelling_type",)),
    "a restricted field to an unlisted recipient": lambda w, p, a, c: (
        _edited(p.entry("tax-board"), fields_released=["person_id", "street_address", "municipality_code",
                                                       "moved_on"]), ("street_address",)),
    "the restriction's reason dropped": lambda w, p, a, c: (
        _edited(p.entry("tax-board"), reason_codes=[]), ("reason_codes",)),
    "another purpose": lambda w, p, a, c: (_edited(a.entry("tax-board"), purpose="law-enforcement"), ("purpose",)),
    "another legal basis": lambda w, p, a, c: (_edited(a.entry("police-board"), legal_basis="consent"),
                                               ("legal_basis",)),
    "another consent": lambda w, p, a, c: (_edited(c.during, consent_ref="0197a0b0-0000-7000-8000-00000000beef@1"),
                                           ("consent_ref",)),
    "a consent dropped": lambda w, p, a, c: (_edited(c.during, consent_ref=None), ("consent_ref",)),
    "a PERMIT after the revocation": lambda w, p, a, c: (_edited(c.during, consent_offset=2),
                                                         ("claims PERMIT", r.CONSENT_REVOKED)),
    "the revocation's DENY turned PERMIT": lambda w, p, a, c: (
        _edited(c.after, outcome="PERMIT", reason_codes=[], fields_released=c.during["fields_released"]),
        (r.CONSENT_REVOKED,)),
    "a PERMIT before the grant": lambda w, p, a, c: (_edited(c.during, consent_offset=0), (r.NO_CONSENT,)),
    "an expired agreement's DENY turned PERMIT": lambda w, p, a, c: (
        _edited(a.entry(HOUSING, "school-placement"), outcome="PERMIT", reason_codes=[],
                fields_released=["person_id", "postal_code", "municipality_code", "moved_on"]),
        (r.AGREEMENT_EXPIRED,)),
    "a not yet valid agreement's DENY turned PERMIT": lambda w, p, a, c: (
        _edited(w.route(VEHICLE, seed=6).entry("statistics-office"), outcome="PERMIT", reason_codes=[],
                fields_released=[RECIPIENT_PSEUDONYM, "make", "model", "first_registered_on"]),
        (r.AGREEMENT_NOT_YET_VALID,)),
    "an agreement the bundle does not have": lambda w, p, a, c: (
        _edited(a.entry("tax-board"), agreement_id="tcb-address-changed-tax-2"), ("has no agreement",)),
    "another version of the agreement": lambda w, p, a, c: (
        _edited(a.entry("tax-board"), agreement_version=2), ("has no agreement", "v2")),
    "a recipient without the agreement": lambda w, p, a, c: (
        _edited(a.entry("tax-board"), recipient="vehicle-registry"), ("has no agreement", "vehicle-registry")),
}


@pytest.mark.parametrize("retained", [True, False], ids=["event retained", "event gone"])
@pytest.mark.parametrize("kind", sorted(UNTRUE))
def test_an_untrue_entry_is_found_at_its_index(world: World, protected: Made, plain: Made, consented: Consented,
                                               kind: str, retained: bool) -> None:
    entry, words = UNTRUE[kind](world, protected, plain, consented)
    by_place = {m.place: m for m in (protected, plain, *consented.made)}
    source = by_place.get((entry["ingress_topic"], entry["ingress_partition"], entry["ingress_offset"]))
    found = _check(world, entry, retained=[source] if retained and source else [], records=consented.records)
    _fails(found, "decision not supported", *words)


def _moved(entry: Entry, at: datetime) -> Entry:
    return _edited(entry, event_time=at)


def test_an_event_time_outside_the_agreements_window(world: World, plain: Made) -> None:
    """Once the event is gone its recorded time decides the window, [valid_from, valid_until): a PERMIT at a time
    before the agreement began, or at its end, is not supported."""
    early = datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)  # the tax board's agreement begins in 2024
    _fails(_check(world, _moved(plain.entry("tax-board"), early)), "decision not supported", "claims PERMIT",
           r.AGREEMENT_NOT_YET_VALID)
    school = _edited(plain.entry(HOUSING, "school-placement"), outcome="PERMIT", reason_codes=[],
                     fields_released=["person_id", "postal_code", "municipality_code", "moved_on"])
    _fails(_check(world, _moved(school, datetime(2024, 1, 1, tzinfo=UTC))), "decision not supported",
           r.AGREEMENT_EXPIRED)
    assert _check(world, _moved(school, datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC))) is None  # within it
    # While the event is retained, a recorded time that is not the event's is itself the discrepancy.
    _fails(_check(world, _moved(school, datetime(2023, 6, 1, tzinfo=UTC)), retained=plain), "event mismatch",
           "event time")


def test_consent_in_another_partition_supports_nothing(world: World, consented: Consented) -> None:
    """The consent state is the ingress partition's own: the same records in partition 1 grant nothing in 0."""
    elsewhere = {1: consented.records[0]}
    _fails(_check(world, consented.during, records=elsewhere), "decision not supported", r.NO_CONSENT)
    assert _check(world, consented.before, records=elsewhere) is None


# --- an undeliverable PERMIT -----------------------------------------------------------------------------------

def _undeliverable(entry: Entry, reason: str = "UNDELIVERABLE:RECIPIENT_KEY") -> Entry:
    return _edited(entry, outcome="DENY", fields_released=[], reason_codes=[*entry["reason_codes"], reason])


def test_an_undeliverable_permit_stands(world: World, protected: Made, consented: Consented) -> None:
    """What the router logs when it cannot seal a PERMIT's delivery: a DENY releasing nothing, with the engine's
    reasons and one trailing UNDELIVERABLE code."""
    for entry in (protected.entry("tax-board"), protected.entry("statistics-office"), consented.during):
        assert _check(world, _undeliverable(entry), retained=protected, records=consented.records) is None
    assert _check(world, _undeliverable(protected.entry("police-board"), "UNDELIVERABLE:NO_KEY")) is None


@pytest.mark.parametrize("change", [
    {"purpose": "law-enforcement"}, {"legal_basis": "consent"}, {"consent_ref": "c-1@1"},
    {"fields_released": ["person_id"]}, {"reason_codes": ["UNDELIVERABLE:RECIPIENT_KEY"]},
    {"reason_codes": [r.restricted_field("protected-address"), "UNDELIVERABLE:A", "UNDELIVERABLE:B"]},
    {"reason_codes": ["UNDELIVERABLE:RECIPIENT_KEY", r.restricted_field("protected-address")]},
    {"reason_codes": [r.restricted_field("protected-address"), "RECIPIENT_KEY"]},
    {"reason_codes": [r.restricted_field("other"), "UNDELIVERABLE:RECIPIENT_KEY"]},
])
def test_an_undeliverable_deny_that_differs_otherwise_does_not_stand(world: World, protected: Made,
                                                                     change: Entry) -> None:
    entry = _edited(_undeliverable(protected.entry("tax-board")), **change)
    _fails(_check(world, entry, retained=protected), "decision not supported")


def test_undeliverable_does_not_excuse_the_engines_deny(world: World, plain: Made, consented: Consented) -> None:
    """Only a PERMIT becomes undeliverable: the code added to a DENY the engine gave is an edit."""
    for entry in (plain.entry(HOUSING, "school-placement"), consented.after):
        _fails(_check(world, _undeliverable(entry), records=consented.records), "decision not supported",
               "reason_codes")


# --- bundles ---------------------------------------------------------------------------------------------------

def test_an_unknown_bundle(world: World, plain: Made) -> None:
    other = "sha256:" + "0" * 64
    _fails(_check(world, _edited(plain.entry("tax-board"), bundle_id=other)), "unknown bundle", other)


def test_a_bundle_that_is_not_canonical_is_ignored(world: World, plain: Made) -> None:
    """The same policies pretty-printed have no reproducible id: entries naming either id name no bundle."""
    pretty = json.dumps(json.loads(world.bundle), indent=2).encode()
    for bundles in ([pretty], [pretty, b"{not json", b""]):
        reevaluator = world.reevaluator(bundles=bundles)
        _fails(reevaluator.check(7, plain.entry("tax-board")), "unknown bundle", world.index.bundle_id)
    assert _check(world, plain.entry("tax-board")) is None  # the canonical bytes themselves are known


def test_a_bundle_that_does_not_compile_with_the_catalogue(world: World, plain: Made) -> None:
    agreement = world.index.bundle.policy_set.agreements[0].model_copy(update={"record_type": "population.unknown"})
    bundle = make_bundle(PolicySet(agreements=(agreement,)), world.index.bundle.registry)
    found = world.reevaluator(bundles=[world.bundle, bundle.data]).check(
        7, _edited(plain.entry("tax-board"), bundle_id=bundle.id))
    _fails(found, "unknown bundle", "does not compile")


# --- the facts: from the event while retained, from the entry once it is gone -----------------------------------

@pytest.mark.parametrize("events", [None, Events()], ids=["no event source", "the record is gone"])
def test_without_the_event_the_recorded_facts_are_used(world: World, protected: Made, consented: Consented,
                                                       events: Events | None) -> None:
    reevaluator = world.reevaluator(consented.records, events=events)
    entries = [*protected.entries, consented.during, consented.after]
    assert [reevaluator.check(i, e) for i, e in enumerate(entries)] == [None] * len(entries)
    if events is not None:
        assert protected.place in events.asked
    # Without the event, the entry's own facts must still support its decision: the restriction it hides applied.
    _fails(reevaluator.check(7, _edited(protected.entry("tax-board"), restrictions_held=[], ingress_offset=1000)),
           "decision not supported", "reason_codes")


def test_an_entry_without_the_facts_fails_clearly(world: World, protected: Made) -> None:
    _fails(_check(world, _edited(protected.entry("tax-board"), event_time=None)), "decision not supported",
           "is gone", "does not record the event's facts")
    _fails(_check(world, _edited(protected.entry("tax-board"), restrictions_held=["no-such-restriction"])),
           "decision not supported", "no-such-restriction", ADDRESS)


def test_a_record_that_is_not_the_entrys_event(world: World, protected: Made, plain: Made) -> None:
    entry = protected.entry("tax-board")
    _fails(_check(world, _edited(entry, event_digest=bytes(32)), retained=protected), "event mismatch",
           "not the one the entry names")
    _fails(_check(world, _edited(entry, event_id=plain.entry("tax-board")["event_id"]), retained=protected),
           "event mismatch", "not the one the entry names")
    at_its_place = Events({protected.place: plain.record})
    _fails(world.reevaluator(events=at_its_place).check(7, entry), "event mismatch", "not the one the entry names")
    value = bytearray(protected.record.value or b"")
    value[-1] ^= 1
    kept = protected.record
    forged = ConsumedRecord(kept.topic, kept.partition, kept.offset, kept.key, bytes(value), kept.headers,
                            kept.timestamp_ms)
    _fails(world.reevaluator(events=Events({protected.place: forged})).check(7, entry), "event mismatch",
           "does not verify")


def test_recorded_facts_that_contradict_the_event(world: World, protected: Made, plain: Made) -> None:
    _fails(_check(world, _edited(protected.entry("tax-board"), restrictions_held=[]), retained=protected),
           "event mismatch", "restrictions")
    _fails(_check(world, _edited(plain.entry("police-board"), restrictions_held=["protected-address"]),
                  retained=plain), "event mismatch", "restrictions")
    moved = plain.entry("tax-board")["event_time"] + timedelta(microseconds=1)
    _fails(_check(world, _moved(plain.entry("tax-board"), moved), retained=plain), "event mismatch", "event time")


def test_entries_of_one_event_are_each_checked(world: World, protected: Made) -> None:
    """The event is read once for its entries in a row, and a later one of them contradicting it is still found."""
    events = Events({protected.place: protected.record})
    reevaluator = world.reevaluator(events=events)
    untrue = _edited(protected.entry("police-board"), restrictions_held=[])
    entries = [*protected.entries, untrue]
    found = [reevaluator.check(i, e) for i, e in enumerate(entries)]
    assert found[:-1] == [None] * len(protected.entries)
    _fails(found[-1], "event mismatch", index=len(protected.entries))
    assert events.asked == [protected.place]


def _revision_1(world: World, entry: Entry) -> Entry:
    schema, decoded = world.catalogue.decode(world.encode(entry, revision=1))
    assert schema.revision == 1
    assert "consent_offset" not in decoded
    return dict(decoded)


def test_a_first_revision_entry_resting_on_consent(world: World, consented: Consented) -> None:
    """An entry of the first revision records no consent offset: a decision on consent cannot be taken again,
    the statutory decisions about the same event can (while the event is retained)."""
    made = consented.made[1]
    for entry in (consented.before, consented.during, consented.after):
        _fails(_check(world, _revision_1(world, entry), retained=consented.made, records=consented.records),
               "decision not supported", "consent_offset")
    for recipient in ("social-insurance", "statistics-office"):
        assert _check(world, _revision_1(world, made.entry(recipient)), retained=made) is None
    _fails(_check(world, _revision_1(world, made.entry("social-insurance"))), "decision not supported",
           "does not record the event's facts")


# --- the consent log replayed ----------------------------------------------------------------------------------

def _state(ledger: ConsentLedger, subjects: list[str]) -> list[tuple[bool, str | None, Any]]:
    answers = (ledger.lookup(s, HOUSING, "housing-allowance", INCOME, T0) for s in subjects)
    return [(a.granted, a.reason, a.reference) for a in answers]


@pytest.fixture(scope="module")
def two_partitions(world: World) -> tuple[dict[int, list[tuple[int, bytes | None, bytes | None]]], list[str]]:
    """Partition 0: one subject's consent granted, paused, resumed and revoked; partition 1: another's granted,
    then expired."""
    first, second = (world.record(INCOME, seed=s)[1].key.decode() for s in (8, 9))
    records = world.consent_records({
        0: world.consents(first, ConsentStatus.PAUSED, ConsentStatus.ACTIVE, ConsentStatus.REVOKED),
        1: world.consents(second, ConsentStatus.EXPIRED)})
    return records, [first, second]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.integers(0, 6)), min_size=1, max_size=12))
def test_the_replay_at_an_offset_is_the_records_below_it(world: World, two_partitions: Any,
                                                         queries: list[tuple[int, int]]) -> None:
    """Forward, back and across partitions, the state at offset O is that of exactly the records below O."""
    records, subjects = two_partitions
    replay = ConsentReplay(world.catalogue, world.consent_verify, records)
    for partition, offset in queries:
        expected = world.ledger({partition: records.get(partition, [])}, {partition: offset})
        assert _state(replay.at(partition, offset), subjects) == _state(expected, subjects), (partition, offset)


def test_the_replay_sees_each_change(world: World, two_partitions: Any) -> None:
    records, (first, second) = two_partitions
    replay = ConsentReplay(world.catalogue, world.consent_verify, records)
    seen = [_state(replay.at(0, n), [first])[0][:2] for n in (0, 1, 2, 3, 4, 5, 2, 0, 4)]
    assert seen == [(False, r.NO_CONSENT), (True, None), (False, r.CONSENT_PAUSED), (True, None),
                    (False, r.CONSENT_REVOKED), (False, r.CONSENT_REVOKED), (False, r.CONSENT_PAUSED),
                    (False, r.NO_CONSENT), (False, r.CONSENT_REVOKED)]
    assert _state(replay.at(1, 1), [first, second])[1][:2] == (True, None)
    assert _state(replay.at(1, 2), [first, second])[0][:2] == (False, r.NO_CONSENT)  # not partition 1's subject


# --- any one edit of a compared field is caught ----------------------------------------------------------------

_NAMES = ["person_id", "street_address", "postal_code", "municipality_code", "moved_on", "dwelling_type",
          "address_protected", "tax_year", "taxable_income_cents", RECIPIENT_PSEUDONYM]
_CODES = [r.NO_CONSENT, r.CONSENT_REVOKED, r.AGREEMENT_EXPIRED, r.restricted_field("protected-address"),
          "UNDELIVERABLE:RECIPIENT_KEY"]
_TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(
    ["tax-assessment", "official-statistics", "housing-allowance", "consent", "school-placement",
     "statute:Taxation Act §24 (register of taxable persons)", "0197a0b0-0000-7000-8000-000000000001@1"]))
_EDITS: dict[str, Callable[[Entry], st.SearchStrategy[Any]]] = {
    "outcome": lambda e: st.sampled_from(["PERMIT", "DENY"]),
    "fields_released": lambda e: st.one_of(st.permutations(e["fields_released"]),
                                           st.lists(st.sampled_from(_NAMES), max_size=6, unique=True),
                                           st.lists(st.text(min_size=1, max_size=8), max_size=3)),
    "reason_codes": lambda e: st.one_of(st.lists(st.sampled_from(_CODES), max_size=3),
                                        st.just([*e["reason_codes"], "UNDELIVERABLE:RECIPIENT_KEY"]),
                                        st.lists(st.text(max_size=8), max_size=2)),
    "purpose": lambda e: _TEXT, "legal_basis": lambda e: _TEXT, "consent_ref": lambda e: _TEXT,
}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_edit_of_a_compared_field_is_caught(world: World, protected: Made, plain: Made, consented: Consented,
                                                data: st.DataObject) -> None:
    entries = [*protected.entries, *plain.entries, *(e for m in consented.made for e in m.entries)]
    entry = data.draw(st.sampled_from(entries))
    name = data.draw(st.sampled_from(sorted(_EDITS)))
    value = data.draw(_EDITS[name](entry))
    assume(value != entry[name])
    check = decision_checker(world.catalogue, world.reevaluator(consented.records))
    _fails(check(3, world.encode(_edited(entry, **{name: value}))), "decision not supported", index=3)
    assert check(4, world.encode(entry)) is None


def test_the_reevaluator_needs_an_envelope_verifier_for_events(world: World, plain: Made) -> None:
    reevaluator = Reevaluator(world.catalogue, [world.bundle], world.replay(), events=Events({plain.place:
                                                                                              plain.record}))
    with pytest.raises(ValueError, match="envelope verifier"):
        reevaluator.check(0, plain.entry("tax-board"))
