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
from exchange.log import get_logger
from exchange.settings import get_settings
from exchange.topics import ClusterSize, TopicSpec

__all__ = ["TopicChange", "apply_topics", "broker_count", "cluster_size"]

_log = get_logger("exchange.kafka")

_TIMEOUT = 30.0


@dataclass(frozen=True)
class TopicChange:
    """One thing ``apply_topics`` did (or would do, in a dry run)."""

    topic: str
    action: str  # "create" | "config" | "partitions" | "note"
    detail: str

    def __str__(self) -> str:
        return f"{self.action:<10} {self.topic}: {self.detail}"


_INTERNAL_RF = ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "default.replication.factor")
"""Broker configs that say how many replicas the cluster is meant to keep: a cluster is configured for its size."""


def broker_count(admin: AdminClient, replication_factor: int | None = None) -> int:
    """How many brokers topics are planned for: the cluster's size as configured, not the brokers alive now
    (see :class:`~exchange.topics.ClusterSize`). ``replication_factor`` (default: EXCHANGE_REPLICATION_FACTOR)
    overrides it."""
    return cluster_size(admin, replication_factor).brokers


def cluster_size(admin: AdminClient, replication_factor: int | None = None) -> ClusterSize:
    """The cluster's brokers alive now, those known from the replicas they hold, and the replication factor its
    brokers are configured with."""
    explicit = replication_factor if replication_factor is not None else get_settings().replication_factor
    try:
        metadata = admin.list_topics(timeout=_TIMEOUT)
    except _CKafkaException as exc:
        raise translate(exc, "reading cluster metadata", TopicError) from exc
    size = _size_of(metadata, explicit)
    if explicit is not None or not size.alive:
        return size
    resource = ConfigResource(ResourceType.BROKER, str(min(size.alive)))
    try:
        entries: dict[str, Any] = admin.describe_configs([resource])[resource].result(timeout=_TIMEOUT)
    except (_CKafkaException, TimeoutError):
        return size  # not allowed to read broker configs (or no answer): the brokers known must do
    configured = [int(entries[key].value) for key in _INTERNAL_RF
                  if key in entries and str(entries[key].value).isdigit()]
    return replace(size, configured=max([1, *configured]))


def _size_of(metadata: Any, explicit: int | None) -> ClusterSize:
    alive = frozenset(int(broker) for broker in metadata.brokers)
    holding = frozenset(int(replica) for topic in metadata.topics.values()
                        for partition in topic.partitions.values() for replica in partition.replicas)
    return ClusterSize(alive, alive | holding, explicit=explicit)


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
        metadata = admin.list_topics(timeout=_TIMEOUT)
    except _CKafkaException as exc:
        raise translate(exc, "listing topics", TopicError) from exc
    existing = metadata.topics
    changes: list[TopicChange] = []
    missing = [s for s in specs if s.name not in existing]
    present = [s for s in specs if s.name in existing]
    _check_replicas(_size_of(metadata, None), missing, dry_run)

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
        # Returned once the controller has them; wait until the brokers serve them with a leader on every
        # partition, so that what runs next (a producer, a pattern subscriber's next metadata refresh) finds them.
        _await_listed(admin, {s.name for s in missing if s.name not in {str(n) for n in raced}}, leaders=True)
        if raced:
            # Created a moment ago (by this or another apply) and not yet in the metadata listed above: not ours to
            # create, but still to check, once the listing shows them.
            names = {str(name) for name in raced}
            _await_listed(admin, names)
            changes = [c for c in changes if not (c.topic in names and c.action == "create")]
            changes.extend(apply_topics(admin, [s for s in missing if s.name in names], dry_run))
    return changes


def _check_replicas(size: ClusterSize, missing: Sequence[TopicSpec], dry_run: bool) -> None:
    """Refuse (in a dry run: warn) to create topics with more replicas than brokers alive; warn of a degraded
    cluster all the same. Kafka would refuse too, once it has fenced the missing brokers; this says why."""
    refusal = size.refusal(missing)
    if refusal is not None and not dry_run:
        raise TopicError(refusal, code="INVALID_REPLICATION_FACTOR")
    if refusal is not None:
        _log.warning("apply would refuse to create topics", reason=refusal)
    elif size.down:
        _log.warning("the cluster is degraded; topics are aligned, none is created with fewer replicas",
                     brokers=size.describe())


def _await_listed(admin: AdminClient, names: set[str], leaders: bool = False) -> None:
    """Wait until the metadata lists every topic in ``names`` (with ``leaders``: with a leader on each of its
    partitions)."""
    deadline = time.monotonic() + _TIMEOUT
    while names:
        try:
            listed = admin.list_topics(timeout=_TIMEOUT).topics
        except _CKafkaException as exc:
            raise translate(exc, "listing topics", TopicError) from exc
        waiting = {name for name in names if name not in listed or (leaders and not _led(listed[name]))}
        if not waiting:
            return
        if time.monotonic() > deadline:
            what = "have no leader on every partition" if leaders else "are not listed"
            raise TopicError(f"{', '.join(sorted(waiting))}: exist, says the broker, but {what} within "
                             f"{_TIMEOUT:.0f}s", retriable=True)
        time.sleep(0.1)  # metadata settling; bounded by the deadline


def _led(topic: Any) -> bool:
    return topic.error is None and bool(topic.partitions) and all(p.leader >= 0 for p in topic.partitions.values())


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
