"""Why a consent does not grant, for every status at every place of the event's time relative to its window.

The rule (docs/consent.md): a revocation is final and always reported as CONSENT_REVOKED; otherwise a consent at
or past its expiry is expired whatever its status says (CONSENT_EXPIRED); before the expiry a PAUSED or EXPIRED
status gives its own reason, and an ACTIVE consent grants within ``[start, expiry)`` and is
CONSENT_NOT_STARTED before its start.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.policy import ConsentRef, ConsentStatus, Outcome, PolicySet, compile_policies, decide
from exchange.policy import reasons as r

from .support import AGENCIES, REGISTRY, TYPES, agreement, consent, consent_state, facts

_START = datetime(2025, 1, 1, tzinfo=UTC)
_EXPIRY = datetime(2026, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

_TIMES = {
    "before start": _START - _US,
    "at start": _START,
    "within": datetime(2025, 6, 1, tzinfo=UTC),
    "just before expiry": _EXPIRY - _US,
    "at expiry": _EXPIRY,
    "past expiry": datetime(2030, 1, 1, tzinfo=UTC),
}

_GRANT = None
_EXPECTED: dict[str, dict[str, str | None]] = {
    "ACTIVE": {"before start": r.CONSENT_NOT_STARTED, "at start": _GRANT, "within": _GRANT,
               "just before expiry": _GRANT, "at expiry": r.CONSENT_EXPIRED, "past expiry": r.CONSENT_EXPIRED},
    "PAUSED": {"before start": r.CONSENT_PAUSED, "at start": r.CONSENT_PAUSED, "within": r.CONSENT_PAUSED,
               "just before expiry": r.CONSENT_PAUSED, "at expiry": r.CONSENT_EXPIRED,
               "past expiry": r.CONSENT_EXPIRED},
    "REVOKED": dict.fromkeys(_TIMES, r.CONSENT_REVOKED),
    "EXPIRED": dict.fromkeys(_TIMES, r.CONSENT_EXPIRED),
}

_HOUSING = agreement(id="aom-housing", recipient="municipal-services", record_type="tax.income-assessed",
                     purpose="housing-allowance", legal_basis={"consent": True},
                     fields=["person_id", "tax_year", "taxable_income_cents"])
_INDEX = compile_policies(PolicySet(agreements=(_HOUSING,)), TYPES, AGENCIES, REGISTRY)


def test_the_table_covers_every_status() -> None:
    assert set(_EXPECTED) == {status.value for status in ConsentStatus}


@pytest.mark.parametrize("status", sorted(_EXPECTED))
@pytest.mark.parametrize("when", list(_TIMES))
def test_every_status_at_every_time(status: str, when: str) -> None:
    """The engine's decision for a consent of ``status`` with the event ``when`` relative to its window."""
    state = consent_state(consent(status=status, start=_START.isoformat(), expiry=_EXPIRY.isoformat()))
    (decision,) = decide(_INDEX, facts("tax.income-assessed", time=_TIMES[when]), state)
    expected = _EXPECTED[status][when]
    assert decision.consent_ref == ConsentRef("c-0001", 1)
    if expected is None:
        assert decision.outcome is Outcome.PERMIT
        assert decision.reasons == ()
    else:
        assert decision.outcome is Outcome.DENY
        assert decision.reasons == (expected,)
        assert decision.fields == ()


def test_a_paused_consent_past_its_expiry_is_expired() -> None:
    """Granted, paused, then the expiry passes: the log says expired, naming the paused version."""
    state = consent_state(consent(), consent(version=2, status="PAUSED", issued_at="2025-03-01T00:00:00Z"))
    (decision,) = decide(_INDEX, facts("tax.income-assessed", time=datetime(2026, 2, 1, tzinfo=UTC)), state)
    assert (decision.reasons, decision.consent_ref) == ((r.CONSENT_EXPIRED,), ConsentRef("c-0001", 2))


def test_a_revoked_consent_past_its_expiry_stays_revoked() -> None:
    """A revocation is the citizen's explicit, final act: it is what the log says, expiry or not."""
    state = consent_state(consent(), consent(version=2, status="REVOKED", issued_at="2025-03-01T00:00:00Z"))
    (decision,) = decide(_INDEX, facts("tax.income-assessed", time=datetime(2026, 2, 1, tzinfo=UTC)), state)
    assert (decision.reasons, decision.consent_ref) == ((r.CONSENT_REVOKED,), ConsentRef("c-0001", 2))


def _expected(status: ConsentStatus, start: datetime, expiry: datetime, at: datetime) -> str | None:
    """The rule, written out independently of the state's implementation."""
    if status is ConsentStatus.REVOKED:
        return r.CONSENT_REVOKED
    if at >= expiry:
        return r.CONSENT_EXPIRED
    if status is ConsentStatus.ACTIVE:
        return r.CONSENT_NOT_STARTED if at < start else None
    return r.CONSENT_PAUSED if status is ConsentStatus.PAUSED else r.CONSENT_EXPIRED


_MOMENTS = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from(ConsentStatus), start=_MOMENTS, length=st.integers(1, 10**15), at=_MOMENTS)
def test_lookup_follows_the_rule(status: ConsentStatus, start: datetime, length: int, at: datetime) -> None:
    """For any status, window (to the microsecond) and time, the lookup gives the rule's reason."""
    expiry = start + timedelta(microseconds=length)
    artefact = consent(status=status.value, start=start.isoformat(), expiry=expiry.isoformat())
    answer = consent_state(artefact).lookup(artefact.subject, artefact.recipient, artefact.purpose,
                                            "tax.income-assessed", at)
    expected = _expected(status, start, expiry, at)
    assert answer.granted is (expected is None)
    assert answer.reason == expected
    assert answer.reference == artefact.ref
