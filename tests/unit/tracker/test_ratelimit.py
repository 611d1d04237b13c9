"""The per-token rate limiter, on a fake clock."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.tracker.ratelimit import RateDecision, TokenBucketLimiter


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_burst_is_allowed_then_refused_with_the_wait(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=2, burst=5, clock=clock)
    decisions = [limiter.check("t") for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = limiter.check("t")
    assert refused == RateDecision(False, 0.5, 0)
    assert refused.retry_after_header == "1"


def test_the_bucket_refills_at_the_rate(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=2, burst=5, clock=clock)
    for _ in range(5):
        limiter.check("t")
    clock.advance(0.49)
    assert not limiter.check("t").allowed
    clock.advance(0.01)
    assert limiter.check("t").allowed
    assert not limiter.check("t").allowed
    clock.advance(10)  # capped at the burst, not 20 tokens
    assert sum(limiter.check("t").allowed for _ in range(20)) == 5


def test_a_refused_request_takes_nothing(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock)
    assert limiter.check("t").allowed
    for _ in range(100):
        assert not limiter.check("t").allowed
    clock.advance(1)
    assert limiter.check("t").allowed


def test_retry_after_is_exact_and_honouring_it_is_enough(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=0.25, burst=2, clock=clock)
    limiter.check("t")
    limiter.check("t")
    refused = limiter.check("t")
    assert refused.retry_after == pytest.approx(4.0)
    assert refused.retry_after_header == "4"
    clock.advance(refused.retry_after)
    assert limiter.check("t").allowed
    half = limiter.check("t", cost=1)
    assert not half.allowed
    clock.advance(1.5)  # 0.375 of a token: 2.5 s to go, so the header says 3
    assert limiter.check("t").retry_after_header == "3"


def test_keys_are_independent(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=2, clock=clock)
    assert limiter.check("a").allowed
    assert limiter.check("a").allowed
    assert not limiter.check("a").allowed
    assert limiter.check("b").allowed
    assert limiter.peek("a") == 0
    assert limiter.peek("b") == 1
    assert limiter.peek("never-seen") == 2


def test_cost(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=10, clock=clock)
    assert limiter.check("t", cost=7).allowed
    refused = limiter.check("t", cost=5)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(2.0)
    assert limiter.check("t", cost=3).allowed
    with pytest.raises(ValueError, match="cost"):
        limiter.check("t", cost=11)
    with pytest.raises(ValueError, match="cost"):
        limiter.check("t", cost=0)


def test_a_flood_of_distinct_keys_stays_within_the_cap(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=3, max_buckets=100, clock=clock)
    for i in range(10_000):
        limiter.check(f"flood-{i}")
        assert len(limiter) <= 100
    assert len(limiter) == 100
    assert limiter.evicted == 10_000 - 100


def test_full_buckets_are_dropped_first_without_counting_as_evictions(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=3, max_buckets=10, clock=clock)
    for i in range(10):
        limiter.check(f"old-{i}")
    clock.advance(3)  # every old bucket is full again: dropping them changes no decision
    limiter.check("new")
    assert len(limiter) == 1
    assert limiter.evicted == 0


def test_the_least_recently_used_bucket_is_evicted(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=2, max_buckets=2, clock=clock)
    for key in ("a", "a", "b", "b"):
        limiter.check(key)
    assert not limiter.check("a").allowed  # touches a: b is now the least recently used
    limiter.check("c")
    assert limiter.evicted == 1
    assert not limiter.check("a").allowed  # a kept its empty bucket
    assert limiter.peek("b") == 2  # b was evicted (a fresh burst)


def test_an_active_key_keeps_its_bucket_through_a_flood(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=2, max_buckets=50, clock=clock)
    limiter.check("victim")
    limiter.check("victim")
    for i in range(1000):
        limiter.check(f"flood-{i}")
        if i % 10 == 0:
            assert not limiter.check("victim").allowed  # each touch moves it to the recent end
    assert not limiter.check("victim").allowed


def test_a_clock_that_steps_back_gives_nothing(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock)
    assert limiter.check("t").allowed
    clock.advance(-100)
    assert not limiter.check("t").allowed
    clock.advance(100.5)  # back to half a token after the first request, not 100 tokens
    assert not limiter.check("t").allowed
    clock.advance(0.5)
    assert limiter.check("t").allowed


def test_reset_and_clear(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=clock)
    limiter.check("a")
    limiter.check("b")
    limiter.reset("a")
    assert limiter.check("a").allowed
    assert not limiter.check("b").allowed
    limiter.clear()
    assert len(limiter) == 0
    assert limiter.check("b").allowed


@pytest.mark.parametrize(
    ("rate", "burst", "max_buckets", "match"),
    [
        (0, 1, 1, "rate"),
        (-1, 1, 1, "rate"),
        (float("inf"), 1, 1, "rate"),
        (float("nan"), 1, 1, "rate"),
        (1, 0, 1, "burst"),
        (1, 1, 0, "max_buckets"),
    ],
)
def test_configuration_is_checked(rate: float, burst: int, max_buckets: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TokenBucketLimiter(rate, burst, max_buckets=max_buckets)


def test_the_default_clock_is_monotonic_time() -> None:
    limiter = TokenBucketLimiter(rate=1, burst=2)
    assert limiter.check("t").allowed
    assert limiter.check("t").allowed
    assert not limiter.check("t").allowed  # less than a second passes between these calls
    assert "buckets=1" in repr(limiter)


def test_concurrent_checks_never_grant_more_than_the_burst(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(rate=1, burst=50, clock=clock)
    granted: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(100):
            allowed = limiter.check("shared").allowed
            with lock:
                granted.append(allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 50
    assert len(granted) == 800


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 50),
    steps=st.lists(st.tuples(st.floats(0, 5), st.sampled_from(["a", "b", "c"])), max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, steps: list[tuple[float, str]]
) -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=rate, burst=burst, max_buckets=10, clock=clock)
    elapsed = 0.0
    granted = {"a": 0, "b": 0, "c": 0}
    for wait, key in steps:
        clock.advance(wait)
        elapsed += wait
        decision = limiter.check(key)
        granted[key] += decision.allowed
        assert decision.allowed == (decision.retry_after == 0)
        assert decision.retry_after <= 1 / rate + 1e-9
        assert granted[key] <= burst + rate * elapsed + 1e-6
