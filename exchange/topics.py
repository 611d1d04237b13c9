"""The declarative topic spec (``deploy/topics.yaml``) and its expansion into concrete topics.

Pure: reading the spec and the catalogue folders is done by :func:`load_spec` and :func:`discover_inputs`
(YAML through :mod:`exchange.safeparse`, so a hostile file is a :class:`TopicSpecError`, never a crash or a hang);
applying the result to a cluster is :func:`exchange.kafka.admin.apply_topics`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exchange import safeparse
from exchange.errors import ConfigError
from exchange.safeparse import SafeParseError, YamlDocument

__all__ = [
    "ClusterSize",
    "TopicInputs",
    "TopicSpec",
    "TopicSpecError",
    "TopicsFile",
    "discover_inputs",
    "expand",
    "load_spec",
    "retention_ms",
]

_PLACEHOLDERS = frozenset({"record_type", "recipient", "opendata_type"})
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]*")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def retention_ms(text: str) -> int:
    """``"7d"`` → 604800000; ``"forever"`` → -1 (Kafka's "keep everything")."""
    if text == "forever":
        return -1
    found = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    if not found:
        raise ValueError(f"retention {text!r} is not a duration like 30m, 12h, 7d or 'forever'")
    return int(found.group(1)) * _UNITS[found.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Defaults(_Strict):
    replication_factor: int = Field(default=3, ge=1)
    min_insync_replicas: int = Field(default=2, ge=1)


class _CoPartition(_Strict):
    partitions: int = Field(ge=1)


class _Family(_Strict):
    name: str
    for_each: Literal["record_type", "recipient", "opendata_type"] | None = None
    partitions: int | None = Field(default=None, ge=1)
    co_partition: str | None = None
    retention: str = "7d"
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    config: dict[str, str] = Field(default_factory=dict)

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        retention_ms(value)
        return value

    @model_validator(mode="after")
    def _name_template(self) -> _Family:
        # Checked here, so that expanding the spec can never fail on str.format.
        try:
            parts = list(Formatter().parse(self.name))
        except ValueError as exc:
            raise ValueError(f"name {self.name!r}: {exc}") from None
        fields = [(name, spec, conversion) for _, name, spec, conversion in parts if name is not None]
        for name, spec, conversion in fields:
            if name not in _PLACEHOLDERS or spec or conversion:
                raise ValueError(f"name {self.name!r}: a placeholder is one of "
                                 f"{', '.join('{' + p + '}' for p in sorted(_PLACEHOLDERS))}")
        if (self.for_each is None) != (not fields):
            raise ValueError(f"name {self.name!r}: a name has a placeholder exactly when the family has for_each")
        literal = "".join(text for text, _, _, _ in parts)
        if not _TOPIC_CHARS.fullmatch(literal):
            raise ValueError(f"name {self.name!r}: a topic name has only letters, digits, '.', '_' and '-'")
        return self


class TopicsFile(_Strict):
    """The parsed ``deploy/topics.yaml``."""

    defaults: _Defaults = _Defaults()
    co_partitioned: dict[str, _CoPartition] = Field(default_factory=dict)
    topics: list[_Family]


@dataclass(frozen=True)
class TopicSpec:
    """One concrete topic as it should exist on the cluster."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)
    co_partition: str | None = None


@dataclass(frozen=True)
class TopicInputs:
    """What the topic families expand over."""

    record_types: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    opendata_types: tuple[str, ...] = ()


class TopicSpecError(ConfigError):
    """The topic spec, or a file it expands over, cannot be used: ``path`` and ``line`` (None if unknown) say
    where the first problem is; the message lists every problem as ``file:line: reason``."""

    def __init__(self, path: str, line: int | None, reason: str, more: Sequence[str] = ()) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = path if line is None else f"{path}:{line}"
        super().__init__("\n".join((f"{where}: {reason}", *more)))


def _read(path: Path) -> YamlDocument:
    try:
        document = safeparse.read_yaml(path)
    except SafeParseError as exc:
        raise TopicSpecError(str(path), exc.line, exc.reason) from None
    if document.root is None:
        raise TopicSpecError(str(path), 1, "the file is empty")
    if document.duplicates:
        line, key = document.duplicates[0]
        raise TopicSpecError(str(path), line, f"duplicate key {key!r}")
    return document


def load_spec(path: Path) -> TopicsFile:
    """The topic spec at ``path``, read within the limits of :mod:`exchange.safeparse`; problems are
    :class:`TopicSpecError` with the file and line."""
    document = _read(path)
    try:
        return TopicsFile.model_validate(document.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            line = document.line_of(error["loc"])
            problems.append((line, f"invalid topic spec: {where + ': ' if where else ''}{error['msg']}"))
        (line, reason), *rest = problems
        more = [f"{path}:{other_line}: {other}" for other_line, other in rest]
        raise TopicSpecError(str(path), line, reason, more) from None


@dataclass(frozen=True)
class ClusterSize:
    """How many brokers a cluster has as configured, and which are alive now.

    Topics are planned for the cluster's size, never for the brokers that happen to be alive: a topic created
    with fewer replicas while a broker is down stays weaker after it returns. The size is, in this order:

    - ``explicit``: ``EXCHANGE_REPLICATION_FACTOR``, when set, is the size planned for;
    - otherwise the largest of the brokers known (alive now, or holding a replica of some partition: a broker
      that is down still does) and ``configured``, the replication factor the brokers are configured to give
      their own and new topics (``offsets.topic.replication.factor``, ``default.replication.factor``, ...), which
      a cluster with no topics yet already tells.
    """

    alive: frozenset[int]
    members: frozenset[int] = frozenset()
    configured: int = 1
    explicit: int | None = None

    @property
    def brokers(self) -> int:
        """The number of brokers the topics are planned for."""
        if self.explicit is not None:
            return max(1, self.explicit)
        return max(1, len(self.alive | self.members), self.configured)

    @property
    def down(self) -> frozenset[int]:
        """The brokers known to the cluster that are not alive now."""
        return self.members - self.alive

    @property
    def degraded(self) -> bool:
        return len(self.alive) < self.brokers

    def describe(self) -> str:
        """``2 of 3 brokers alive (down: 2)``."""
        down = f" (down: {', '.join(map(str, sorted(self.down)))})" if self.down else ""
        return f"{len(self.alive)} of {self.brokers} brokers alive{down}"

    def refusal(self, specs: Sequence[TopicSpec]) -> str | None:
        """Why ``specs`` (topics to create) cannot be created now with the replicas they ask for, or None."""
        short = [s for s in specs if s.replication_factor > len(self.alive)]
        if not short:
            return None
        want = max(s.replication_factor for s in short)
        names = ", ".join(s.name for s in short[:3]) + (f" and {len(short) - 3} more" if len(short) > 3 else "")
        return (f"the cluster is degraded: {self.describe()}, and {len(short)} topic(s) to create ({names}) need "
                f"{want} replicas; they are not created with fewer. Bring the brokers back and apply again "
                "(for the local cluster: `exchange broker up --nodes 3`), or set EXCHANGE_REPLICATION_FACTOR to "
                "plan for a smaller cluster.")


def expand(spec: TopicsFile, inputs: TopicInputs, brokers: int) -> list[TopicSpec]:
    """Concrete topics for a cluster of ``brokers`` brokers, in spec order."""
    rf = max(1, min(spec.defaults.replication_factor, brokers))
    min_isr = max(1, min(spec.defaults.min_insync_replicas, rf))
    values: dict[str | None, Iterable[str]] = {
        None: [""],
        "record_type": inputs.record_types,
        "recipient": inputs.recipients,
        "opendata_type": inputs.opendata_types,
    }
    topics: list[TopicSpec] = []
    for family in spec.topics:
        if family.co_partition is not None:
            group = spec.co_partitioned.get(family.co_partition)
            if group is None:
                raise ConfigError(f"topic family {family.name!r} names unknown co-partition group "
                                  f"{family.co_partition!r}")
            partitions = group.partitions
        elif family.partitions is not None:
            partitions = family.partitions
        else:
            raise ConfigError(f"topic family {family.name!r} needs partitions or a co_partition group")
        config = {
            "retention.ms": str(retention_ms(family.retention)),
            "cleanup.policy": family.cleanup_policy,
            "min.insync.replicas": str(min_isr),
            **family.config,
        }
        for value in values[family.for_each]:
            name = family.name.format(record_type=value, recipient=value, opendata_type=value)
            topics.append(TopicSpec(name, partitions, rf, config, family.co_partition))
    return topics


def discover_inputs(schemas_dir: Path, registry_file: Path, policies_dir: Path) -> TopicInputs:
    """Record types from ``schemas/<domain>/<event>/``, recipients from the registry, open-data types from the
    agreements. Missing files contribute nothing; the exchange's own schemas (domain ``exchange``) have no
    ingress topic."""
    record_types = sorted(
        f"{domain.name}.{event.name}"
        for domain in (schemas_dir.iterdir() if schemas_dir.is_dir() else [])
        if domain.is_dir() and domain.name != "exchange"
        for event in domain.iterdir()
        if event.is_dir() and any(event.glob("*.avsc"))
    )
    recipients: list[str] = []
    if registry_file.exists():
        registry = _read(registry_file)
        agencies = registry.data.get("agencies", []) if isinstance(registry.data, dict) else None
        if not isinstance(agencies, list):
            raise TopicSpecError(str(registry_file), registry.line_of(("agencies",)),
                                 "the registry needs a list 'agencies'")
        recipients = sorted(str(a["id"]) for a in agencies if isinstance(a, dict) and "id" in a)
    opendata: set[str] = set()
    for path in sorted((policies_dir / "agreements").glob("*.yaml")) if policies_dir.is_dir() else []:
        for agreement in _agreements_in(_read(path).data):
            if agreement.get("delivery") == "opendata" and "record_type" in agreement:
                opendata.add(str(agreement["record_type"]))
    return TopicInputs(tuple(record_types), tuple(recipients), tuple(sorted(opendata)))


def _agreements_in(doc: object) -> list[dict[str, object]]:
    if isinstance(doc, dict):
        items = doc.get("agreements", [doc])
        return [a for a in items if isinstance(a, dict)] if isinstance(items, list) else []
    if isinstance(doc, list):
        return [a for a in doc if isinstance(a, dict)]
    return []
