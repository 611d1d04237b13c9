"""A sink connector's consumer lag: per partition of its input, the records not yet written and committed.

``exchange_connector_lag_records{connector, partition}`` is the partition's high watermark minus the consumer's
position (the next offset it reads; after a commit, the committed one). A partition the consumer has read nothing
of yet counts from the group's committed offset, or from the partition's start when the group has none. The
watermarks are those of the consumer's last fetch (no request to the broker), so a partition it has not fetched
yet has no series until it has. The gauge is updated after a commit, at most once a second; a partition the
consumer no longer owns (a rebalance) loses its series.
"""

from __future__ import annotations

import time

from prometheus_client import Gauge

from exchange.kafka import Consumer
from exchange.kafka.errors import KafkaError
from exchange.kafka.lag import consumer_lag
from exchange.log import get_logger
from exchange.metrics import REGISTRY

__all__ = ["LAG", "SinkLag"]

LAG = Gauge("exchange_connector_lag_records", "Records of a sink connector's input not yet written and committed",
            ["connector", "partition"], registry=REGISTRY)


class SinkLag:
    """Keeps :data:`LAG` of connector ``name`` from ``consumer``'s positions and the partitions' watermarks."""

    def __init__(self, name: str, consumer: Consumer, *, every_s: float = 1.0) -> None:
        self.name, self._consumer, self._every_s = name, consumer, every_s
        self._last = float("-inf")
        self._shown: set[int] = set()
        self._log = get_logger("connectors.sink", connector=name)

    def update(self, *, now: bool = False) -> dict[int, int] | None:
        """Update the gauge (unless it was updated less than a second ago and not ``now``); the lag of each
        partition the consumer owns, or None when it was not measured."""
        if not now and time.monotonic() - self._last < self._every_s:
            return None
        self._last = time.monotonic()
        try:
            lags = self._measure()
        except KafkaError as exc:  # the metric waits for the broker; the sink goes on
            self._log.warning("consumer lag not measured", error=str(exc))
            return None
        for gone in self._shown - set(lags):
            LAG.remove(self.name, str(gone))
        for partition, lag in lags.items():
            LAG.labels(connector=self.name, partition=str(partition)).set(lag)
        self._shown = set(lags)
        return lags

    def _measure(self) -> dict[int, int]:
        return {partition: lag for (_, partition), lag in consumer_lag(self._consumer).items()}
