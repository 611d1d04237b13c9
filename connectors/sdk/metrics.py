"""The connectors' Prometheus metrics, in the exchange's registry (``exchange.metrics.REGISTRY``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from exchange.metrics import REGISTRY

__all__ = ["COMMIT_SECONDS", "RECORDS"]

RECORDS = Counter("exchange_connector_records_total", "Records a connector passed on or dead-lettered",
                  ["connector", "outcome"], registry=REGISTRY)
COMMIT_SECONDS = Histogram("exchange_connector_commit_seconds", "Time to flush and commit one batch",
                           ["connector"], registry=REGISTRY)
