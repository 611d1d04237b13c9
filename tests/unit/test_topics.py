"""Expanding deploy/topics.yaml into concrete topics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.cli._app import main
from exchange.errors import ConfigError
from exchange.topics import (
    ClusterSize,
    TopicInputs,
    TopicSpecError,
    discover_inputs,
    expand,
    load_spec,
    retention_ms,
)
from tests.unit.policy.hostile import (
    DEEP_BLOCK_NESTING,
    DEEP_NESTING,
    ENDLESS,
    RECURSIVE_ALIAS,
    billion_laughs,
    endless,
    mutations,
    refused,
    write_huge,
)

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
        "ingress.population.address-changed", "ingress.tax.income-assessed", "router.seen",
        "delivery.statistics-office", "delivery.tax-board",
        "opendata.business.company-registered",
        "consent.events", "audit.decisions", "audit.log", "audit.sequencer", "audit.checkpoints",
        "policy.bundles", "exchange.quarantine",
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
    with pytest.raises(ConfigError, match=r"topics\.yaml:4: invalid topic spec: topics\.0\.retention"):
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


# -- hostile files ----------------------------------------------------------------------------------------

SPEC = (Path(__file__).resolve().parents[2] / "deploy" / "topics.yaml").read_bytes()


def _spec_refused(tmp_path: Path, content: bytes) -> tuple[Path, TopicSpecError]:
    path = tmp_path / "topics.yaml"
    path.write_bytes(content)
    return path, refused(lambda: load_spec(path), TopicSpecError)


def test_validation_errors_carry_the_line(tmp_path: Path) -> None:
    """Every pydantic error is reported at its line, all of them in the message."""
    path, err = _spec_refused(tmp_path, b"topics:\n  - name: x\n    partitons: 1\n  - name: y\n    retention: 7 days\n")
    assert (err.path, err.line) == (str(path), 3)
    assert str(err).splitlines() == [
        f"{path}:3: invalid topic spec: topics.0.partitons: Extra inputs are not permitted",
        f"{path}:5: invalid topic spec: topics.1.retention: Value error, retention '7 days' is not a duration "
        "like 30m, 12h, 7d or 'forever'",
    ]


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (SPEC.replace(b"defaults:", b"defaults:\x00", 1), None, "U+0000"),
        (SPEC.replace(b"defaults:", b"defaults: \x1b", 1), None, "U+001B"),
        (SPEC.replace(b"defaults:", b"defaults: \xc3\x28", 1), None, "not UTF-8"),
        (DEEP_NESTING.encode(), 1, "nested more than 64 levels"),
        (DEEP_BLOCK_NESTING.encode(), 2, "nested more than 64 levels"),
        (SPEC + RECURSIVE_ALIAS.encode(), SPEC.count(b"\n") + 1, "aliases are not allowed"),
        (billion_laughs().encode(), 2, "aliases are not allowed"),
        (b"# nothing\n", 1, "the file is empty"),
        (SPEC + b"defaults: {}\n", SPEC.count(b"\n") + 1, "duplicate key 'defaults'"),
    ],
    ids=["nul", "escape", "utf8", "deep-flow", "deep-block", "alias", "laughs", "empty", "duplicate"],
)
def test_hostile_specs_are_refused_with_file_and_line(
    tmp_path: Path, content: bytes, line: int | None, reason: str
) -> None:
    """Control characters, bad UTF-8, deep nesting, aliases, an empty file and a repeated key: a TopicSpecError
    naming the file and line (a ConfigError, so every caller of load_spec already handles it)."""
    path, err = _spec_refused(tmp_path, content)
    expected = line if line is not None else SPEC[:SPEC.index(b"defaults:")].count(b"\n") + 1
    assert (err.path, err.line) == (str(path), expected)
    assert reason in err.reason
    assert str(err).startswith(f"{path}:{expected}: ")
    assert isinstance(err, ConfigError)


@pytest.mark.parametrize("kind", [*ENDLESS, "huge"])
def test_huge_and_endless_specs_are_refused(tmp_path: Path, kind: str) -> None:
    """A 50 MB file is refused after at most 1 MiB is read; a device or a FIFO by its type."""
    path = tmp_path / "topics.yaml"
    write_huge(path) if kind == "huge" else endless(path, kind)
    err = refused(lambda: load_spec(path), TopicSpecError)
    assert err.path == str(path)
    assert ("larger than the limit" if kind == "huge" else "not a regular file") in err.reason


def test_discover_inputs_refuses_hostile_registries_and_agreements(tmp_path: Path) -> None:
    """The files topics are expanded over are read within the same limits, errors naming them."""
    registry = tmp_path / "registry.yaml"
    registry.write_text("agencies:\n  - id: tax\x00board\n", encoding="utf-8")
    err = refused(lambda: discover_inputs(tmp_path, registry, tmp_path), TopicSpecError)
    assert (err.path, err.line) == (str(registry), 2)
    registry.write_text("# empty\n", encoding="utf-8")
    assert refused(lambda: discover_inputs(tmp_path, registry, tmp_path), TopicSpecError).line == 1
    registry.write_text("agencies: {tax-board: 1}\n", encoding="utf-8")
    assert "needs a list 'agencies'" in str(refused(lambda: discover_inputs(tmp_path, registry, tmp_path),
                                                    TopicSpecError))
    registry.write_text("agencies: [{id: tax-board}, just-a-string]\n", encoding="utf-8")
    agreement = tmp_path / "agreements" / "a.yaml"
    agreement.parent.mkdir()
    agreement.write_text(RECURSIVE_ALIAS, encoding="utf-8")
    err = refused(lambda: discover_inputs(tmp_path, registry, tmp_path), TopicSpecError)
    assert (err.path, err.line) == (str(agreement), 1)
    agreement.write_text("id: a\n", encoding="utf-8")
    assert discover_inputs(tmp_path, registry, tmp_path).recipients == ("tax-board",)


def test_topics_list_prints_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``exchange topics list`` (and plan, before any broker is contacted) prints file:line: reason, exit 2."""
    spec = tmp_path / "topics.yaml"
    spec.write_bytes(SPEC + RECURSIVE_ALIAS.encode())
    line = SPEC.count(b"\n") + 1
    for action in ("list", "plan"):
        code = main(["topics", action, "--spec", str(spec), "--schemas", str(tmp_path), "--registry",
                     str(tmp_path / "none.yaml"), "--policies", str(tmp_path)])
        out = capsys.readouterr()
        assert code == 2
        assert out.err == (f"exchange topics: error: {spec}:{line}: YAML aliases are not allowed "
                           "(*l): write the value out\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_spec_loads_or_raises_a_topic_spec_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """deploy/topics.yaml with flipped bytes, control characters, truncation, duplicated lines, deep nesting or
    aliases either loads or raises TopicSpecError, within a second."""
    path = tmp_path_factory.getbasetemp() / "fuzz-topics.yaml"
    path.write_bytes(data.draw(mutations(SPEC)))
    start = time.monotonic()
    try:
        spec = load_spec(path)
    except TopicSpecError as exc:
        message = str(exc)
    else:
        message = str(path)
        try:
            expand(spec, INPUTS, brokers=1)
        except ConfigError as exc:  # a family without partitions: the spec's own error
            message += str(exc)
    assert str(path) in message
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(("name", "for_each", "reason"), [
    ("delivery.{secipient}", "recipient", "a placeholder is one of {opendata_type}, {recipient}, {record_type}"),
    ("delivery.zrecipient}", "recipient", "Single '}' encountered"),
    ("delivery.{recipient!r}", "recipient", "a placeholder is one of"),
    ("delivery.{recipient.upper}", "recipient", "a placeholder is one of"),
    ("delivery", "recipient", "a name has a placeholder exactly when the family has for_each"),
    ("audit.{record_type}", None, "a name has a placeholder exactly when the family has for_each"),
    ("delivery/{recipient}", "recipient", "a topic name has only letters, digits"),
])
def test_bad_name_templates_are_refused_at_their_line(
    tmp_path: Path, name: str, for_each: str | None, reason: str
) -> None:
    """A family's name template that str.format would choke on (or that makes no sense) is refused on load,
    so expanding the spec cannot crash."""
    family = f"  - name: '{name}'\n" + (f"    for_each: {for_each}\n" if for_each else "") + "    partitions: 1\n"
    path, err = _spec_refused(tmp_path, f"topics:\n  - name: ok\n    partitions: 1\n{family}".encode())
    assert (err.path, err.line) == (str(path), 4)
    assert reason in err.reason


def test_cluster_size_counts_brokers_that_are_down() -> None:
    """A broker that holds replicas but is not alive still counts: topics are planned for the cluster's size."""
    size = ClusterSize(alive=frozenset({1, 3}), members=frozenset({1, 2, 3}))
    assert size.brokers == 3
    assert size.down == {2}
    assert size.degraded
    assert size.describe() == "2 of 3 brokers alive (down: 2)"


def test_cluster_size_from_the_brokers_configuration() -> None:
    """A cluster with no topics yet tells its size by the replication it is configured with; an explicit
    EXCHANGE_REPLICATION_FACTOR wins over both."""
    assert ClusterSize(alive=frozenset({1, 3}), members=frozenset({1, 3}), configured=3).brokers == 3
    assert ClusterSize(alive=frozenset({1}), members=frozenset({1}), configured=1).brokers == 1
    assert not ClusterSize(alive=frozenset({1}), members=frozenset({1})).degraded
    assert ClusterSize(alive=frozenset({1, 2, 3}), configured=3, explicit=1).brokers == 1
    assert ClusterSize(alive=frozenset({1}), explicit=3).degraded


def test_degraded_cluster_refuses_topics_it_cannot_replicate(repo_root: Path) -> None:
    """With a broker down, topics planned for three replicas are refused with the reason and the fix; topics
    the live brokers can hold, and a whole cluster, are not."""
    topics = expand(load_spec(repo_root / "deploy" / "topics.yaml"), INPUTS, brokers=3)
    degraded = ClusterSize(alive=frozenset({1, 3}), members=frozenset({1, 2, 3}))
    reason = degraded.refusal(topics)
    assert reason is not None
    assert reason.startswith("the cluster is degraded: 2 of 3 brokers alive (down: 2), and 13 topic(s) to create "
                             "(ingress.population.address-changed, ingress.tax.income-assessed, router.seen and 10 "
                             "more) need 3 replicas")
    assert "EXCHANGE_REPLICATION_FACTOR" in reason
    assert degraded.refusal([]) is None
    assert degraded.refusal(expand(load_spec(repo_root / "deploy" / "topics.yaml"), INPUTS, brokers=2)) is None
    assert ClusterSize(alive=frozenset({1, 2, 3})).refusal(topics) is None
