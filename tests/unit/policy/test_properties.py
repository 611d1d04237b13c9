"""Properties of the engine over generated policies, events and consent answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.policy import (
    RECIPIENT_PSEUDONYM,
    Agreement,
    ConsentDecision,
    ConsentRef,
    EventFacts,
    Outcome,
    PolicySet,
    Restriction,
    compile_policies,
    decide,
)

from .support import AGENCIES, REGISTRY, TYPES

_TYPE = TYPES["population.address-changed"]
_FIELDS = list(_TYPE.fields)
_RECIPIENTS = sorted(AGENCIES)
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_SCALARS = st.one_of(st.booleans(), st.integers(-1, 1), st.sampled_from(["", "x"]))
_field_sets = st.lists(st.sampled_from(_FIELDS), min_size=1, unique=True)
_days = st.integers(0, 1000).map(lambda n: _EPOCH + timedelta(days=n))


@st.composite
def _agreement(draw: st.DrawFn, index: int) -> Agreement:
    start = draw(_days)
    end = draw(st.none() | st.integers(1, 500).map(lambda n: start + timedelta(days=n)))
    return Agreement(
        id=f"agreement-{index}", version=1, recipient=draw(st.sampled_from(_RECIPIENTS)),
        record_type=_TYPE.record_type, purpose=f"purpose-{index}",  # distinct purposes: never a conflict
        legal_basis=draw(st.sampled_from([{"statute": "Population Register Act §44"}, {"consent": True}])),
        fields=tuple(draw(_field_sets)), valid_from=start, valid_until=end,
        pseudonymise=draw(st.booleans()), retention="test",
    )


@st.composite
def _restriction(draw: st.DrawFn, index: int) -> Restriction:
    return Restriction(
        id=f"restriction-{index}", record_type=_TYPE.record_type,
        condition={"field": draw(st.sampled_from(_FIELDS)), "equals": draw(_SCALARS)},
        fields=tuple(draw(_field_sets)),
        except_recipients=tuple(draw(st.lists(st.sampled_from(_RECIPIENTS), unique=True, max_size=3))),
        reason=f"reason-{index}",
    )


@st.composite
def _policies(draw: st.DrawFn) -> PolicySet:
    agreements = [draw(_agreement(i)) for i in range(draw(st.integers(0, 5)))]
    restrictions = [draw(_restriction(i)) for i in range(draw(st.integers(0, 3)))]
    return PolicySet(agreements=tuple(agreements), restrictions=tuple(restrictions))


_values = st.dictionaries(st.sampled_from(_FIELDS), st.one_of(st.none(), _SCALARS))
_events = st.builds(
    EventFacts, event_id=st.just("e"), record_type=st.just(_TYPE.record_type), source=st.just("population-registry"),
    time=_days, subject=st.none() | st.just("ps-0f3a9c2b7d1e4a5b6c7d8e9f"), values=_values,
)


class _RandomConsent:
    """A consent view answering from a fixed, generated table per (recipient, purpose)."""

    def __init__(self, answers: dict[Any, ConsentDecision]) -> None:
        self.answers = answers

    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        return self.answers.get((recipient, purpose), ConsentDecision(False, "NO_CONSENT", None))


_answers = st.dictionaries(
    st.tuples(st.sampled_from(_RECIPIENTS), st.sampled_from([f"purpose-{i}" for i in range(5)])),
    st.builds(
        ConsentDecision, granted=st.booleans(), reason=st.just("CONSENT_PAUSED"), reference=st.just(ConsentRef("c", 1)),
        fields=st.none() | st.frozensets(st.sampled_from(_FIELDS)),
    ),
)


def _holds(restriction: Restriction, values: dict[str, object]) -> bool:
    if restriction.condition.field not in values:
        return True
    value = values[restriction.condition.field]
    expected = restriction.condition.equals
    return type(value) is type(expected) and value == expected


@settings(max_examples=300, deadline=None)
@given(policies=_policies(), event=_events, answers=_answers)
def test_no_decision_releases_a_field_outside_its_agreement(
    policies: PolicySet, event: EventFacts, answers: dict[Any, ConsentDecision]
) -> None:
    """Released and withheld fields partition the agreement's fields; PERMIT iff something is released; a
    pseudonymising PERMIT releases the recipient pseudonym first and never the key field."""
    index = compile_policies(policies, TYPES, AGENCIES, REGISTRY)
    decisions = decide(index, event, _RandomConsent(answers))
    agreements = {a.id: a for a in policies.agreements}
    assert len(decisions) == len(agreements)
    for decision in decisions:
        agreed = set(agreements[decision.agreement_id].fields)
        released = [name for name in decision.fields if name != RECIPIENT_PSEUDONYM]
        assert set(released) <= agreed
        assert set(released) | set(decision.withheld) == agreed
        assert not set(decision.fields) & set(decision.withheld)
        assert (decision.outcome is Outcome.PERMIT) == bool(decision.fields)
        if decision.pseudonymise:
            assert _TYPE.key_field not in decision.fields
            assert (decision.fields[:1] == (RECIPIENT_PSEUDONYM,)) == decision.permitted
        assert decision.fields.count(RECIPIENT_PSEUDONYM) == (decision.pseudonymise and decision.permitted)


@settings(max_examples=300, deadline=None)
@given(policies=_policies(), event=_events, answers=_answers)
def test_a_restricted_field_never_reaches_an_unlisted_recipient(
    policies: PolicySet, event: EventFacts, answers: dict[Any, ConsentDecision]
) -> None:
    """Whenever a restriction's condition holds, its fields are absent from every unlisted recipient's release."""
    index = compile_policies(policies, TYPES, AGENCIES, REGISTRY)
    decisions = decide(index, event, _RandomConsent(answers))
    for restriction in policies.restrictions:
        if not _holds(restriction, dict(event.values)):
            continue
        for decision in decisions:
            if decision.recipient in restriction.except_recipients:
                continue
            assert not set(decision.fields) & set(restriction.fields)
            if set(_fields_of(policies, decision.agreement_id)) & set(restriction.fields):
                assert f"RESTRICTED_FIELD:{restriction.reason}" in decision.reasons


def _fields_of(policies: PolicySet, agreement_id: str) -> tuple[str, ...]:
    return next(a.fields for a in policies.agreements if a.id == agreement_id)


@settings(max_examples=200, deadline=None)
@given(policies=_policies(), event=_events)
def test_consent_based_agreements_never_permit_without_consent(policies: PolicySet, event: EventFacts) -> None:
    """With nobody's consent, every consent-based agreement denies."""
    index = compile_policies(policies, TYPES, AGENCIES, REGISTRY)
    consent_based = {a.id for a in policies.agreements if a.legal_basis.is_consent}
    for decision in decide(index, event, _RandomConsent({})):
        if decision.agreement_id in consent_based:
            assert decision.outcome is Outcome.DENY
