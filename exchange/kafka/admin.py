"""Apply topic specs to a cluster idempotently: create what is missing, align configs, report every change."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import KafkaException as _CKafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from exchange.kafka.errors import TopicError, translate
from exchange.topics import TopicSpec

__all__ = ["TopicChange", "apply_topics", "broker_count"]

_TIMEOUT = 30.0


@dataclass(frozen=True)
class TopicChange:
    """One thing ``apply_topics`` did (or would do, in a dry run)."""

    topic: str
    action: str  # "create" | "config" | "partitions" | "note"
    detail: str

    def __str__(self) -> str:
        return f"{self.action:<10} {self.topic}: {self.detail}"


def broker_count(admin: AdminClient) -> int:
    try:
        return len(admin.list_topics(timeout=_TIMEOUT).brokers)
    except _CKafkaException as exc:
        raise translate(exc, "reading cluster metadata", TopicError) from exc


def apply_topics(admin: AdminClient, specs: Sequence[TopicSpec], dry_run: bool = False,
                 prefix: str = "") -> list[TopicChange]:
    """Make the cluster match ``specs`` (names under ``prefix``). Returns the changes; an empty list means nothing
    needed changing.

    Partitions are never reduced (Kafka cannot) and never added to a co-partitioned topic (that would move
    citizens between partitions and break the ingress/consent pairing): both are reported as TopicError.
    """
    if prefix:
        specs = [replace(s, name=prefix + s.name) for s in specs]
    try:
        existing = admin.list_topics(timeout=_TIMEOUT).topics
    except _CKafkaException as exc:
        raise translate(exc, "listing topics", TopicError) from exc
    changes: list[TopicChange] = []
    missing = [s for s in specs if s.name not in existing]
    present = [s for s in specs if s.name in existing]

    for spec in present:
        have = len(existing[spec.name].partitions)
        if have > spec.partitions:
            raise TopicError(f"{spec.name} has {have} partitions and the spec asks for {spec.partitions}; "
                             "Kafka cannot remove partitions")
        if have < spec.partitions:
            if spec.co_partition is not None:
                raise TopicError(f"{spec.name} is co-partitioned ({spec.co_partition}) with {have} partitions; "
                                 f"growing it to {spec.partitions} would re-key citizens. Migrate the group instead.")
            changes.append(TopicChange(spec.name, "partitions", f"{have} -> {spec.partitions}"))
            if not dry_run:
                _wait(admin.create_partitions([NewPartitions(spec.name, spec.partitions)]), "adding partitions")

    changes.extend(_align_configs(admin, present, dry_run))

    for spec in missing:
        changes.append(TopicChange(spec.name, "create", f"partitions={spec.partitions} "
                                   f"rf={spec.replication_factor} " +
                                   " ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))))
    if missing and not dry_run:
        new = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor,
                        config=dict(s.config)) for s in missing]
        raced = _wait(admin.create_topics(new, operation_timeout=_TIMEOUT), "creating topics",
                      tolerate="TOPIC_ALREADY_EXISTS")
        if raced:
            # Created a moment ago (by this or another apply) and not yet in the metadata listed above: not ours to
            # create, but still to check, once the listing shows them.
            names = {str(name) for name in raced}
            _await_listed(admin, names)
            changes = [c for c in changes if not (c.topic in names and c.action == "create")]
            changes.extend(apply_topics(admin, [s for s in missing if s.name in names], dry_run))
    return changes


def _await_listed(admin: AdminClient, names: set[str]) -> None:
    deadline = time.monotonic() + _TIMEOUT
    while True:
        try:
            listed = admin.list_topics(timeout=_TIMEOUT).topics
        except _CKafkaException as exc:
            raise translate(exc, "listing topics", TopicError) from exc
        if names <= set(listed):
            return
        if time.monotonic() > deadline:
            raise TopicError(f"{', '.join(sorted(names))}: exist, says the broker, but are not listed within "
                             f"{_TIMEOUT:.0f}s", retriable=True)
        time.sleep(0.1)  # metadata settling; bounded by the deadline


def _align_configs(admin: AdminClient, specs: Sequence[TopicSpec], dry_run: bool) -> list[TopicChange]:
    if not specs:
        return []
    resources = [ConfigResource(ResourceType.TOPIC, s.name) for s in specs]
    described = _wait(admin.describe_configs(resources), "reading topic configs")
    changes: list[TopicChange] = []
    updates: list[ConfigResource] = []
    for spec, resource in zip(specs, resources, strict=True):
        current: dict[str, Any] = described[resource]
        entries = []
        for key, want in sorted(spec.config.items()):
            entry = current.get(key)
            have = entry.value if entry is not None else None
            if have != want:
                changes.append(TopicChange(spec.name, "config", f"{key}: {have} -> {want}"))
                entries.append(ConfigEntry(key, want, incremental_operation=AlterConfigOpType.SET))
        if entries:
            updates.append(ConfigResource(ResourceType.TOPIC, spec.name, incremental_configs=entries))
    if updates and not dry_run:
        _wait(admin.incremental_alter_configs(updates), "changing topic configs")
    return changes


def _wait(futures: dict[Any, Future[Any]], what: str, tolerate: str | None = None) -> dict[Any, Any]:
    """Each future's result; TopicError listing every failure. With ``tolerate`` (an error code), failures with
    that code are not errors, and what is returned is the keys that had it (``{key: None}``)."""
    results: dict[Any, Any] = {}
    failures: list[str] = []
    tolerated: dict[Any, Any] = {}
    for key, future in futures.items():
        try:
            results[key] = future.result(timeout=_TIMEOUT)
        except _CKafkaException as exc:
            failure = translate(exc, f"{what} ({key})", TopicError)
            if tolerate is not None and failure.code == tolerate:
                tolerated[key] = None
                continue
            failures.append(str(failure))
        except TimeoutError as exc:
            raise TopicError(f"{what} ({key}): no answer within {_TIMEOUT:.0f}s", retriable=True) from exc
    if failures:
        raise TopicError("; ".join(failures))
    return tolerated if tolerate is not None else results
