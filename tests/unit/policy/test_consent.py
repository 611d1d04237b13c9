"""Consent artefacts and the consent state: signing, life-cycle rules, and lookups."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from exchange.policy import (
    ConsentArtefact,
    ConsentDecision,
    ConsentRef,
    ConsentSignatureError,
    ConsentState,
    ConsentStatus,
    ConsentTransitionError,
)
from exchange.policy import reasons as r

from .support import NOW, SUBJECT, consent, consent_state, sign, verify

_ARGS = (SUBJECT, "municipal-services", "housing-allowance", "tax.income-assessed", NOW)


def test_signing_bytes_are_canonical_and_exclude_the_signature() -> None:
    """The signed bytes are domain-tagged canonical JSON, the same before and after signing."""
    unsigned = consent().model_copy(update={"signature": None})
    data = unsigned.to_signing_bytes()
    assert data.startswith(b"exchange-consent-artefact/v1\n{")
    assert b" " not in data.split(b"\n", 1)[1]
    assert b'"start":"2025-01-01T00:00:00Z"' in data
    assert unsigned.signed(sign).to_signing_bytes() == data


def test_signature_is_verified_on_apply() -> None:
    """A missing, malformed or wrong signature is refused and leaves the state unchanged."""
    state = ConsentState(verify)
    good = consent()
    for bad in (
        good.model_copy(update={"signature": None}),
        good.model_copy(update={"signature": "not base64!"}),
        good.model_copy(update={"status": ConsentStatus.PAUSED}),  # content changed after signing
    ):
        with pytest.raises(ConsentSignatureError):
            state.apply(bad)
    assert len(state) == 0
    assert state.apply(good) is True


def test_subject_must_be_a_pseudonym() -> None:
    """A national person id (digits) is refused as a subject."""
    with pytest.raises(ValidationError, match="pseudonym"):
        consent(subject="38001010000123456")
    with pytest.raises(ValidationError):
        consent(subject="short")


def test_expiry_after_start() -> None:
    """A consent's window is not empty."""
    with pytest.raises(ValidationError, match="expiry must be after start"):
        consent(expiry="2025-01-01T00:00:00Z")


def test_later_version_wins() -> None:
    """A newer version replaces the older one; lookups follow it."""
    state = consent_state(consent())
    assert state.apply(consent(version=2, status="PAUSED", issued_at="2025-03-01T00:00:00Z")) is True
    assert state.lookup(*_ARGS) == ConsentDecision(False, r.CONSENT_PAUSED, ConsentRef("c-0001", 2))
    assert state.apply(consent(version=3, status="ACTIVE", issued_at="2025-04-01T00:00:00Z")) is True
    assert state.lookup(*_ARGS).granted


def test_revoked_consent_cannot_be_reactivated() -> None:
    """REVOKED is final: a later ACTIVE (or PAUSED) version of the same consent is refused."""
    state = consent_state(consent(), consent(version=2, status="REVOKED", issued_at="2025-02-01T00:00:00Z"))
    for status in ("ACTIVE", "PAUSED"):
        with pytest.raises(ConsentTransitionError, match="revoked"):
            state.apply(consent(version=3, status=status, issued_at="2025-03-01T00:00:00Z"))
    assert state.lookup(*_ARGS).reason == r.CONSENT_REVOKED


def test_late_revocation_is_applied_even_if_older() -> None:
    """A revocation arriving after a newer version still revokes (fail closed); other stale versions are ignored."""
    state = consent_state(consent(), consent(version=3, issued_at="2025-03-01T00:00:00Z"))
    assert state.apply(consent(version=2, status="PAUSED", issued_at="2025-02-01T00:00:00Z")) is False
    assert state.lookup(*_ARGS).granted
    assert state.apply(consent(version=2, status="REVOKED", issued_at="2025-02-01T00:00:00Z")) is True
    assert state.lookup(*_ARGS).reason == r.CONSENT_REVOKED


def test_duplicates_are_idempotent_and_equivocation_is_refused() -> None:
    """The same version again changes nothing; a different artefact with the same version is refused."""
    state = consent_state(consent())
    assert state.apply(consent()) is False
    with pytest.raises(ConsentTransitionError, match="two different artefacts"):
        state.apply(consent(expiry="2027-01-01T00:00:00Z"))


def test_versions_and_issue_times_must_agree() -> None:
    """A higher version issued earlier, or a lower one issued later, is refused."""
    state = consent_state(consent(version=2, issued_at="2025-02-01T00:00:00Z"))
    with pytest.raises(ConsentTransitionError, match="issued before"):
        state.apply(consent(version=3, issued_at="2025-01-15T00:00:00Z"))
    with pytest.raises(ConsentTransitionError, match="issued after"):
        state.apply(consent(version=1, issued_at="2025-03-01T00:00:00Z"))


@pytest.mark.parametrize("change", [{"subject": "ps-ffffffffffffffffffff"}, {"recipient": "tax-board"},
                                    {"purpose": "tax-assessment"}])
def test_a_consent_keeps_its_subject_recipient_and_purpose(change: dict[str, str]) -> None:
    """A new version cannot move a consent to another subject, recipient or purpose."""
    state = consent_state(consent())
    with pytest.raises(ConsentTransitionError, match="differs"):
        state.apply(consent(version=2, issued_at="2025-02-01T00:00:00Z", **change))


def test_lookup_matches_subject_recipient_purpose_and_type() -> None:
    """Only a consent for this subject, recipient, purpose and record type grants."""
    state = consent_state(consent())
    assert state.lookup(*_ARGS) == ConsentDecision(True, None, ConsentRef("c-0001", 1), None)
    assert state.lookup("ps-someone-else-entirely", *_ARGS[1:]).reason == r.NO_CONSENT
    assert state.lookup(SUBJECT, "tax-board", *_ARGS[2:]).reason == r.NO_CONSENT
    assert state.lookup(SUBJECT, "municipal-services", "other", *_ARGS[3:]).reason == r.NO_CONSENT
    assert state.lookup(*_ARGS[:3], "social.benefit-granted", NOW).reason == r.NO_CONSENT


def test_lookup_prefers_an_active_consent_over_others() -> None:
    """With a revoked and an active consent for the same scope, the active one grants."""
    state = consent_state(
        consent(consent_id="c-old"),
        consent(consent_id="c-old", version=2, status="REVOKED", issued_at="2025-02-01T00:00:00Z"),
        consent(consent_id="c-new", issued_at="2025-01-15T00:00:00Z"),
    )
    assert state.lookup(*_ARGS).reference == ConsentRef("c-new", 1)


def test_lookup_reports_the_most_recent_denial() -> None:
    """Without a granting consent, the reason comes from the most recently issued one covering the type."""
    state = consent_state(
        consent(consent_id="c-a", status="PAUSED", issued_at="2025-01-01T00:00:00Z"),
        consent(consent_id="c-b", status="REVOKED", issued_at="2025-02-01T00:00:00Z"),
    )
    assert state.lookup(*_ARGS) == ConsentDecision(False, r.CONSENT_REVOKED, ConsentRef("c-b", 1))


def test_the_state_lists_its_artefacts() -> None:
    """Iterating gives the newest version of each consent; get finds one by id."""
    state = consent_state(consent(), consent(version=2, status="PAUSED", issued_at="2025-02-01T00:00:00Z"))
    assert [(a.consent_id, a.version) for a in state] == [("c-0001", 2)]
    artefact = state.get("c-0001")
    assert isinstance(artefact, ConsentArtefact)
    assert artefact.status is ConsentStatus.PAUSED
    assert state.get("c-9999") is None
    assert state.lookup(*_ARGS[:4], datetime(2025, 6, 1, tzinfo=UTC)).reason == r.CONSENT_PAUSED
