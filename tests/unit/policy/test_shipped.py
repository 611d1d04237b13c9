"""The agreements and restrictions shipped in policies/ are valid and cover what the design promises."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from exchange.cli._app import main
from exchange.policy import NO_CONSENTS, PolicySet, compile_policies, decide, load_policies

from .support import AGENCIES, REGISTRY, REPO, TYPES, facts


@pytest.fixture(scope="module")
def shipped() -> PolicySet:
    return load_policies(REPO / "policies")


def test_shipped_policies_compile_against_the_contract_types(shipped: PolicySet) -> None:
    """Every shipped agreement and restriction names real types, fields and agencies, without conflicts."""
    index = compile_policies(shipped, TYPES, AGENCIES, REGISTRY)
    assert index.bundle_id.startswith("sha256:")


def test_shipped_agreements_cover_the_design(shipped: PolicySet) -> None:
    """At least ten agreements mixing statute and consent, pseudonymised statistics, company open data, windows
    that ended or have not begun, and three recipients for each of the most common types."""
    agreements = shipped.agreements
    assert len(agreements) >= 10
    assert {a.legal_basis.is_consent for a in agreements} == {True, False}
    assert all(a.pseudonymise for a in agreements if a.recipient == "statistics-office")
    assert any(a.delivery == "opendata" and a.record_type == "business.company-registered" for a in agreements)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert any(a.valid_until is not None and a.valid_until <= now for a in agreements)
    assert any(a.valid_from > now for a in agreements)
    per_type = Counter(a.record_type for a in agreements)
    for record_type in ("population.address-changed", "population.person-registered", "tax.income-assessed"):
        assert per_type[record_type] >= 3


def test_shipped_protected_address_restriction(shipped: PolicySet) -> None:
    """A protected address reaches the police but no other recipient."""
    index = compile_policies(shipped, TYPES, AGENCIES, REGISTRY)
    decisions = decide(index, facts(address_protected=True), NO_CONSENTS)
    receiving = {d.recipient for d in decisions if "street_address" in d.fields}
    assert receiving == {"police-board"}
    assert any(d.recipient == "tax-board" and d.permitted for d in decisions)


@pytest.mark.skipif(
    not ((REPO / "schemas").is_dir() and (REPO / "policies/registry.yaml").is_file()),
    reason="the schema catalogue or the registry is not in this checkout",
)
def test_policies_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    """`exchange policies check` is clean on the repository's own schemas, registry and policies."""
    code = main(["policies", "check", "--policies", str(REPO / "policies"), "--schemas", str(REPO / "schemas"),
                 "--registry", str(REPO / "policies/registry.yaml")])
    assert capsys.readouterr().out.startswith("ok:")
    assert code == 0
