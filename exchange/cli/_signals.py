"""Signals around a server that shuts down by itself (uvicorn)."""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["exit_quietly_after_server_shutdown"]


def exit_quietly_after_server_shutdown() -> None:
    """uvicorn handles SIGTERM and SIGINT itself (a graceful shutdown), then raises the signal again with the
    handlers it found: make those do nothing, so that the command ends with 0 and not as killed by the signal."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _nothing_more)


def _nothing_more(signum: int, _frame: FrameType | None) -> None:
    """What a signal re-raised after the server's graceful shutdown does."""
