"""The sink half of the conformance kit: what the :class:`~connectors.sdk.Sink` surface alone can show."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from connectors.sdk.api import Sink, SinkRecord, SourceContext
from connectors.sdk.testing._support import equal, expect
from exchange.schemas.samples import sample_record

__all__ = ["SinkConformance"]


class SinkConformance:
    """Inherited tests of a :class:`~connectors.sdk.Sink` through its surface alone (no broker).

    A subclass provides :meth:`make` (a new sink on a fresh system for each test) and :meth:`read` (the
    idempotency keys, ``(event_id, agreement_id)``, of what the sink's system holds, in the order it was written:
    an insertion sequence, a file's order).
    """

    record_type: ClassVar[str] = "population.address-changed"
    source_agency: ClassVar[str] = "population-registry"
    recipient: ClassVar[str] = "tax-board"

    def make(self) -> Sink:
        raise NotImplementedError(f"{type(self).__name__} must implement make()")

    def read(self) -> Sequence[tuple[str, str]]:
        raise NotImplementedError(f"{type(self).__name__} must implement read()")

    def sink_records(self, n: int, subjects: int = 3) -> list[SinkRecord]:
        """``n`` deliveries of sample records, spread over ``subjects`` subjects in turn."""
        rng = random.Random(n * 31 + subjects)  # noqa: S311 - reproducible sample data, not a secret
        start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        return [SinkRecord(f"0190a000-0000-7000-8000-{i:012d}", "agr-001", self.record_type,
                           sample_record(self.record_type, rng), f"{i % subjects:032x}", start + timedelta(seconds=i),
                           self.source_agency) for i in range(n)]

    def _opened(self) -> Sink:
        sink = self.make()
        sink.open(SourceContext("conformance", self.recipient))
        return sink

    def test_a_record_given_twice_is_written_once(self) -> None:
        records = self.sink_records(10)
        sink = self._opened()
        try:
            sink.write(records[:6])
            sink.write(records[4:])  # 4 and 5 again: the batch redelivered after a crash before the commit
            sink.write(records[:1])
        finally:
            sink.close()
        written = list(self.read())
        equal(Counter(written), Counter(r.idempotency_key for r in records), "writes per idempotency key")

    def test_per_key_order_is_kept(self) -> None:
        records = self.sink_records(12, subjects=3)
        sink = self._opened()
        try:
            for i in range(0, len(records), 5):
                sink.write(records[i:i + 5])
        finally:
            sink.close()
        position = {key: i for i, key in enumerate(self.read())}
        for subject in {r.subject for r in records}:
            mine = [position[r.idempotency_key] for r in records if r.subject == subject]
            expect(mine == sorted(mine), f"subject {subject}: written out of order")
