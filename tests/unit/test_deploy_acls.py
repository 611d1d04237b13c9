"""The KafkaUsers' ACLs are least privilege, derived from the registry and the agreements."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.deploy.acls import (
    CONSENT_PRINCIPAL,
    PUBLIC_PRINCIPAL,
    ROUTER_PRINCIPAL,
    SEQUENCER_PRINCIPAL,
    TRACKER_PRINCIPAL,
    KafkaPrincipal,
    derive_principals,
)
from exchange.deploy.generate import stale_files
from exchange.policy.files import load_policies
from exchange.registry import Registry
from exchange.topics import discover_inputs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def principals() -> dict[str, KafkaPrincipal]:
    inputs = discover_inputs(ROOT / "schemas", ROOT / "policies" / "registry.yaml", ROOT / "policies")
    found = derive_principals(Registry.load(ROOT / "policies" / "registry.yaml"), load_policies(ROOT / "policies"),
                              inputs)
    return {principal.name: principal for principal in found}


def _topics(principal: KafkaPrincipal, operation: str) -> set[str]:
    return {rule.name for rule in principal.rules if rule.resource_type == "topic" and operation in rule.operations}


def test_every_agency_and_service_has_a_principal(principals: dict[str, KafkaPrincipal]) -> None:
    registry = Registry.load(ROOT / "policies" / "registry.yaml")
    assert {agency.id for agency in registry.agencies} < set(principals)
    assert {ROUTER_PRINCIPAL, SEQUENCER_PRINCIPAL, TRACKER_PRINCIPAL, CONSENT_PRINCIPAL, PUBLIC_PRINCIPAL} < set(
        principals)
    assert all(rule.pattern == "literal" for p in principals.values() for rule in p.rules
               if rule.resource_type == "topic")


def test_an_agency_writes_only_its_types_and_reads_only_its_deliveries(
        principals: dict[str, KafkaPrincipal]) -> None:
    registry = Registry.load(ROOT / "policies" / "registry.yaml")
    for agency in registry.agencies:
        principal = principals[agency.id]
        assert _topics(principal, "Write") == {f"ingress.{t}" for t in agency.authoritative_for}
        assert _topics(principal, "Read") == {f"delivery.{agency.id}"}
        groups = [rule for rule in principal.rules if rule.resource_type == "group"]
        assert [(g.name, g.pattern) for g in groups] == [(f"{agency.id}.", "prefix")]


def test_services_have_only_what_they_use(principals: dict[str, KafkaPrincipal]) -> None:
    router = principals[ROUTER_PRINCIPAL]
    assert not any(name.startswith("ingress.") for name in _topics(router, "Write"))
    recipients = {a.recipient for a in load_policies(ROOT / "policies").agreements if a.delivery == "agency"}
    assert {name for name in _topics(router, "Write") if name.startswith("delivery.")} == {
        f"delivery.{recipient}" for recipient in recipients}
    assert "audit.log" not in _topics(router, "Write")
    assert _topics(principals[SEQUENCER_PRINCIPAL], "Write") == {"audit.log", "audit.sequencer", "audit.checkpoints"}
    assert _topics(principals[TRACKER_PRINCIPAL], "Write") == {"audit.decisions"}
    assert _topics(principals[CONSENT_PRINCIPAL], "Write") == {"consent.events"}
    public = principals[PUBLIC_PRINCIPAL]
    assert _topics(public, "Write") == set()
    assert _topics(public, "Read")
    assert all(name.startswith("opendata.") for name in _topics(public, "Read"))


def test_the_generated_files_are_up_to_date() -> None:
    assert stale_files(ROOT) == [], "run `make deploy-generate`"
