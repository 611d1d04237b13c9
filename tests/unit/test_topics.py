"""Expanding deploy/topics.yaml into concrete topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.errors import ConfigError
from exchange.topics import TopicInputs, discover_inputs, expand, load_spec, retention_ms

INPUTS = TopicInputs(("population.address-changed", "tax.income-assessed"), ("statistics-office", "tax-board"),
                     ("business.company-registered",))


def test_retention_durations() -> None:
    """Durations turn into milliseconds and 'forever' into -1; anything else is refused."""
    assert retention_ms("7d") == 7 * 86_400_000
    assert retention_ms("30m") == 1_800_000
    assert retention_ms("forever") == -1
    with pytest.raises(ValueError, match="not a duration"):
        retention_ms("7 days")


def test_shipped_spec_expands_every_family(repo_root: Path) -> None:
    """Every topic of the architecture appears once, per type and per recipient where it should."""
    names = [t.name for t in expand(load_spec(repo_root / "deploy" / "topics.yaml"), INPUTS, brokers=3)]
    assert names == [
        "ingress.population.address-changed", "ingress.tax.income-assessed",
        "delivery.statistics-office", "delivery.tax-board",
        "opendata.business.company-registered",
        "consent.events", "audit.decisions", "audit.checkpoints", "policy.bundles", "exchange.quarantine",
    ]


def test_ingress_and_consent_are_co_partitioned(repo_root: Path) -> None:
    """All ingress topics and consent.events have the same partition count."""
    topics = expand(load_spec(repo_root / "deploy" / "topics.yaml"), INPUTS, brokers=3)
    counts = {t.partitions for t in topics if t.co_partition == "subject"}
    members = {t.name for t in topics if t.co_partition == "subject"}
    assert len(counts) == 1
    assert "consent.events" in members
    assert {"ingress.population.address-changed", "ingress.tax.income-assessed"} <= members


@pytest.mark.parametrize(("brokers", "rf", "min_isr"), [(1, 1, "1"), (2, 2, "2"), (5, 3, "2")])
def test_replication_is_capped_at_the_cluster_size(repo_root: Path, brokers: int, rf: int, min_isr: str) -> None:
    """A single broker gets replication 1 and min.insync 1; bigger clusters get the spec's values."""
    topics = expand(load_spec(repo_root / "deploy" / "topics.yaml"), INPUTS, brokers=brokers)
    assert {t.replication_factor for t in topics} == {rf}
    assert {t.config["min.insync.replicas"] for t in topics} == {min_isr}


def test_forever_topics_keep_everything(repo_root: Path) -> None:
    """The access log, checkpoints, bundles and consents are never deleted by retention."""
    topics = {t.name: t for t in expand(load_spec(repo_root / "deploy" / "topics.yaml"), INPUTS, brokers=1)}
    for name in ("audit.decisions", "audit.checkpoints", "policy.bundles", "consent.events"):
        assert topics[name].config["retention.ms"] == "-1"


def test_bad_spec_is_a_config_error(tmp_path: Path) -> None:
    """An unknown key or bad retention is reported with the file name."""
    bad = tmp_path / "topics.yaml"
    bad.write_text("topics:\n  - name: x\n    partitions: 1\n    retention: 7 days\n")
    with pytest.raises(ConfigError, match=r"topics\.yaml: invalid topic spec"):
        load_spec(bad)
    bad.write_text("topics:\n  - name: x\n    retention: 7d\n")
    with pytest.raises(ConfigError, match="needs partitions"):
        expand(load_spec(bad), INPUTS, brokers=1)


def test_discover_inputs_reads_catalogue_registry_and_agreements(tmp_path: Path) -> None:
    """Types come from schema folders (not the exchange's own), recipients from the registry, open data from
    agreements that deliver to opendata."""
    (tmp_path / "schemas" / "tax" / "income-assessed").mkdir(parents=True)
    (tmp_path / "schemas" / "tax" / "income-assessed" / "0001.avsc").write_text("{}")
    (tmp_path / "schemas" / "exchange" / "decision").mkdir(parents=True)
    (tmp_path / "schemas" / "exchange" / "decision" / "0001.avsc").write_text("{}")
    (tmp_path / "registry.yaml").write_text("agencies:\n  - id: tax-board\n  - id: statistics-office\n")
    (tmp_path / "policies" / "agreements").mkdir(parents=True)
    (tmp_path / "policies" / "agreements" / "a.yaml").write_text(
        "agreements:\n  - {id: a, record_type: tax.income-assessed, delivery: agency}\n"
        "  - {id: b, record_type: business.company-registered, delivery: opendata}\n")
    found = discover_inputs(tmp_path / "schemas", tmp_path / "registry.yaml", tmp_path / "policies")
    assert found == TopicInputs(("tax.income-assessed",), ("statistics-office", "tax-board"),
                                ("business.company-registered",))
