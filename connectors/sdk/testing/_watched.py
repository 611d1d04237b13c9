"""A source under watch: the kit wraps the subclass's source to count and time its polls, to make it answer
Backpressure or Retryable, and to hand its acknowledgements on late, out of order, or never."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

from connectors.sdk.api import Backpressure, Offset, Retryable, Source, SourceContext, SourceRecord

__all__ = ["Acks", "Watched"]

Acks = Literal["direct", "late", "never"]
"""How acknowledgements reach the source: at once; held back and handed on late, newest first, in the middle of
a later batch (at the second such release the very first one is handed again, after them), and what waits when
the source closes; or never (dropped)."""


class Watched(Source):
    """``inner``, watched. ``backpressure``: the first poll answers Backpressure. ``retryable``: poll number →
    how many records that poll passes on before it raises Retryable."""

    def __init__(self, inner: Source, *, backpressure: bool = False, retryable: Mapping[int, int] | None = None,
                 acks: Acks = "direct") -> None:
        self.inner = inner
        self.opened = self.closed = self.polls = self.pressed = self.retried = 0
        self.poll_times: list[float] = []
        self.arrived = 0
        """Acknowledgements the runtime made."""
        self.handed: list[int] = []
        """The acknowledgements that reached the source, by their number in the runtime's order (0, 1, …)."""
        self.dropped: list[int] = []
        self._press = backpressure
        self._retryable = dict(retryable or {})
        self._acks = acks
        self._held: list[tuple[int, Offset]] = []
        self._first: tuple[int, Offset] | None = None

    def open(self, context: SourceContext) -> None:
        self.opened += 1
        self.inner.open(context)

    def close(self) -> None:
        self.closed += 1
        try:
            self._release(everything=True)
        finally:
            self.inner.close()

    def poll(self, after: Offset | None) -> Iterable[SourceRecord]:
        self.polls += 1
        self.poll_times.append(time.monotonic())
        self._release(after)
        if self._press:
            self._press = False
            self.pressed += 1
            raise Backpressure(0.05, "the kit: saturated once")
        passed = self._retryable.pop(self.polls, None)
        if passed is None:
            return self.inner.poll(after)
        return self._failing(after, passed)

    def _failing(self, after: Offset | None, passed: int) -> Iterator[SourceRecord]:
        if passed:
            for n, record in enumerate(self.inner.poll(after), start=1):
                yield record
                if n >= passed:
                    break
        self.retried += 1
        raise Retryable("the kit: the system is away for a moment")

    def acknowledge(self, upto: Offset) -> None:
        number, self.arrived = self.arrived, self.arrived + 1
        if number == 0:
            self._first = (number, dict(upto))
        if self._acks == "direct":
            self._hand(number, upto)
        elif self._acks == "never":
            self.dropped.append(number)
        else:
            self._held.append((number, dict(upto)))

    def _release(self, after: Offset | None = None, *, everything: bool = False) -> None:
        """Hand on what is held: when the source closes; at a poll in the middle of a batch (it does not start
        from the newest acknowledgement) once two are held; at any poll once three are."""
        if self._acks != "late" or not self._held:
            return
        mid_batch = after is None or dict(after) != self._held[-1][1]
        if not (everything or len(self._held) >= 3 or (len(self._held) == 2 and mid_batch)):
            return
        held, self._held = self._held, []
        stale = self._first if self.handed and self._first is not None else None
        for number, upto in reversed(held):
            self._hand(number, upto)
        if stale is not None:  # the second release: the very first acknowledgement again, long after newer ones
            self._first = None
            self._hand(*stale)

    def _hand(self, number: int, upto: Offset) -> None:
        self.handed.append(number)
        self.inner.acknowledge(upto)
