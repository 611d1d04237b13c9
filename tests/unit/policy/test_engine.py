"""The decision engine: one decision per agreement, restrictions first, then window, then legal basis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exchange.policy import (
    NO_CONSENTS,
    RECIPIENT_PSEUDONYM,
    Agreement,
    ConsentDecision,
    ConsentRef,
    Decision,
    Outcome,
    PolicyError,
    PolicyIndex,
    PolicySet,
    Restriction,
    compile_policies,
    decide,
)
from exchange.policy import reasons as r
from exchange.policy.compiler import MAX_RESTRICTIONS_PER_AGREEMENT

from .support import (
    AGENCIES,
    NOW,
    REGISTRY,
    SUBJECT,
    TYPES,
    agreement,
    consent,
    consent_state,
    facts,
    policy_set,
    restriction,
)

HOUSING = {
    "id": "aom-housing",
    "recipient": "municipal-services",
    "record_type": "tax.income-assessed",
    "purpose": "housing-allowance",
    "legal_basis": {"consent": True},
    "fields": ["taxable_income_cents", "person_id", "tax_year"],
}


def _index(*items: Agreement | Restriction) -> PolicyIndex:
    return compile_policies(policy_set(*items), TYPES, AGENCIES, REGISTRY)


def _only(decisions: list[Decision]) -> Decision:
    assert len(decisions) == 1
    return decisions[0]


def test_statutory_agreement_permits_exactly_the_agreed_fields_in_schema_order() -> None:
    """A statutory PERMIT releases the agreed fields, ordered as in the schema, and nothing else."""
    index = _index(agreement(fields=["municipality_code", "person_id", "moved_on"]))
    decision = _only(decide(index, facts(address_protected=False), NO_CONSENTS))
    assert decision.outcome is Outcome.PERMIT
    assert decision.fields == ("person_id", "municipality_code", "moved_on")
    assert decision.withheld == ()
    assert decision.reasons == ()
    assert decision.legal_basis == "statute:Taxation Act §24"
    assert decision.consent_ref is None
    assert (decision.recipient, decision.agreement_id, decision.agreement_version) == ("tax-board", "tcb-address", 1)
    assert decision.topic == "delivery.tax-board"
    assert decision.bundle_id == index.bundle_id
    assert decision.pseudonymise is False


def test_pseudonymising_agreement_is_marked_for_the_router() -> None:
    """The engine marks pseudonymisation for the delivery and releases the recipient pseudonym, not the id."""
    stats = agreement(id="sto-address", recipient="statistics-office", purpose="official-statistics",
                      fields=["person_id", "moved_on"], pseudonymise=True)
    decision = _only(decide(_index(stats), facts(address_protected=False), NO_CONSENTS))
    assert decision.pseudonymise is True
    assert decision.fields == (RECIPIENT_PSEUDONYM, "moved_on")
    assert decision.withheld == ("person_id",)


def test_consent_based_agreement_without_consent_is_denied() -> None:
    """No consent at all: DENY with NO_CONSENT and no consent reference."""
    decision = _only(decide(_index(agreement(**HOUSING)), facts("tax.income-assessed"), consent_state()))
    assert decision.outcome is Outcome.DENY
    assert decision.reasons == (r.NO_CONSENT,)
    assert decision.fields == ()
    assert decision.withheld == ("person_id", "tax_year", "taxable_income_cents")
    assert decision.consent_ref is None


def test_consent_based_agreement_with_active_consent_is_permitted() -> None:
    """An ACTIVE consent in its window: PERMIT, naming the consent and its version."""
    decision = _only(decide(_index(agreement(**HOUSING)), facts("tax.income-assessed"), consent_state(consent())))
    assert decision.outcome is Outcome.PERMIT
    assert decision.fields == ("person_id", "tax_year", "taxable_income_cents")
    assert decision.consent_ref == ConsentRef("c-0001", 1)
    assert decision.legal_basis == "consent"


@pytest.mark.parametrize(
    ("status", "reason"),
    [("PAUSED", r.CONSENT_PAUSED), ("REVOKED", r.CONSENT_REVOKED), ("EXPIRED", r.CONSENT_EXPIRED)],
)
def test_consent_not_active_is_denied_with_its_reason(status: str, reason: str) -> None:
    """A paused, revoked or expired consent denies with that reason and names the artefact."""
    state = consent_state(consent(), consent(version=2, status=status, issued_at="2025-02-01T00:00:00Z"))
    decision = _only(decide(_index(agreement(**HOUSING)), facts("tax.income-assessed"), state))
    assert decision.outcome is Outcome.DENY
    assert decision.reasons == (reason,)
    assert decision.consent_ref == ConsentRef("c-0001", 2)


@pytest.mark.parametrize(
    ("time", "reason"),
    [
        (datetime(2024, 12, 31, tzinfo=UTC), r.CONSENT_NOT_STARTED),
        (datetime(2026, 1, 1, tzinfo=UTC), r.CONSENT_EXPIRED),
    ],
)
def test_consent_window_is_checked_at_the_event_time(time: datetime, reason: str) -> None:
    """Before the consent's start or from its expiry, an ACTIVE consent does not grant."""
    decision = _only(decide(_index(agreement(**HOUSING)), facts("tax.income-assessed", time=time),
                            consent_state(consent())))
    assert decision.reasons == (reason,)


def test_consent_field_scope_narrows_the_release() -> None:
    """A consent naming fewer fields than the agreement releases only those, recording CONSENT_SCOPE."""
    state = consent_state(consent(fields=["person_id", "taxable_income_cents", "tax_due_cents"]))
    decision = _only(decide(_index(agreement(**HOUSING)), facts("tax.income-assessed"), state))
    assert decision.outcome is Outcome.PERMIT
    assert decision.fields == ("person_id", "taxable_income_cents")
    assert decision.withheld == ("tax_year",)
    assert decision.reasons == (r.CONSENT_SCOPE,)


def test_consent_scope_without_agreed_fields_denies() -> None:
    """A consent whose fields share nothing with the agreement leaves nothing to release."""
    state = consent_state(consent(fields=["tax_due_cents"]))
    decision = _only(decide(_index(agreement(**HOUSING)), facts("tax.income-assessed"), state))
    assert decision.outcome is Outcome.DENY
    assert decision.reasons == (r.CONSENT_SCOPE, r.ALL_FIELDS_WITHHELD)


def test_consent_based_agreement_on_an_event_without_subject_is_denied() -> None:
    """Without a subject pseudonym there is nobody whose consent could apply."""
    decision = _only(decide(_index(agreement(**HOUSING)), facts("tax.income-assessed", subject=None),
                            consent_state(consent())))
    assert decision.reasons == (r.NO_CONSENT,)


def test_consent_view_is_asked_with_the_agreements_scope() -> None:
    """The consent view receives subject, recipient, purpose, type and event time; its answer is used as is."""
    asked: list[tuple[object, ...]] = []

    class View:
        def lookup(self, subject: str, recipient: str, purpose: str, record_type: str,
                   at: datetime) -> ConsentDecision:
            asked.append((subject, recipient, purpose, record_type, at))
            return ConsentDecision(granted=False, reason=r.CONSENT_PAUSED, reference=ConsentRef("x", 7))

    decision = _only(decide(_index(agreement(**HOUSING)), facts("tax.income-assessed"), View()))
    assert asked == [(SUBJECT, "municipal-services", "housing-allowance", "tax.income-assessed", NOW)]
    assert (decision.reasons, decision.consent_ref) == ((r.CONSENT_PAUSED,), ConsentRef("x", 7))


@pytest.mark.parametrize(
    ("time", "reason"),
    [
        (datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC), r.AGREEMENT_NOT_YET_VALID),
        (datetime(2025, 1, 1, tzinfo=UTC), r.AGREEMENT_EXPIRED),
        (datetime(2030, 1, 1, tzinfo=UTC), r.AGREEMENT_EXPIRED),
    ],
)
def test_agreement_outside_its_window_denies(time: datetime, reason: str) -> None:
    """valid_from is inclusive, valid_until exclusive; outside the window the decision is DENY with a reason."""
    index = _index(agreement(valid_until="2025-01-01T00:00:00Z"))
    decision = _only(decide(index, facts(time=time, address_protected=False), NO_CONSENTS))
    assert decision.outcome is Outcome.DENY
    assert decision.reasons == (reason,)
    assert decision.fields == ()


def test_agreement_window_bounds() -> None:
    """At valid_from exactly the agreement is in force; just before valid_until still in force."""
    index = _index(agreement(valid_until="2025-01-01T00:00:00Z"))
    for time in (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)):
        assert _only(decide(index, facts(time=time, address_protected=False), NO_CONSENTS)).permitted


def test_expired_consent_agreement_is_denied_without_asking_for_consent() -> None:
    """The window is checked before consent: an expired consent-based agreement never looks consent up."""
    index = _index(agreement(valid_until="2025-01-01T00:00:00Z", **HOUSING))
    decision = _only(decide(index, facts("tax.income-assessed"), consent_state(consent())))
    assert decision.reasons == (r.AGREEMENT_EXPIRED,)
    assert decision.consent_ref is None


def test_restriction_withholds_fields_from_an_unlisted_recipient(restricted: PolicySet) -> None:
    """When the condition holds, restricted fields are withheld and the reason recorded; the rest is released."""
    index = compile_policies(restricted, TYPES, AGENCIES, REGISTRY)
    tax = next(d for d in decide(index, facts(address_protected=True), NO_CONSENTS) if d.recipient == "tax-board")
    assert tax.outcome is Outcome.PERMIT
    assert tax.fields == ("person_id", "municipality_code")
    assert tax.withheld == ("street_address", "postal_code")
    assert tax.reasons == ("RESTRICTED_FIELD:protected-address",)


def test_restriction_does_not_apply_to_listed_recipients_or_when_condition_fails(restricted: PolicySet) -> None:
    """The police (listed) get the address; nobody loses it when the address is not protected."""
    index = compile_policies(restricted, TYPES, AGENCIES, REGISTRY)
    police = next(d for d in decide(index, facts(address_protected=True), NO_CONSENTS) if d.recipient == "police-board")
    assert "street_address" in police.fields
    assert police.reasons == ()
    for decision in decide(index, facts(address_protected=False), NO_CONSENTS):
        assert "street_address" in decision.fields
        assert decision.reasons == ()


def test_restriction_condition_does_not_coerce(restricted: PolicySet) -> None:
    """equals: true matches the boolean True only, not 1 or 'true'."""
    index = compile_policies(restricted, TYPES, AGENCIES, REGISTRY)
    for value in (1, "true"):
        tax = next(d for d in decide(index, facts(address_protected=value), NO_CONSENTS) if d.recipient == "tax-board")
        assert "street_address" in tax.fields


def test_restriction_applies_when_its_condition_field_is_missing(restricted: PolicySet) -> None:
    """A condition that cannot be evaluated withholds (fail closed)."""
    index = compile_policies(restricted, TYPES, AGENCIES, REGISTRY)
    tax = next(d for d in decide(index, facts(), NO_CONSENTS) if d.recipient == "tax-board")
    assert tax.withheld == ("street_address", "postal_code")


def test_restriction_that_empties_the_field_set_denies() -> None:
    """An agreement left with no field after restrictions is a DENY."""
    index = _index(agreement(fields=["street_address", "postal_code"]), restriction())
    decision = _only(decide(index, facts(address_protected=True), NO_CONSENTS))
    assert decision.outcome is Outcome.DENY
    assert decision.reasons == ("RESTRICTED_FIELD:protected-address", r.ALL_FIELDS_WITHHELD)
    assert decision.withheld == ("street_address", "postal_code")


def test_restriction_and_expiry_are_both_recorded() -> None:
    """Reasons accumulate in order: restriction first, then the window."""
    index = _index(agreement(valid_until="2025-01-01T00:00:00Z"), restriction())
    decision = _only(decide(index, facts(address_protected=True), NO_CONSENTS))
    assert decision.reasons == ("RESTRICTED_FIELD:protected-address", r.AGREEMENT_EXPIRED)


def test_empty_policy_set_and_unknown_types_yield_no_decision() -> None:
    """No agreements means nothing to deliver: an empty list, never a PERMIT."""
    assert decide(_index(), facts(address_protected=False), NO_CONSENTS) == []
    index = _index(agreement())
    assert decide(index, facts("tax.income-assessed"), NO_CONSENTS) == []
    assert decide(index, facts("no.such-type"), NO_CONSENTS) == []


def test_every_agreement_on_the_type_decides_in_id_order() -> None:
    """One decision per agreement on the type, expired ones included, in agreement id order."""
    index = _index(
        agreement(id="b-tax"),
        agreement(id="a-old", purpose="debt-collection", valid_until="2024-06-01T00:00:00Z"),
        agreement(id="c-other", record_type="tax.income-assessed", fields=["tax_year"]),
    )
    decisions = decide(index, facts(address_protected=False), NO_CONSENTS)
    assert [(d.agreement_id, d.outcome) for d in decisions] == [("a-old", Outcome.DENY), ("b-tax", Outcome.PERMIT)]


@pytest.fixture
def restricted() -> PolicySet:
    return policy_set(
        agreement(fields=["person_id", "street_address", "postal_code", "municipality_code"]),
        agreement(id="pbb-address", recipient="police-board", purpose="law-enforcement",
                  fields=["person_id", "street_address", "postal_code", "address_protected"]),
        restriction(),
    )


def test_naive_event_time_is_a_policy_error() -> None:
    """An event time without a zone cannot be placed in a window: a typed error, not a TypeError."""
    with pytest.raises(PolicyError, match="no time zone"):
        decide(_index(agreement()), facts(time=datetime(2025, 1, 1)), NO_CONSENTS)


def test_too_many_restrictions_on_one_agreement_are_refused() -> None:
    """Decisions are prebuilt per subset of restrictions, so their number per agreement is bounded."""
    many = [restriction(id=f"r-{i:02}", reason=f"reason-{i}") for i in range(MAX_RESTRICTIONS_PER_AGREEMENT + 1)]
    with pytest.raises(PolicyError, match="at most 12"):
        _index(agreement(), *many)
    assert _index(agreement(), *many[:-1]).agreements_for("population.address-changed")[0].mask == 2**12 - 1
