"""``exchange bench replay``: the replay guard's memory per remembered id and its cost per event, no broker.

A steady stream at ``rate`` events/s is admitted batch by batch for ``seconds`` of broker time; the guard's
memory is measured with tracemalloc (every allocation it holds, ids included) and compared with the plain
baseline, a set of the id strings. The figures at ``rate`` for a whole horizon are extrapolated from the
measured bytes per id.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from exchange.envelope import ReplayedEventError, uuid7
from exchange.envelope.attributes import ID_TIME_TOLERANCE_MS, uuid7_ms
from exchange.envelope.verify import MAX_SKEW
from exchange.router.replay import ReplayGuard

__all__ = ["ReplayFigures", "bench_replay"]

_SCOPE = ("ingress.bench", 0)
_T0 = 1_800_000_000_000


@dataclass(frozen=True)
class ReplayFigures:
    horizon_s: float
    rate: int
    ids_held: int
    bytes_per_id: float
    baseline_bytes_per_id: float
    ratio_vs_baseline: float
    ids_at_rate: int
    mb_at_rate: float
    admit_us_p50: float
    admit_us_p99: float
    replay_recent_us: float
    replay_packed_us: float
    restore_ids_per_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ids(rate: int, seconds: int) -> list[tuple[int, str]]:
    """``(append ms, id)`` of a stream at ``rate`` events/s whose ids are up to 50 ms older than their append."""
    step = 1000 / rate
    out = []
    for i in range(rate * seconds):
        append = _T0 + int(i * step)
        out.append((append, uuid7(append - int.from_bytes(os.urandom(1)) % 50)))
    return out


def _fill(guard: ReplayGuard, stream: list[tuple[int, str]], batch: int, timings: list[float] | None = None,
          values: list[bytes] | None = None) -> None:
    """Admit ``stream`` batch by batch; collect each admission's seconds and the router.seen values if asked."""
    clock = time.perf_counter
    for start in range(0, len(stream), batch):
        for append, event_id in stream[start:start + batch]:
            before = clock()
            guard.admit(_SCOPE, event_id, uuid7_ms(event_id), append)
            if timings is not None:
                timings.append(clock() - before)
        if values is not None:
            values.extend(value for _, _, value in guard.pending())
        guard.commit_batch()


def bench_replay(rate: int = 20_000, seconds: int = 60, max_skew: timedelta = MAX_SKEW,
                 batch: int = 500) -> ReplayFigures:
    horizon = max_skew // timedelta(milliseconds=1) + ID_TIME_TOLERANCE_MS
    stream = _ids(rate, seconds)

    timings: list[float] = []
    guard = ReplayGuard(horizon)
    _fill(guard, stream, batch, timings)
    timings.sort()

    # Measured on copies of the ids made while tracing: the strings a router holds are the events' own.
    tracemalloc.start()
    measured = ReplayGuard(horizon)
    _fill(measured, [(append, event_id.encode().decode()) for append, event_id in stream], batch)
    held_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    baseline = {event_id.encode().decode() for _, event_id in stream}
    baseline_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = measured.size()
    per_id = held_bytes / held
    baseline_per_id = baseline_bytes / len(baseline)

    recent = [event_id for _, event_id in stream[-200:]]
    packed = [event_id for _, event_id in stream[:2000:10]]
    last = stream[-1][0]
    replay_recent = _replay_cost(guard, recent, last)
    replay_packed = _replay_cost(guard, packed, last)

    values: list[bytes] = []
    _fill(ReplayGuard(horizon), stream, batch, values=values)
    restorer = ReplayGuard(horizon)
    before = time.perf_counter()
    restored = restorer.restore(_SCOPE, last, values, offset=0)
    restore_s = time.perf_counter() - before

    ids_at_rate = rate * horizon // 1000
    return ReplayFigures(
        horizon_s=horizon / 1000, rate=rate, ids_held=held, bytes_per_id=round(per_id, 1),
        baseline_bytes_per_id=round(baseline_per_id, 1), ratio_vs_baseline=round(per_id / baseline_per_id, 3),
        ids_at_rate=ids_at_rate, mb_at_rate=round(ids_at_rate * per_id / 1e6, 1),
        admit_us_p50=round(timings[len(timings) // 2] * 1e6, 2),
        admit_us_p99=round(timings[int(len(timings) * 0.99)] * 1e6, 2),
        replay_recent_us=round(replay_recent * 1e6, 2), replay_packed_us=round(replay_packed * 1e6, 2),
        restore_ids_per_s=round(restored / restore_s))


def _replay_cost(guard: ReplayGuard, ids: list[str], append: int) -> float:
    """Mean seconds to refuse one replayed id."""
    before = time.perf_counter()
    for event_id in ids:
        try:
            guard.admit(_SCOPE, event_id, uuid7_ms(event_id), append)
        except ReplayedEventError:
            continue
        raise AssertionError(f"{event_id} was admitted twice")  # the guard would be broken: say so loudly
    return (time.perf_counter() - before) / len(ids)
