"""Exact replay protection: each event id is routed at most once, for exactly as long as it could be accepted.

Time comes from a clock no publisher controls: ingress topics stamp each record with the broker's time of
append (``message.timestamp.type=LogAppendTime``). The verifier accepts an event only if ``ce_time`` is within
``max_skew`` of that stamp and the time in ``ce_id`` (a UUIDv7) within a second of ``ce_time``; so an accepted
event's id time ``U`` lies within the *horizon* ``H = max_skew + 1 s`` of its append time ``A``.

Per ingress partition (its *scope*) the guard keeps the *watermark* ``W``, the latest append time of an event it
accepted, and the id of every accepted event with ``U >= W - H``. A record is admitted only if

1. ``U >= max(W, A) - H`` (else it is stale: ``TIME_SKEW`` when ``A`` alone rules it out, ``STALE`` when the
   watermark does), and
2. its id is not remembered (else ``REPLAYED``).

An id is forgotten once ``U < W - H``; as ``W`` never decreases, rule 1 refuses any later copy of it. So the set is
exact — no count bound, no heuristic — and sized by time: about ``rate * H`` ids. A genuine event is refused as
stale only if the broker's clock ran backwards by more than the skew between two appends on one partition.

Durability: the ids a batch accepts are written, per partition, to ``router.seen`` (same partition number,
keyed by the ingress topic, stamped with ``W``) in the batch's own transaction, and ``W`` travels as the
committed offset's metadata. A router assigned a partition reads ``router.seen`` back from the first record
stamped ``W - 2H`` (an id with ``U >= W - H`` was accepted at ``A >= W - 2H``, in a batch whose stamp is at least
``A``), so its state is the one the previous owner committed, whatever restarts and rebalances came between.

Memory: ids of the last few seconds are kept in sets; older ones are packed into sorted arrays of two 64-bit
words per id (16 bytes), looked up by bisection. See ``exchange bench replay`` and docs/decisions/007.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from exchange.envelope.errors import ReplayedEventError, StaleEventError, TimeSkewError

__all__ = ["SEEN_TOPIC", "ReplayGuard", "decode_seen", "encode_seen", "id_bytes"]

SEEN_TOPIC = "router.seen"
Scope = tuple[str, int]

_VERSION = b"\x01"
_HEAD = struct.Struct(">cq")  # version, watermark (ms)
_ID = 16
_HOT_SECONDS = 2
_LOW = (1 << 64) - 1


def id_bytes(event_id: str) -> bytes:
    """The 16 bytes of a canonical UUID string."""
    return bytes.fromhex(event_id.replace("-", ""))


def _id_int(event_id: str) -> int:
    return int(event_id.replace("-", ""), 16)


def encode_seen(watermark_ms: int, ids: Iterable[bytes]) -> bytes:
    """A ``router.seen`` value: the scope's watermark after the batch and the 16-byte ids it accepted."""
    return _HEAD.pack(_VERSION, watermark_ms) + b"".join(ids)


def decode_seen(value: bytes) -> tuple[int, list[bytes]]:
    """``(watermark, ids)`` of a ``router.seen`` value; ValueError if it is not one."""
    if len(value) < _HEAD.size or (len(value) - _HEAD.size) % _ID or value[:1] != _VERSION:
        raise ValueError("not a router.seen record")
    _, watermark = _HEAD.unpack_from(value)
    body = memoryview(value)[_HEAD.size:]
    return watermark, [bytes(body[i:i + _ID]) for i in range(0, len(body), _ID)]


class _Bucket:
    """The ids of one second of id time: recent ones in a set, the rest packed and sorted by (high, low)."""

    __slots__ = ("high", "hot", "low")

    def __init__(self) -> None:
        self.hot: set[str] = set()
        self.high = array("Q")
        self.low = array("Q")

    def __contains__(self, event_id: str) -> bool:
        if event_id in self.hot:
            return True
        if not self.high:
            return False
        value = _id_int(event_id)
        high, low = value >> 64, value & _LOW
        i = bisect_left(self.high, high)
        while i < len(self.high) and self.high[i] == high:
            if self.low[i] == low:
                return True
            i += 1
        return False

    def pack(self, more: Iterable[int] = ()) -> None:
        """Move the set (and ``more`` ids as integers) into the sorted arrays."""
        values = [(h << 64) | lo for h, lo in zip(self.high, self.low, strict=True)]
        values.extend(_id_int(i) for i in self.hot)
        values.extend(more)
        values.sort()
        self.high = array("Q", [v >> 64 for v in values])
        self.low = array("Q", [v & _LOW for v in values])
        self.hot = set()

    def __len__(self) -> int:
        return len(self.hot) + len(self.high)


class _Scope:
    __slots__ = ("buckets", "floor", "offset", "unpacked", "watermark")

    def __init__(self, watermark: int | None) -> None:
        self.watermark = watermark
        self.buckets: dict[int, _Bucket] = {}
        self.unpacked: set[int] = set()
        self.floor: int | None = None
        self.offset: int | None = None
        """The next offset this state has seen committed (so a re-assignment can keep it)."""

    def add(self, second: int, event_id: str) -> None:
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = _Bucket()
            if self.floor is None or second < self.floor:
                self.floor = second
        bucket.hot.add(event_id)
        self.unpacked.add(second)

    def settle(self, horizon: int) -> None:
        """Forget the seconds no id of which can be accepted any more; pack the ones no longer recent."""
        if self.watermark is None:
            return
        cutoff = (self.watermark - horizon) // 1000  # every id of a second below this is refused as stale
        if self.floor is not None and self.floor < cutoff:
            if cutoff - self.floor > len(self.buckets):
                doomed: Iterable[int] = [s for s in self.buckets if s < cutoff]
            else:
                doomed = range(self.floor, cutoff)
            for second in doomed:
                self.buckets.pop(second, None)
                self.unpacked.discard(second)
            self.floor = min(self.buckets) if self.buckets else None
        recent = self.watermark // 1000 - _HOT_SECONDS
        for second in [s for s in self.unpacked if s < recent]:
            self.buckets[second].pack()
            self.unpacked.discard(second)

    def __len__(self) -> int:
        return sum(map(len, self.buckets.values()))


@dataclass(slots=True)
class _Pending:
    watermark: int
    ids: dict[str, int]  # id → its second, in admission order


class ReplayGuard:
    """The ids each partition has routed within the horizon, with the batch in progress held apart."""

    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self._scopes: dict[Scope, _Scope] = {}
        self._pending: dict[Scope, _Pending] = {}

    # -- one batch ------------------------------------------------------------------------------------------

    def admit(self, scope: Scope, event_id: str, id_ms: int, append_ms: int) -> None:
        """Hold ``event_id`` for the batch, or raise why it may not be routed (TimeSkewError, StaleEventError,
        ReplayedEventError)."""
        state = self._scopes.get(scope)
        pending = self._pending.get(scope)
        watermark = state.watermark if state is not None else None
        if pending is not None and (watermark is None or pending.watermark > watermark):
            watermark = pending.watermark
        if id_ms < append_ms - self.horizon_ms:
            raise TimeSkewError(f"event {event_id} is {append_ms - id_ms} ms older than its append time; "
                                f"at most {self.horizon_ms} ms is accepted")
        if watermark is not None and id_ms < watermark - self.horizon_ms:
            raise StaleEventError(f"event {event_id} is {watermark - id_ms} ms older than the latest event "
                                  f"accepted on {scope[0]}[{scope[1]}]; at most {self.horizon_ms} ms is accepted")
        second = id_ms // 1000
        if pending is not None and event_id in pending.ids:
            raise ReplayedEventError(f"event {event_id} appears twice in one batch")
        if state is not None:
            bucket = state.buckets.get(second)
            if bucket is not None and event_id in bucket:
                raise ReplayedEventError(f"event {event_id} was routed before")
        if pending is None:
            self._pending[scope] = _Pending(append_ms, {event_id: second})
        else:
            pending.ids[event_id] = second
            pending.watermark = max(pending.watermark, append_ms)

    def pending(self) -> Iterator[tuple[Scope, int, bytes]]:
        """For each scope the batch admitted ids on: ``(scope, watermark after the batch, router.seen value)``."""
        for scope, pending in self._pending.items():
            watermark = self._merged_watermark(scope, pending)
            yield scope, watermark, encode_seen(watermark, map(id_bytes, pending.ids))

    def watermarks(self, scopes: Iterable[Scope]) -> dict[Scope, int]:
        """The watermark each of ``scopes`` will have once the batch commits (for the committed offsets'
        metadata); a scope without one is left out."""
        found: dict[Scope, int] = {}
        for scope in scopes:
            pending = self._pending.get(scope)
            state = self._scopes.get(scope)
            if pending is not None:
                found[scope] = self._merged_watermark(scope, pending)
            elif state is not None and state.watermark is not None:
                found[scope] = state.watermark
        return found

    def commit_batch(self, offsets: dict[Scope, int] | None = None) -> None:
        """The batch's transaction committed (with ``offsets``, the next offset of each scope it read)."""
        for scope, pending in self._pending.items():
            state = self._scopes.get(scope)
            if state is None:
                state = self._scopes[scope] = _Scope(None)
            state.watermark = self._merged_watermark(scope, pending)
            for event_id, second in pending.ids.items():
                state.add(second, event_id)
            state.settle(self.horizon_ms)
        for scope, offset in (offsets or {}).items():
            state = self._scopes.get(scope)
            if state is not None:
                state.offset = offset
        self._pending.clear()

    def abort_batch(self) -> None:
        self._pending.clear()

    def release(self, scope: Scope, event_id: str) -> None:
        """Let go of an id admitted in this batch whose record was not routed after all."""
        pending = self._pending.get(scope)
        if pending is not None:
            pending.ids.pop(event_id, None)
            if not pending.ids:
                del self._pending[scope]

    def _merged_watermark(self, scope: Scope, pending: _Pending) -> int:
        state = self._scopes.get(scope)
        if state is None or state.watermark is None:
            return pending.watermark
        return max(state.watermark, pending.watermark)

    # -- ownership ------------------------------------------------------------------------------------------

    def restore(self, scope: Scope, watermark: int | None, records: Iterable[bytes], offset: int) -> int:
        """Replace ``scope``'s state with the committed one: its watermark (the committed offset's metadata) and
        the ``router.seen`` values recorded for it since ``watermark - 2H``; returns how many ids it holds."""
        state = self._scopes[scope] = _Scope(watermark)
        state.offset = offset
        by_second: dict[int, list[int]] = {}
        for value in records:
            try:
                recorded, ids = decode_seen(value)
            except ValueError:
                continue  # not written by a router (only routers may write router.seen); nothing to remember
            if state.watermark is None or recorded > state.watermark:
                state.watermark = recorded
            for raw in ids:
                number = int.from_bytes(raw, "big")
                by_second.setdefault((number >> 80) // 1000, []).append(number)
        cutoff = None if state.watermark is None else (state.watermark - self.horizon_ms) // 1000
        for second, numbers in by_second.items():
            if cutoff is None or second >= cutoff:
                bucket = state.buckets[second] = _Bucket()
                bucket.pack(numbers)
        state.floor = min(state.buckets) if state.buckets else None
        return len(state)

    def current(self, scope: Scope, committed_offset: int) -> bool:
        """True if this guard's state of ``scope`` is the one committed at ``committed_offset`` (nobody else
        routed the partition since), so a re-assignment need not read it back."""
        state = self._scopes.get(scope)
        return state is not None and state.offset == committed_offset

    def scopes(self) -> list[Scope]:
        return list(self._scopes)

    def drop(self, scopes: Iterable[Scope]) -> None:
        for scope in scopes:
            self._scopes.pop(scope, None)

    def watermark(self, scope: Scope) -> int | None:
        state = self._scopes.get(scope)
        return None if state is None else state.watermark

    def size(self, scope: Scope | None = None) -> int:
        """How many ids are remembered (for one scope, or all)."""
        if scope is not None:
            state = self._scopes.get(scope)
            return 0 if state is None else len(state)
        return sum(map(len, self._scopes.values()))
