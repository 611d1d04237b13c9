"""Per-token rate limiting: a token bucket for each key (a bearer token's id), in bounded memory.

Each key has a bucket holding up to ``burst`` tokens that refills at ``rate`` tokens per second; a request takes
``cost`` tokens (default 1) if the bucket has them, and is otherwise told how long to wait (``retry_after``).

Memory is bounded by ``max_buckets``. Buckets live in least-recently-used order; since every bucket refills at
the same rate, one untouched for ``burst / rate`` seconds is full, and a full bucket is the same as none, so such
buckets are dropped from the old end as new keys arrive (exactly, with no effect on any decision). When the cap is
reached with no full bucket to drop, the least recently used bucket is evicted anyway: a flood of distinct keys
costs a bounded amount of memory, and the worst it can do to an evicted key is give it a fresh burst.
:attr:`TokenBucketLimiter.evicted` counts those early evictions, for a metric.

The clock is injectable (any monotonic ``() -> float`` in seconds) so tests need no sleeps; a clock that steps
back is treated as standing still.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateDecision", "TokenBucketLimiter"]


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request may go ahead; if not, ``retry_after`` seconds until it could (0.0 when allowed).

    ``remaining`` is the whole tokens left in the bucket after this request.
    """

    allowed: bool
    retry_after: float
    remaining: int

    @property
    def retry_after_header(self) -> str:
        """``retry_after`` rounded up to whole seconds, as the HTTP ``Retry-After`` header wants (at least 1)."""
        return str(max(1, math.ceil(self.retry_after)))


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class TokenBucketLimiter:
    """Token buckets keyed by a string (a token id), at most ``max_buckets`` of them. Thread-safe."""

    __slots__ = ("_buckets", "_burst", "_clock", "_full_after", "_lock", "_max_buckets", "_rate", "evicted")

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError("rate must be a positive number of tokens per second")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if max_buckets < 1:
            raise ValueError("max_buckets must be at least 1")
        self._rate = float(rate)
        self._burst = float(burst)
        self._full_after = self._burst / self._rate  # an untouched bucket is full after this many seconds
        self._max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0
        """Buckets dropped before they were full because the cap was reached (each such key got a fresh burst)."""

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return int(self._burst)

    @property
    def max_buckets(self) -> int:
        return self._max_buckets

    def check(self, key: str, cost: float = 1.0) -> RateDecision:
        """Take ``cost`` tokens from ``key``'s bucket if it has them; say whether the request is allowed."""
        if not (0 < cost <= self._burst):
            raise ValueError(f"cost must be more than 0 and at most the burst ({self._burst:g})")
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                self._make_room(now)
                bucket = _Bucket(self._burst, now)
                self._buckets[key] = bucket
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
                bucket.updated = max(bucket.updated, now)
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return RateDecision(True, 0.0, math.floor(bucket.tokens))
            return RateDecision(False, (cost - bucket.tokens) / self._rate, math.floor(bucket.tokens))

    def peek(self, key: str) -> float:
        """The tokens ``key``'s bucket holds now, without taking any or touching its place (``burst`` if none)."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return self._burst
            elapsed = max(0.0, self._clock() - bucket.updated)
            return min(self._burst, bucket.tokens + elapsed * self._rate)

    def reset(self, key: str) -> None:
        """Forget ``key``'s bucket (it starts full again)."""
        with self._lock:
            self._buckets.pop(key, None)

    def clear(self) -> None:
        """Forget every bucket."""
        with self._lock:
            self._buckets.clear()

    def __len__(self) -> int:
        """The number of buckets held."""
        return len(self._buckets)

    def _make_room(self, now: float) -> None:
        # Oldest first: the front bucket was touched longest ago, so if it is not surely full, none is.
        while self._buckets:
            _, oldest = next(iter(self._buckets.items()))
            if now - oldest.updated < self._full_after:
                break
            self._buckets.popitem(last=False)
        while len(self._buckets) >= self._max_buckets:
            self._buckets.popitem(last=False)
            self.evicted += 1

    def __repr__(self) -> str:
        return (
            f"TokenBucketLimiter(rate={self._rate:g}, burst={self._burst:g}, max_buckets={self._max_buckets}, "
            f"buckets={len(self._buckets)})"
        )
