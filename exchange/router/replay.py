"""The replay window: event ids already routed, per ingress partition.

A replayed event carries the same key (its key is signed), so it lands in the same partition as the original:
a window per partition is enough. Ids become "seen" only when the transaction that routed them commits, so a
batch that is aborted and consumed again is not mistaken for a replay. On assignment the router seeds a
partition's window from the records just before its committed offset, so the window survives restarts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["ReplayWindow"]

Partition = tuple[str, int]


class ReplayWindow:
    """Bounded sets of event ids per partition, plus the ids of the batch in progress."""

    def __init__(self, per_partition: int = 100_000) -> None:
        self.per_partition = per_partition
        self._seen: dict[Partition, OrderedDict[str, None]] = {}
        self._batch: set[tuple[Partition, str]] = set()

    def check_and_hold(self, partition: Partition, event_id: str) -> bool:
        """True if ``event_id`` was routed before (or earlier in this batch); otherwise hold it for the batch."""
        seen = self._seen.get(partition)
        if (seen is not None and event_id in seen) or (partition, event_id) in self._batch:
            return True
        self._batch.add((partition, event_id))
        return False

    def commit_batch(self) -> None:
        """The batch's transaction committed: its ids are routed."""
        for partition, event_id in self._batch:
            self.add(partition, [event_id])
        self._batch.clear()

    def abort_batch(self) -> None:
        self._batch.clear()

    def add(self, partition: Partition, event_ids: Iterable[str]) -> None:
        seen = self._seen.setdefault(partition, OrderedDict())
        for event_id in event_ids:
            seen[event_id] = None
            seen.move_to_end(event_id)
        while len(seen) > self.per_partition:
            seen.popitem(last=False)

    def drop(self, partitions: Iterable[Partition]) -> None:
        for partition in partitions:
            self._seen.pop(partition, None)

    def size(self, partition: Partition) -> int:
        return len(self._seen.get(partition, ()))
