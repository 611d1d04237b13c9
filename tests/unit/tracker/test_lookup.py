"""An operator's lookup of a subject is logged as an access: its entry decodes as a decision, the tracker indexes
it as the subject's row, and re-evaluation accepts exactly the lookup's shape and nothing dressed up as one."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.audit.reevaluate import ConsentReplay, Reevaluator
from exchange.audit.sources import decision_checker
from exchange.errors import ConfigError
from exchange.tracker.indexer import HiddenPeriods, entry_row
from exchange.tracker.lookup import lookup_entry

from .support import AGENCIES, BUNDLE, CATALOGUE, PSEUDONYMS

SUBJECT = PSEUDONYMS.subject("19800101-1234")


def _checker() -> Any:
    reevaluator = Reevaluator(CATALOGUE, [BUNDLE.data], ConsentReplay(CATALOGUE, lambda *_: True, {}))  # type: ignore[arg-type]
    return decision_checker(CATALOGUE, reevaluator)


def test_a_lookup_is_a_shown_access_of_the_subject() -> None:
    value, headers, entry_id = lookup_entry(CATALOGUE, SUBJECT, "population-registry", "GDPR Art. 15 request 42")
    row = entry_row(7, value, CATALOGUE, AGENCIES, HiddenPeriods(lambda: [BUNDLE.data]))
    assert (row.subject_ref, row.outcome, row.recipient, row.fields) == (SUBJECT, "PERMIT", "population-registry",
                                                                         ("access-history",))
    assert row.legal_basis == "statute:GDPR Art. 15 request 42"
    assert row.visible_from == row.decided_at
    assert dict(headers)["ce_id"] == entry_id.encode()
    assert _checker()(7, value) is None


@pytest.mark.parametrize("change", [
    {"fields_released": ["person_id", "surname"]}, {"agreement_id": "tcb-person-registered-tax"},
    {"bundle_id": BUNDLE.id}, {"legal_basis": "consent"}, {"purpose": "taxation"}, {"router_id": "router-1"},
    {"event_type": "population.person-registered"},
])
def test_nothing_else_passes_for_a_lookup(change: dict[str, Any]) -> None:
    value, _, _ = lookup_entry(CATALOGUE, SUBJECT, "population-registry", "GDPR Art. 15")
    schema, record = CATALOGUE.decode(value)
    record.update(change)
    found = _checker()(3, schema.encode(record))
    assert found is not None
    assert found.index == 3
    assert found.check in {"decision not supported", "unknown bundle", "event mismatch"}


@pytest.mark.parametrize(("operator", "basis"), [("Population Registry", "GDPR"), ("dpo", ""), ("dpo", "x" * 301)])
def test_a_lookup_needs_an_operator_id_and_a_basis(operator: str, basis: str) -> None:
    with pytest.raises(ConfigError):
        lookup_entry(CATALOGUE, SUBJECT, operator, basis)
