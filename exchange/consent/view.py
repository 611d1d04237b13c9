"""The router's consent view: consent state fed from ``consent.events``, and the consent barrier.

The view owns a dedicated consumer, assigned by hand (no consumer group) to the consent partitions that match the
router's ingress partitions — co-partitioning makes ingress partition *p* and consent partition *p* hold the same
citizens. Before deciding a batch the router calls :meth:`ConsentView.sync` with the batch's partitions::

    view = ConsentView.connect(context)
    view.sync(partitions)          # the barrier: returns only when every given partition is read to its end
    decisions = decide(index, facts, view)
    view.release(revoked)          # on rebalance: forget partitions this router no longer owns

**The barrier.** ``sync`` takes each partition's end offset (under ``read_committed``: the last stable offset)
when it is called, and returns only after every record below it has been applied or skipped. A consent record
the broker acknowledged before ``sync`` was called lies below that offset, so it is in force afterwards. A
partition the view has not held before is read from offset 0: consents are kept forever.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from exchange.consent._partitions import fetch_positions, partition_ids
from exchange.consent.errors import ConsentSyncError
from exchange.consent.ledger import ConsentLedger, LedgerStats, RecordOutcome, RecordResult
from exchange.consent.signing import ConsentVerifier
from exchange.consent.wire import CONSENT_TOPIC
from exchange.context import Context
from exchange.envelope.attributes import H_ID
from exchange.kafka import ConsumedRecord, Consumer, KafkaError
from exchange.log import get_logger
from exchange.policy import ConsentArtefact, ConsentDecision
from exchange.registry import Registry
from exchange.schemas import Catalogue
from exchange.settings import Settings

__all__ = ["ConsentView"]

_POLL_SLICE = 0.1  # seconds one poll may wait; the loop re-checks positions and the deadline in between
_RETRY_BACKOFF = 0.1  # seconds between end-offset queries that failed for a retriable reason
# Leadership moves (and a topic just created) answer with these until metadata settles; librdkafka does not
# flag them retriable on a watermark query.
# A partition unknown to a client's metadata right after the topic was made is the same story; a topic that
# really lacks the partition still fails closed, at the deadline.
_TRANSIENT = frozenset({"NOT_LEADER_FOR_PARTITION", "NOT_LEADER_OR_FOLLOWER", "LEADER_NOT_AVAILABLE",
                        "REQUEST_TIMED_OUT", "_TRANSPORT", "_TIMED_OUT", "_UNKNOWN_PARTITION",
                        "UNKNOWN_TOPIC_OR_PART"})
_NEW_TOPIC_GRACE = 5.0  # seconds an unknown consent topic is waited for before it counts as missing
_DEFAULT_GROUP = "exchange-consent-view"  # required by the client; the view never joins it or commits


class ConsentView:
    """Consent state of some partitions of the consent topic, kept current by :meth:`sync`.

    Implements the policy core's ``ConsentView`` protocol (:meth:`lookup`). Not thread-safe: the router calls
    ``sync``, ``lookup`` and ``release`` from its one polling thread.
    """

    def __init__(self, catalogue: Catalogue, registry: Registry, *, topic: str = CONSENT_TOPIC,
                 settings: Settings | None = None, bootstrap: str | None = None, group_id: str = _DEFAULT_GROUP,
                 overrides: Mapping[str, Any] | None = None, max_records: int = 1000) -> None:
        """Make the view and its two clients (they connect in the background; nothing is read before `sync`)."""
        self._topic = topic
        self._ledger = ConsentLedger(catalogue, ConsentVerifier(registry))
        # A short fetch long-poll: after an assignment change the first fetch waits behind the previous one.
        reader_overrides = {"fetch.wait.max.ms": 100, **(overrides or {})}
        self._consumer = Consumer(group_id, settings=settings, bootstrap=bootstrap, overrides=reader_overrides)
        # End offsets come from a second client: on the reading client's connection a ListOffsets request waits
        # behind the fetch long-poll (fetch.wait.max.ms) of every partition, which made a sync cost seconds.
        self._watermarks = Consumer(group_id, settings=settings, bootstrap=bootstrap, overrides=overrides)
        self._max_records = max_records
        self._log = get_logger("exchange.consent.view", topic=topic)

    @classmethod
    def connect(cls, context: Context, *, topic: str = CONSENT_TOPIC, bootstrap: str | None = None) -> ConsentView:
        """A view with the context's catalogue, registry and connection settings."""
        return cls(context.catalogue, context.registry, topic=topic, settings=context.settings, bootstrap=bootstrap)

    @property
    def topic(self) -> str:
        """The consent topic this view reads."""
        return self._topic

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions the view holds state for."""
        return self._ledger.partitions

    @property
    def positions(self) -> Mapping[int, int]:
        """``{partition: next offset to read}`` of every held partition."""
        return self._ledger.positions

    @property
    def stats(self) -> LedgerStats:
        """Records applied, unchanged and skipped (by reason) since the view was made."""
        return self._ledger.stats

    def topic_partitions(self, timeout: float = 10.0) -> list[int]:
        """Every partition number of the consent topic (for readers that want all of it, like the manager)."""
        start = time.monotonic()
        while True:
            try:
                return partition_ids(self._watermarks, self._topic, timeout)
            except KafkaError as exc:
                # A topic created a moment ago may not be in the broker's metadata yet: allow it a short grace.
                waited = time.monotonic() - start
                grace = min(timeout, _NEW_TOPIC_GRACE) if exc.code == "UNKNOWN_TOPIC_OR_PART" else timeout
                if not (exc.retriable or exc.code in _TRANSIENT or exc.code == "UNKNOWN_TOPIC_OR_PART") \
                        or waited + _RETRY_BACKOFF > grace:
                    raise ConsentSyncError(str(exc)) from exc
                time.sleep(_RETRY_BACKOFF)

    def sync(self, partitions: Iterable[int], timeout: float = 30.0) -> int:
        """The consent barrier: read each of ``partitions`` up to its end offset as of this call.

        A partition not held yet is held from offset 0. Returns the number of records read. Raises
        :class:`ConsentSyncError` if the end offsets cannot be read or the partitions are not read to them within
        ``timeout`` seconds — the caller must then not decide (fail closed).
        """
        wanted = sorted(set(partitions))
        if not wanted:
            return 0
        deadline = time.monotonic() + timeout
        # Taken once per call, never cached across calls: a cached end would let a newer revocation slip by.
        ends = self._end_offsets(wanted, deadline)
        new = [p for p in wanted if p not in self._ledger.partitions]
        if new:
            for partition in new:
                self._ledger.hold(partition)
            self._assign()
            self._learn_leaders(timeout)
        behind = {p: ends[(self._topic, p)] for p in wanted if self._ledger.position(p) < ends[(self._topic, p)]}
        read = 0
        while behind:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsentSyncError(
                    f"consent barrier not reached within {timeout:g}s on {self._topic}: "
                    + ", ".join(f"[{p}] at {self._ledger.position(p)} of {end}" for p, end in sorted(behind.items())),
                    behind={p: (self._ledger.position(p), end) for p, end in behind.items()},
                )
            expected = sum(end - self._ledger.position(p) for p, end in behind.items())
            # Asking for exactly what is missing lets the poll return as soon as it has arrived.
            try:
                batch = self._consumer.poll_batch(min(expected, self._max_records), timeout=min(remaining, _POLL_SLICE))
            except KafkaError as exc:
                raise ConsentSyncError(f"reading {self._topic}: {exc}") from exc
            for record in batch:
                read += self._apply(record)
            self._catch_up_positions()
            behind = {p: end for p, end in behind.items() if self._ledger.position(p) < end}
        return read

    def release(self, partitions: Iterable[int]) -> None:
        """Forget ``partitions`` (the router no longer owns them); a later ``sync`` reads them from 0 again."""
        gone = set(partitions) & self._ledger.partitions
        if gone:
            self._ledger.release(gone)
            self._assign()

    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        """Whether ``subject`` consents to ``recipient`` receiving ``record_type`` for ``purpose`` at ``at``."""
        return self._ledger.lookup(subject, recipient, purpose, record_type, at)

    def get(self, consent_id: str) -> ConsentArtefact | None:
        """The newest version of ``consent_id`` read so far, if it is in a held partition."""
        return self._ledger.get(consent_id)

    def artefacts(self, subject: str | None = None) -> Iterator[ConsentArtefact]:
        """The newest version of every consent read so far (of ``subject`` only, if given)."""
        return self._ledger.artefacts(subject)

    def close(self) -> None:
        """Close the clients (no offsets to commit: the view always starts from the beginning)."""
        try:
            self._consumer.close()
        finally:
            self._watermarks.close()

    def __enter__(self) -> ConsentView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _end_offsets(self, wanted: list[int], deadline: float) -> dict[tuple[str, int], int]:
        while True:
            remaining = deadline - time.monotonic()
            try:
                return self._watermarks.end_offsets([(self._topic, p) for p in wanted], timeout=max(remaining, 0.1))
            except KafkaError as exc:
                # A leader moving (or a topic just created) is retriable; anything else, or no time left, is not.
                if not (exc.retriable or exc.code in _TRANSIENT) or remaining <= _RETRY_BACKOFF:
                    raise ConsentSyncError(f"cannot read the end offsets of {self._topic} {wanted} (is the topic "
                                           f"co-partitioned with ingress?): {exc}") from exc
                time.sleep(_RETRY_BACKOFF)

    def _learn_leaders(self, timeout: float) -> None:
        # A fresh client learns the leaders of newly assigned partitions on its next periodic metadata refresh,
        # up to a second later; asking now lets the first fetch go out at once.
        # Only a shortcut: if it fails, the periodic refresh still finds the leaders.
        try:
            partition_ids(self._consumer, self._topic, min(timeout, 5.0))
        except KafkaError as exc:
            self._log.debug("metadata of the consent topic not read ahead", error=str(exc))

    def _assign(self) -> None:
        held = sorted(self._ledger.partitions)
        self._consumer.assign([(self._topic, p, self._ledger.position(p)) for p in held])

    def _apply(self, record: ConsumedRecord) -> int:
        if record.topic != self._topic or record.partition not in self._ledger.partitions:
            return 0
        result = self._ledger.apply_record(record.partition, record.offset, record.key, record.value)
        if result.outcome is RecordOutcome.SKIPPED:
            self._log_skip(record, result)
        return 1

    def _catch_up_positions(self) -> None:
        # The client moves past records it never hands out (transaction markers); follow it, or a partition
        # ending in a marker would never look read to the end.
        try:
            positions = fetch_positions(self._consumer)
        except KafkaError as exc:
            raise ConsentSyncError(f"reading positions on {self._topic}: {exc}") from exc
        for (topic, partition), position in positions.items():
            if topic == self._topic:
                self._ledger.advance(partition, position)

    def _log_skip(self, record: ConsumedRecord, result: RecordResult) -> None:
        ce_id = next((v.decode("utf-8", "replace") for k, v in record.headers if k == H_ID), None)
        self._log.warning("consent record skipped", ce_id=ce_id, partition=record.partition, offset=record.offset,
                          reason=str(result.reason), detail=result.detail)
