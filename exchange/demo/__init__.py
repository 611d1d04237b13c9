"""The end-to-end demo (``exchange demo``) and the bad records it, and the tests, inject."""

from __future__ import annotations

from exchange.demo.bad_records import BadRecord, bad_records
from exchange.demo.scenario import DemoSummary, run_demo

__all__ = ["BadRecord", "DemoSummary", "bad_records", "run_demo"]
