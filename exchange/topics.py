"""The declarative topic spec (``deploy/topics.yaml``) and its expansion into concrete topics.

Pure: reading the spec and the catalogue folders is done by :func:`load_spec` and :func:`discover_inputs`;
applying the result to a cluster is :func:`exchange.kafka.admin.apply_topics`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exchange.errors import ConfigError

__all__ = ["TopicInputs", "TopicSpec", "TopicsFile", "discover_inputs", "expand", "load_spec", "retention_ms"]

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


def load_spec(path: Path) -> TopicsFile:
    try:
        raw = yaml.safe_load(path.read_text())
        return TopicsFile.model_validate(raw)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the topic spec: {exc}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid topic spec: {exc}") from exc


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
        registry = yaml.safe_load(registry_file.read_text()) or {}
        recipients = sorted(str(a["id"]) for a in registry.get("agencies", []) if "id" in a)
    opendata: set[str] = set()
    for path in sorted((policies_dir / "agreements").glob("*.yaml")) if policies_dir.is_dir() else []:
        for doc in yaml.safe_load_all(path.read_text()):
            for agreement in _agreements_in(doc):
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
