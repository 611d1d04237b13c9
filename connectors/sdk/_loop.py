"""The loop both runtimes run: one step after another until stopped, or idle for long enough."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["run_steps"]


def run_steps(step: Callable[[], int], stop: threading.Event, max_idle_s: float | None, *,
              pause_s: float = 0.0) -> None:
    """Call ``step`` (it returns how much it did) until ``stop`` is set, or nothing was done for ``max_idle_s``;
    after a step that did nothing, wait ``pause_s`` (a step that blocks on its own needs none)."""
    idle_since = time.monotonic()
    while not stop.is_set():
        if step():
            idle_since = time.monotonic()
        elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
            return
        elif pause_s:
            stop.wait(pause_s)
