"""The replay guard: an id is admitted once per partition, for exactly as long as it could be accepted."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.envelope import ReplayedEventError, StaleEventError, TimeSkewError, uuid7
from exchange.envelope.attributes import uuid7_ms
from exchange.router.replay import ReplayGuard, decode_seen, encode_seen, id_bytes

H = 301_000  # five minutes of skew and a second of id-time tolerance
SCOPE = ("ingress.population.death-registered", 0)
T0 = 1_800_000_000_000


def _admit_and_commit(guard: ReplayGuard, event_id: str, append_ms: int, scope: tuple[str, int] = SCOPE) -> None:
    guard.admit(scope, event_id, uuid7_ms(event_id), append_ms)
    guard.commit_batch()


def test_an_id_is_refused_the_second_time_on_its_partition() -> None:
    """A committed id is REPLAYED when it comes again, however many other ids came between."""
    guard = ReplayGuard(H)
    first = uuid7(T0)
    _admit_and_commit(guard, first, T0)
    for i in range(50_000):  # far more than any count-bounded window would keep
        guard.admit(SCOPE, uuid7(T0 + i // 100), T0 + i // 100, T0 + i // 100)
    guard.commit_batch()
    with pytest.raises(ReplayedEventError):
        guard.admit(SCOPE, first, uuid7_ms(first), T0 + 1000)


def test_an_id_twice_in_one_batch_is_refused_and_an_aborted_batch_is_forgotten() -> None:
    """Within a batch the second copy is refused; an aborted batch's ids can be admitted again."""
    guard = ReplayGuard(H)
    event_id = uuid7(T0)
    guard.admit(SCOPE, event_id, T0, T0)
    with pytest.raises(ReplayedEventError):
        guard.admit(SCOPE, event_id, T0, T0)
    guard.abort_batch()
    _admit_and_commit(guard, event_id, T0)  # the batch is consumed again: not a replay
    assert guard.size(SCOPE) == 1


def test_a_released_id_is_not_remembered() -> None:
    """An id let go of after admission (its record was quarantined after all) may still come once."""
    guard = ReplayGuard(H)
    event_id = uuid7(T0)
    guard.admit(SCOPE, event_id, T0, T0)
    guard.release(SCOPE, event_id)
    guard.commit_batch()
    assert guard.size(SCOPE) == 0
    _admit_and_commit(guard, event_id, T0 + 5)


def test_an_event_older_than_the_horizon_of_its_append_time_is_time_skew() -> None:
    """Old ids are refused by the broker's clock alone, whatever the state."""
    guard = ReplayGuard(H)
    with pytest.raises(TimeSkewError):
        guard.admit(SCOPE, uuid7(T0), T0, T0 + H + 1)
    guard.admit(SCOPE, uuid7(T0), T0, T0 + H)  # exactly the horizon is accepted


def test_forgotten_ids_are_refused_as_stale_when_the_clock_steps_back() -> None:
    """Once the watermark passes an id's horizon the id is forgotten, and any copy is refused as STALE, even
    with an append time that, alone, would allow it."""
    guard = ReplayGuard(H)
    old = uuid7(T0)
    _admit_and_commit(guard, old, T0)
    _admit_and_commit(guard, uuid7(T0 + H + 2000), T0 + H + 2000)  # the watermark moves on
    assert guard.size(SCOPE) == 1  # the old id's second is forgotten
    with pytest.raises(StaleEventError):
        guard.admit(SCOPE, old, T0, T0 + 10)  # a broker whose clock went back


def test_partitions_are_separate_scopes() -> None:
    """The same id on another partition is the other partition's business (the router refuses a record on
    a partition its key does not map to)."""
    guard = ReplayGuard(H)
    event_id = uuid7(T0)
    _admit_and_commit(guard, event_id, T0)
    _admit_and_commit(guard, event_id, T0, scope=(SCOPE[0], 1))
    assert guard.size() == 2


def test_packed_seconds_still_answer_exactly() -> None:
    """Ids of seconds no longer recent are packed; lookups in them find every id and no other."""
    guard = ReplayGuard(H)
    rng = random.Random(7)
    ids = [uuid7(T0 + rng.randrange(10_000)) for _ in range(3000)]
    for event_id in ids:
        guard.admit(SCOPE, event_id, uuid7_ms(event_id), T0 + 10_000)
    guard.commit_batch()
    _admit_and_commit(guard, uuid7(T0 + 30_000), T0 + 30_000)  # pack everything before
    for event_id in ids[::7]:
        with pytest.raises(ReplayedEventError):
            guard.admit(SCOPE, event_id, uuid7_ms(event_id), T0 + 31_000)
    for _ in range(500):
        fresh = uuid7(T0 + rng.randrange(10_000))
        guard.admit(SCOPE, fresh, uuid7_ms(fresh), T0 + 31_000)  # same seconds, other ids: admitted
    guard.abort_batch()


def test_restore_gives_the_committed_state() -> None:
    """A guard restored from router.seen values and the committed watermark refuses exactly what the guard
    that wrote them refuses."""
    writer = ReplayGuard(H)
    values = []
    accepted = []
    for batch in range(20):
        base = T0 + batch * 30_000
        for i in range(40):
            event_id = uuid7(base + i)
            writer.admit(SCOPE, event_id, base + i, base + i + 5)
            accepted.append(event_id)
        (_, _, value), = writer.pending()
        values.append(value)
        writer.commit_batch({SCOPE: batch})
    watermark = writer.watermark(SCOPE)
    assert watermark is not None
    reader = ReplayGuard(H)
    reader.restore(SCOPE, watermark, values, offset=19)
    assert reader.size(SCOPE) == writer.size(SCOPE)
    assert reader.current(SCOPE, 19)
    assert not reader.current(SCOPE, 20)
    for event_id in accepted:
        for guard in (writer, reader):
            with pytest.raises((ReplayedEventError, StaleEventError)) as refused:
                guard.admit(SCOPE, event_id, uuid7_ms(event_id), uuid7_ms(event_id))
            assert refused.type is (ReplayedEventError if uuid7_ms(event_id) >= watermark - H else StaleEventError)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2_000_000), st.integers(-H, H)), min_size=1, max_size=60),
       st.integers(0, 2**32))
def test_no_id_is_ever_admitted_twice(arrivals: list[tuple[int, int]], seed: int) -> None:
    """Whatever the order and timing of arrivals (including copies), an id is committed at most once."""
    rng = random.Random(seed)
    guard = ReplayGuard(H)
    pool = [uuid7(T0 + offset) for offset, _ in arrivals]
    committed: set[str] = set()
    for (offset, lag), _ in zip(arrivals, pool, strict=True):
        event_id = rng.choice(pool)
        append = T0 + offset + lag
        try:
            guard.admit(SCOPE, event_id, uuid7_ms(event_id), append)
        except (ReplayedEventError, StaleEventError, TimeSkewError):
            continue
        assert event_id not in committed
        committed.add(event_id)
        guard.commit_batch()


def test_seen_values_round_trip_and_refuse_garbage() -> None:
    ids = [id_bytes(uuid7(T0 + i)) for i in range(3)]
    assert decode_seen(encode_seen(T0, ids)) == (T0, ids)
    for bad in (b"", b"\x02" + bytes(8), encode_seen(T0, ids)[:-1]):
        with pytest.raises(ValueError, match=r"router\.seen"):
            decode_seen(bad)
