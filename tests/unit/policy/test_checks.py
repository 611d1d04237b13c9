"""Cross-reference checks run by compile_policies: types, fields, agencies, open data, conflicts."""

from __future__ import annotations

import pytest

from exchange.policy import (
    Agreement,
    PolicyCompileError,
    PolicyConflictError,
    PolicyError,
    Restriction,
    TypeInfo,
    compile_policies,
    find_issues,
)

from .support import AGENCIES, REGISTRY, TYPES, agreement, policy_set, restriction


def _codes(*items: Agreement | Restriction) -> list[tuple[str, tuple[str | int, ...]]]:
    issues = find_issues(policy_set(*items), TYPES, AGENCIES)
    return [(issue.code, issue.loc) for issue in issues]


def test_valid_policies_have_no_issues() -> None:
    """The reference agreement and restriction fit the contract's types and agencies."""
    assert _codes(agreement(), restriction()) == []


def test_unknown_type_field_and_agency_are_reported_where_they_are() -> None:
    """Each unknown name is one issue pointing at its place in the document."""
    assert _codes(agreement(record_type="population.moved")) == [("UNKNOWN_TYPE", ("record_type",))]
    assert _codes(agreement(fields=["person_id", "shoe_size"])) == [("UNKNOWN_FIELD", ("fields", 1))]
    assert _codes(agreement(recipient="ministry-of-magic")) == [("UNKNOWN_AGENCY", ("recipient",))]


def test_restriction_on_unknown_fields_agencies_or_types_is_reported() -> None:
    """A restriction must name real fields (also in its condition), agencies and types."""
    assert _codes(restriction(fields=["street_address", "door_code"])) == [("UNKNOWN_FIELD", ("fields", 1))]
    assert _codes(restriction(condition={"field": "is_secret", "equals": True})) == [
        ("UNKNOWN_FIELD", ("condition", "field"))
    ]
    assert _codes(restriction(except_recipients=["secret-service"])) == [
        ("UNKNOWN_AGENCY", ("except_recipients", 0))
    ]
    assert _codes(restriction(record_type="population.moved")) == [("UNKNOWN_TYPE", ("record_type",))]


def test_open_data_of_a_type_with_non_public_fields_is_a_compile_error() -> None:
    """Only types whose every field is public may be published as open data."""
    open_address = agreement(recipient="public", delivery="opendata", fields=["municipality_code", "moved_on"])
    with pytest.raises(PolicyCompileError, match="not every field is public") as caught:
        compile_policies(policy_set(open_address), TYPES, AGENCIES, REGISTRY)
    assert [issue.code for issue in caught.value.issues] == ["OPEN_DATA_NOT_PUBLIC"]


def test_open_data_of_a_public_type_compiles() -> None:
    """business.company-registered is all public, so it may be open data."""
    open_companies = agreement(
        id="public-companies", recipient="public", delivery="opendata", record_type="business.company-registered",
        purpose="open-data", fields=["company_id", "name"],
    )
    index = compile_policies(policy_set(open_companies), TYPES, AGENCIES, REGISTRY)
    assert [c.agreement.id for c in index.agreements_for("business.company-registered")] == ["public-companies"]


def test_consent_or_pseudonyms_on_records_without_a_person_are_refused() -> None:
    """A record-keyed type has no subject who could consent and no person id to pseudonymise."""
    company = {"record_type": "business.company-registered", "fields": ["company_id"]}
    assert _codes(agreement(legal_basis={"consent": True}, **company)) == [("NO_SUBJECT", ("legal_basis",))]
    assert _codes(agreement(pseudonymise=True, **company)) == [("NO_SUBJECT", ("pseudonymise",))]


def test_overlapping_agreements_for_the_same_recipient_type_and_purpose_conflict() -> None:
    """Two agreements claiming the same ground at the same time are a conflict."""
    first = agreement(id="tcb-a", valid_until="2025-01-01T00:00:00Z")
    second = agreement(id="tcb-b", valid_from="2024-06-01T00:00:00Z")
    with pytest.raises(PolicyConflictError, match="overlaps agreement tcb-a v1") as caught:
        compile_policies(policy_set(first, second), TYPES, AGENCIES, REGISTRY)
    assert [(i.item_id, i.code, i.loc) for i in caught.value.issues] == [("tcb-b", "CONFLICT", ("valid_from",))]


def test_adjacent_windows_and_different_purposes_do_not_conflict() -> None:
    """A successor starting when its predecessor ends, or another purpose, is no conflict."""
    old = agreement(id="tcb-a", valid_until="2025-01-01T00:00:00Z")
    new = agreement(id="tcb-a", version=2, valid_from="2025-01-01T00:00:00Z")
    other = agreement(id="tcb-c", purpose="debt-collection")
    assert _codes(old, new, other) == []


def test_open_ended_agreements_conflict_with_any_later_one() -> None:
    """An agreement without valid_until overlaps everything that starts after it."""
    first = agreement(id="tcb-a")
    later = agreement(id="tcb-b", valid_from="2030-01-01T00:00:00Z", valid_until="2031-01-01T00:00:00Z")
    assert _codes(first, later) == [("CONFLICT", ("valid_from",))]


def test_duplicate_ids_are_reported() -> None:
    """Agreement (id, version) and restriction ids are unique."""
    assert ("DUPLICATE_ID", ("version",)) in _codes(agreement(), agreement(purpose="debt-collection"))
    assert _codes(restriction(), restriction()) == [("DUPLICATE_ID", ())]


def test_all_problems_are_listed_at_once() -> None:
    """compile_policies reports every problem, not only the first."""
    with pytest.raises(PolicyCompileError) as caught:
        compile_policies(
            policy_set(agreement(recipient="nobody", fields=["nothing"]), restriction(fields=["nowhere"])),
            TYPES, AGENCIES, REGISTRY,
        )
    assert sorted(issue.code for issue in caught.value.issues) == ["UNKNOWN_AGENCY", "UNKNOWN_FIELD", "UNKNOWN_FIELD"]
    assert not isinstance(caught.value, PolicyConflictError)


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (TypeInfo("a.b", {"x": "secret"}, "x", "person"), "unknown classification"),
        (TypeInfo("a.b", {"x": "public"}, "y", "person"), "key field 'y'"),
        (TypeInfo("a.b", {"x": "public"}, "x", "thing"), "unknown key kind"),
        (TypeInfo("a.c", {"x": "public"}, "x", "record"), "describes 'a.c'"),
    ],
)
def test_malformed_type_info_is_the_callers_error(info: TypeInfo, message: str) -> None:
    """Type info comes from the schema catalogue; a malformed one raises PolicyError straight away."""
    with pytest.raises(PolicyError, match=message):
        find_issues(policy_set(), {"a.b": info}, AGENCIES)
