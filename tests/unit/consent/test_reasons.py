"""What ``exchange consent list`` shows and what the access log says agree: the router's denial reason is the
consent's status as it holds at the event's time (:func:`effective_status`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.consent.wire import effective_status
from exchange.policy import ConsentState, ConsentStatus
from exchange.policy import reasons as r

from .support import NOW, PURPOSE, RECIPIENT, SUBJECT, TYPE, artefact

_REASON = {
    ConsentStatus.PAUSED: r.CONSENT_PAUSED,
    ConsentStatus.REVOKED: r.CONSENT_REVOKED,
    ConsentStatus.EXPIRED: r.CONSENT_EXPIRED,
}


def _accept(message: bytes, signature: bytes) -> None:
    """The signature is not what these tests are about (see test_signing)."""


_OFFSET = st.integers(-10**14, 10**14).map(lambda us: NOW + timedelta(microseconds=us))


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from(ConsentStatus), at=_OFFSET, length=st.integers(1, 10**14))
def test_the_denial_reason_is_the_effective_status(status: ConsentStatus, at: datetime, length: int) -> None:
    """Whatever the status and time: the lookup's reason is that of the effective status; an effectively
    ACTIVE consent grants within its window and is not yet started before it."""
    consent = artefact(None, status=status, start=NOW, expiry=NOW + timedelta(microseconds=length),
                       signature="AA==")
    state = ConsentState(_accept)
    state.apply(consent)
    answer = state.lookup(SUBJECT, RECIPIENT, PURPOSE, TYPE, at)
    shown = effective_status(consent, at)
    if shown is ConsentStatus.ACTIVE:
        assert answer.reason == (r.CONSENT_NOT_STARTED if at < consent.start else None)
    else:
        assert answer.reason == _REASON[shown]
    assert answer.granted is (answer.reason is None)


def test_a_paused_consent_past_expiry_is_listed_and_logged_as_expired() -> None:
    """The case the two once disagreed on."""
    consent = artefact(None, status=ConsentStatus.PAUSED, signature="AA==")
    state = ConsentState(_accept)
    state.apply(consent)
    later = consent.expiry + timedelta(seconds=1)
    assert effective_status(consent, later) is ConsentStatus.EXPIRED
    assert state.lookup(SUBJECT, RECIPIENT, PURPOSE, TYPE, later).reason == r.CONSENT_EXPIRED
