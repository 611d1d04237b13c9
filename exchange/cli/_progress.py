"""A progress line on a terminal for long work (replays, imports, re-indexing); silent when not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``label  12,345 / 20,000 entries  8,120/s  ETA 1s``, redrawn at most ten times a second."""

    def __init__(self, label: str, total: int | None = None, unit: str = "entries", stream: TextIO | None = None):
        self.label, self.total, self.unit = label, total, unit
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._started = time.monotonic()
        self._drawn = 0.0
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self._enabled and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def close(self) -> None:
        if self._enabled:
            self._draw(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        total = f" / {self.total:,}" if self.total else ""
        eta = ""
        if self.total and rate > 0:
            eta = f"  ETA {max(0.0, (self.total - self.done) / rate):.0f}s"
        self._stream.write(f"\r{self.label}  {self.done:,}{total} {self.unit}  {rate:,.0f}/s{eta}\x1b[K")
        self._stream.flush()
