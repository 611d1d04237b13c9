"""Pseudonymising agreements: the decision, and so the access-log entry, says that the recipient pseudonym was
released, never the person id, and the delivery built from the decision carries exactly what it says."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.context import type_infos
from exchange.delivery import DeliveryOpener, DeliverySealer
from exchange.delivery.minimise import Plan, disclosed_mask
from exchange.policy import (
    NO_CONSENTS,
    RECIPIENT_PSEUDONYM,
    Agreement,
    ConsentDecision,
    ConsentRef,
    Decision,
    EventFacts,
    PolicyIndex,
    PolicySet,
    compile_policies,
    decide,
    load_policies,
)
from exchange.policy import reasons as r
from exchange.router.entries import decision_values
from exchange.schemas import Catalogue
from tests.unit.delivery.support import PSEUDO, Keys, signed_events

from .support import AGENCIES, REGISTRY, REPO, SUBJECT, TYPES, agreement, consent, consent_state, facts

_CATALOGUE = Catalogue.load(REPO / "schemas")  # module level: hypothesis tests cannot take function fixtures
_INFOS = type_infos(_CATALOGUE)


class _Granting:
    """A consent view in which the subject consents to everything (the consent path is tested elsewhere)."""

    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        return ConsentDecision(granted=True, reason=None, reference=ConsentRef("c-all", 1))


@pytest.fixture(scope="module")
def shipped() -> PolicySet:
    return load_policies(REPO / "policies")


@pytest.fixture(scope="module")
def shipped_index(shipped: PolicySet) -> PolicyIndex:
    return compile_policies(shipped, _INFOS, AGENCIES, REGISTRY)


def _decision_of(index: PolicyIndex, agreement_id: str, event: EventFacts) -> Decision:
    return next(d for d in decide(index, event, _Granting()) if d.agreement_id == agreement_id)


def _in_force(item: Agreement) -> datetime:
    return item.valid_from  # inclusive: every agreement is in force at its valid_from


def test_every_shipped_pseudonymising_agreement_releases_the_pseudonym_not_the_person_id(
    shipped: PolicySet, shipped_index: PolicyIndex
) -> None:
    """All statistics-office agreements pseudonymise; none of their PERMITs lists person_id as released."""
    pseudonymising = [a for a in shipped.agreements if a.pseudonymise]
    assert {a.recipient for a in pseudonymising} == {"statistics-office"}
    assert len(pseudonymising) == 4
    for item in pseudonymising:
        event = facts(item.record_type, time=_in_force(item), address_protected=False)
        decision = _decision_of(shipped_index, item.id, event)
        assert decision.permitted
        assert "person_id" in item.fields
        assert decision.fields[0] == RECIPIENT_PSEUDONYM
        assert "person_id" not in decision.fields
        assert "person_id" in decision.withheld
        assert decision.fields[1:] == tuple(n for n in _INFOS[item.record_type].fields
                                            if n in item.fields and n != "person_id")


def test_the_access_log_entry_names_the_recipient_pseudonym(shipped: PolicySet, shipped_index: PolicyIndex) -> None:
    """What the router writes as fields_released: the recipient pseudonym, never the person id."""
    item = next(a for a in shipped.agreements if a.id == "sto-income-assessed-statistics")
    decision = _decision_of(shipped_index, item.id, facts(item.record_type, time=_in_force(item)))
    released = decision_values(decision)["fields_released"]
    assert released == [RECIPIENT_PSEUDONYM, "tax_year", "taxable_income_cents", "tax_due_cents", "assessed_on"]
    statutory = next(a for a in shipped.agreements if a.id == "sib-income-assessed-benefits")
    plain = _decision_of(shipped_index, statutory.id, facts(item.record_type, time=_in_force(statutory)))
    assert "person_id" in decision_values(plain)["fields_released"]
    assert RECIPIENT_PSEUDONYM not in decision_values(plain)["fields_released"]


def test_a_pseudonymising_agreement_without_the_person_id_still_names_the_pseudonym() -> None:
    """The delivery keys every pseudonymised record by the recipient pseudonym, agreed field or not."""
    stats = agreement(id="sto-address", recipient="statistics-office", purpose="official-statistics",
                      fields=["moved_on"], pseudonymise=True)
    index = compile_policies(PolicySet(agreements=(stats,)), TYPES, AGENCIES, REGISTRY)
    (decision,) = decide(index, facts(address_protected=False), NO_CONSENTS)
    assert decision.fields == (RECIPIENT_PSEUDONYM, "moved_on")
    assert decision.withheld == ()


def test_a_deny_under_a_pseudonymising_agreement_releases_nothing() -> None:
    """Outside the window nothing is released, the pseudonym neither."""
    stats = agreement(id="sto-address", recipient="statistics-office", purpose="official-statistics",
                      fields=["person_id", "moved_on"], pseudonymise=True, valid_until="2025-01-01T00:00:00Z")
    index = compile_policies(PolicySet(agreements=(stats,)), TYPES, AGENCIES, REGISTRY)
    (decision,) = decide(index, facts(address_protected=False), NO_CONSENTS)
    assert decision.fields == ()
    assert decision.withheld == ("person_id", "moved_on")
    assert decision_values(decision)["fields_released"] == []


_CONSENTED = {
    "id": "sto-consented", "recipient": "municipal-services", "record_type": "tax.income-assessed",
    "purpose": "housing-allowance", "legal_basis": {"consent": True}, "pseudonymise": True,
    "fields": ["person_id", "tax_year", "taxable_income_cents"],
}


@pytest.mark.parametrize(
    ("scope", "fields", "withheld", "codes"),
    [
        (None, (RECIPIENT_PSEUDONYM, "tax_year", "taxable_income_cents"), ("person_id",), ()),
        (["person_id", "tax_year", "taxable_income_cents"], (RECIPIENT_PSEUDONYM, "tax_year", "taxable_income_cents"),
         ("person_id",), ()),
        (["tax_year"], (RECIPIENT_PSEUDONYM, "tax_year"), ("person_id", "taxable_income_cents"), (r.CONSENT_SCOPE,)),
        (["person_id"], (RECIPIENT_PSEUDONYM,), ("person_id", "tax_year", "taxable_income_cents"),
         (r.CONSENT_SCOPE,)),
    ],
)
def test_a_consent_scope_narrows_a_pseudonymising_release(
    scope: list[str] | None, fields: tuple[str, ...], withheld: tuple[str, ...], codes: tuple[str, ...]
) -> None:
    """The consent narrows the agreed fields; the person id is never released and the pseudonym always is."""
    index = compile_policies(PolicySet(agreements=(agreement(**_CONSENTED),)), TYPES, AGENCIES, REGISTRY)
    state = consent_state(consent(fields=scope))
    (decision,) = decide(index, facts("tax.income-assessed", subject=SUBJECT), state)
    assert decision.permitted
    assert (decision.fields, decision.withheld, decision.reasons) == (fields, withheld, codes)


@pytest.mark.parametrize("pseudonymise", [True, False])
def test_the_delivery_carries_exactly_what_the_decision_says(shipped: PolicySet, pseudonymise: bool) -> None:
    """Seal and open a real event under each shipped agency agreement (and its pseudonymising twin): the fields
    the recipient opens are the released ones, and it gets a recipient pseudonym iff the decision names one."""
    keys = Keys()
    registry = keys.registry()
    sealer = DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO)
    agreements = tuple(
        a.model_copy(update={"pseudonymise": pseudonymise and _INFOS[a.record_type].key_kind == "person"})
        for a in shipped.agreements if a.delivery == "agency"
    )
    index = compile_policies(PolicySet(agreements=agreements), _INFOS, AGENCIES, REGISTRY)
    for item in agreements:
        (event,) = signed_events(_CATALOGUE, keys, registry, item.record_type, n=1)
        event_facts = EventFacts(event.attributes.id, item.record_type, event.attributes.source, _in_force(item),
                                 SUBJECT, {**event.record, "address_protected": False})
        decision = _decision_of(index, item.id, event_facts)
        assert decision.permitted
        delivery = sealer.seal(event, decision)
        opener = DeliveryOpener(item.recipient, keys.encryption[item.recipient], registry, _CATALOGUE)
        received = opener.open(delivery.key, delivery.value, delivery.headers, delivery.topic)
        released = decision_values(decision)["fields_released"]
        assert set(received.fields) == set(released) - {RECIPIENT_PSEUDONYM}
        assert (received.subject_pseudonym is not None) == (RECIPIENT_PSEUDONYM in released) == item.pseudonymise
        assert "person_id" not in released or not item.pseudonymise


_ADDRESS = _CATALOGUE.current("population.address-changed")


@settings(max_examples=200, deadline=None)
@given(agreed=st.lists(st.sampled_from(_ADDRESS.field_names), min_size=1, unique=True),
       pseudonymise=st.booleans(), protected=st.booleans())
def test_the_delivery_mask_follows_the_release(agreed: list[str], pseudonymise: bool, protected: bool) -> None:
    """For any agreed fields: the delivery discloses exactly the released field names, the key and key field
    never when pseudonymising, and only then does the decision name the recipient pseudonym."""
    item = agreement(id="any", recipient="statistics-office", purpose="official-statistics", fields=agreed,
                     pseudonymise=pseudonymise)
    index = compile_policies(PolicySet(agreements=(item,)), _INFOS, AGENCIES, REGISTRY)
    (decision,) = decide(index, facts(address_protected=protected), NO_CONSENTS)
    if not decision.permitted:
        return
    mask = disclosed_mask(_ADDRESS, decision.fields, decision.pseudonymise)
    disclosed = {name for name, shown in zip(_ADDRESS.field_names, mask[1:], strict=True) if shown}
    assert disclosed == set(decision.fields) - {RECIPIENT_PSEUDONYM}
    assert mask[0] is not pseudonymise
    assert (RECIPIENT_PSEUDONYM in decision.fields) is pseudonymise
    Plan(decision, _ADDRESS)  # the sealer's per-decision plan builds from it
