"""The consent view's state without a broker: records applied in order, bad ones skipped and counted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exchange.consent import ConsentLedger, ConsentVerifier, RecordOutcome, SkipReason, encode_artefact
from exchange.crypto.keys import Signer
from exchange.policy import ConsentArtefact, ConsentRef, ConsentStatus, ConsentView, EventFacts, PolicyIndex, decide
from exchange.policy import reasons as r
from exchange.registry import Registry
from exchange.schemas import Catalogue

from .support import NOW, OTHER_SUBJECT, PURPOSE, RECIPIENT, SUBJECT, TYPE, artefact, next_version


@pytest.fixture
def ledger(catalogue: Catalogue, registry: Registry) -> ConsentLedger:
    return ConsentLedger(catalogue, ConsentVerifier(registry))


class _Feed:
    """Appends artefacts to partitions at increasing offsets, like a producer would."""

    def __init__(self, ledger: ConsentLedger, catalogue: Catalogue) -> None:
        self.ledger = ledger
        self.catalogue = catalogue
        self.next_offset: dict[int, int] = {}

    def put(self, item: ConsentArtefact, partition: int = 0, key: bytes | None = None) -> RecordOutcome:
        message = encode_artefact(self.catalogue, item)
        return self.raw(message.value, partition, message.key if key is None else key)

    def raw(self, value: bytes | None, partition: int = 0, key: bytes | None = SUBJECT.encode()) -> RecordOutcome:
        offset = self.next_offset.get(partition, 0)
        self.next_offset[partition] = offset + 1
        return self.ledger.apply_record(partition, offset, key, value).outcome


@pytest.fixture
def feed(ledger: ConsentLedger, catalogue: Catalogue) -> _Feed:
    return _Feed(ledger, catalogue)


def _lookup(ledger: ConsentLedger, subject: str = SUBJECT, record_type: str = TYPE) -> tuple[bool, str | None]:
    decision = ledger.lookup(subject, RECIPIENT, PURPOSE, record_type, NOW)
    return decision.granted, decision.reason


def test_lifecycle_grant_pause_resume_revoke(ledger: ConsentLedger, feed: _Feed, signer: Signer) -> None:
    """Each version read changes the lookup: granted, paused, granted again, revoked for good."""
    assert _lookup(ledger) == (False, r.NO_CONSENT)
    granted = artefact(signer)
    assert feed.put(granted) is RecordOutcome.APPLIED
    assert _lookup(ledger) == (True, None)
    assert ledger.lookup(SUBJECT, RECIPIENT, PURPOSE, TYPE, NOW).reference == ConsentRef(granted.consent_id, 1)
    paused = next_version(granted, signer, ConsentStatus.PAUSED)
    feed.put(paused)
    assert _lookup(ledger) == (False, r.CONSENT_PAUSED)
    resumed = next_version(paused, signer, ConsentStatus.ACTIVE)
    feed.put(resumed)
    assert _lookup(ledger) == (True, None)
    revoked = next_version(resumed, signer, ConsentStatus.REVOKED)
    feed.put(revoked)
    assert _lookup(ledger) == (False, r.CONSENT_REVOKED)
    assert ledger.get(granted.consent_id) == revoked
    assert ledger.stats.applied == 4
    assert ledger.positions == {0: 4}


def test_other_subjects_types_and_times_are_not_covered(ledger: ConsentLedger, feed: _Feed, signer: Signer) -> None:
    """A consent covers its subject and types within its window only."""
    feed.put(artefact(signer))
    assert _lookup(ledger, subject=OTHER_SUBJECT) == (False, r.NO_CONSENT)
    assert _lookup(ledger, record_type="social.benefit-granted") == (False, r.NO_CONSENT)
    late = ledger.lookup(SUBJECT, RECIPIENT, PURPOSE, TYPE, NOW + timedelta(days=400))
    assert (late.granted, late.reason) == (False, r.CONSENT_EXPIRED)


def test_bad_signature_is_skipped_counted_and_not_applied(ledger: ConsentLedger, feed: _Feed,
                                                          signer: Signer) -> None:
    """A forged revocation and a forged grant change nothing; both are counted as bad signatures."""
    granted = artefact(signer)
    feed.put(granted)
    forged_revocation = next_version(granted, signer, ConsentStatus.REVOKED).model_copy(
        update={"status": ConsentStatus.ACTIVE})
    assert feed.put(forged_revocation) is RecordOutcome.SKIPPED
    stranger_grant = artefact(Signer.generate("exchange-consent"), consent_id="forged-1", subject=OTHER_SUBJECT)
    assert feed.put(stranger_grant) is RecordOutcome.SKIPPED
    assert ledger.stats.skipped == {SkipReason.BAD_SIGNATURE: 2}
    assert ledger.stats.skipped_total == 2
    assert ledger.get(granted.consent_id) == granted
    assert _lookup(ledger, subject=OTHER_SUBJECT) == (False, r.NO_CONSENT)
    assert ledger.positions == {0: 3}  # skipped records are still read past


def test_undecodable_and_misfiled_records_are_skipped(ledger: ConsentLedger, feed: _Feed, signer: Signer) -> None:
    """No value, garbage, a foreign key and a subject in the wrong partition are each skipped with their reason."""
    assert feed.raw(None) is RecordOutcome.SKIPPED
    assert feed.raw(b"\xc3\x01not avro at all") is RecordOutcome.SKIPPED
    assert feed.put(artefact(signer), key=OTHER_SUBJECT.encode()) is RecordOutcome.SKIPPED
    assert feed.put(artefact(signer), partition=1) is RecordOutcome.APPLIED
    other = artefact(signer, consent_id="second-consent")
    assert feed.put(other, partition=2) is RecordOutcome.SKIPPED
    assert ledger.stats.skipped == {SkipReason.UNDECODABLE: 2, SkipReason.KEY_MISMATCH: 1, SkipReason.MISPLACED: 1}
    assert ledger.get("second-consent") is None


def test_refused_transition_is_skipped(ledger: ConsentLedger, feed: _Feed, signer: Signer) -> None:
    """A validly signed reactivation of a revoked consent is refused; it stays revoked."""
    granted = artefact(signer)
    revoked = next_version(granted, signer, ConsentStatus.REVOKED)
    feed.put(granted)
    feed.put(revoked)
    assert feed.put(next_version(revoked, signer, ConsentStatus.ACTIVE)) is RecordOutcome.SKIPPED
    assert ledger.stats.skipped == {SkipReason.REFUSED_TRANSITION: 1}
    assert _lookup(ledger) == (False, r.CONSENT_REVOKED)


def test_duplicates_and_reread_offsets_change_nothing(ledger: ConsentLedger, feed: _Feed, signer: Signer,
                                                      catalogue: Catalogue) -> None:
    """A record read twice, or the same version again at a new offset, is UNCHANGED."""
    granted = artefact(signer)
    message = encode_artefact(catalogue, granted)
    assert ledger.apply_record(0, 0, message.key, message.value).outcome is RecordOutcome.APPLIED
    assert ledger.apply_record(0, 0, message.key, message.value).outcome is RecordOutcome.UNCHANGED
    assert ledger.apply_record(0, 1, message.key, message.value).outcome is RecordOutcome.UNCHANGED
    assert (ledger.stats.applied, ledger.stats.unchanged) == (1, 1)
    assert ledger.position(0) == 2


def test_release_forgets_partitions(ledger: ConsentLedger, feed: _Feed, signer: Signer) -> None:
    """After release a subject of that partition has no consent, and the partition starts again at 0."""
    feed.put(artefact(signer), partition=3)
    feed.put(artefact(signer, consent_id="other-subject", subject=OTHER_SUBJECT), partition=4)
    ledger.release([3, 5])
    assert ledger.partitions == {4}
    assert _lookup(ledger) == (False, r.NO_CONSENT)
    assert _lookup(ledger, subject=OTHER_SUBJECT) == (True, None)
    assert ledger.position(3) == 0
    assert list(ledger.artefacts(SUBJECT)) == []
    feed.next_offset[3] = 0
    assert feed.put(artefact(signer), partition=3) is RecordOutcome.APPLIED
    assert _lookup(ledger) == (True, None)


def test_positions_hold_and_advance(ledger: ConsentLedger) -> None:
    """A held partition starts at 0; advancing moves forward only, and only for held partitions."""
    ledger.hold(2)
    assert ledger.positions == {2: 0}
    ledger.advance(2, 7)
    ledger.advance(2, 3)
    ledger.advance(9, 4)
    assert ledger.positions == {2: 7}


def test_artefacts_filter_by_subject(ledger: ConsentLedger, feed: _Feed, signer: Signer) -> None:
    """artefacts(subject) lists that subject's consents only."""
    mine = artefact(signer)
    theirs = artefact(signer, consent_id="theirs", subject=OTHER_SUBJECT)
    feed.put(mine)
    feed.put(theirs)
    assert list(ledger.artefacts(SUBJECT)) == [mine]
    assert sorted(a.consent_id for a in ledger.artefacts()) == sorted([mine.consent_id, "theirs"])


def test_ledger_is_the_engines_consent_view(ledger: ConsentLedger, feed: _Feed, signer: Signer,
                                            policies: PolicyIndex) -> None:
    """The decision engine permits the consent-based agreement once the grant is applied, and denies it revoked."""
    facts = EventFacts("event-1", TYPE, "tax-board", NOW, SUBJECT, {"tax_year": 2025})
    view: ConsentView = ledger

    def housing() -> tuple[str, tuple[str, ...]]:
        decision = next(d for d in decide(policies, facts, view) if d.purpose == PURPOSE)
        return decision.outcome.value, decision.reasons

    assert housing() == ("DENY", (r.NO_CONSENT,))
    granted = artefact(signer, fields=("person_id", "taxable_income_cents"))
    feed.put(granted)
    decision = next(d for d in decide(policies, facts, view) if d.purpose == PURPOSE)
    assert decision.permitted
    assert decision.fields == ("person_id", "taxable_income_cents")
    assert decision.consent_ref == ConsentRef(granted.consent_id, 1)
    feed.put(next_version(granted, signer, ConsentStatus.REVOKED))
    assert housing() == ("DENY", (r.CONSENT_REVOKED,))
