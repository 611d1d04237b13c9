"""Benchmarks that print figures (``exchange bench …``); never timed assertions in tests."""

from __future__ import annotations

from exchange.bench.publish import PublishFigures, bench_publish

__all__ = ["PublishFigures", "bench_publish"]
