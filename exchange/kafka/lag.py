"""Consumer lag: per assigned partition, the records after the consumer's position (high watermark minus
position), for ``exchange_consumer_lag`` and the connectors' lag gauge.

Read from the watermarks the client caches from its fetch responses, so measuring costs no request; a partition
the consumer has not read from yet counts from the group's committed offset (or the partition's start), and one
it has not fetched from yet has no lag to report (it is left out) until its first fetch.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException as _CKafkaException
from confluent_kafka import TopicPartition as _TopicPartition
from prometheus_client import Gauge

from exchange.kafka.clients import Consumer
from exchange.kafka.errors import ConsumeError, translate

__all__ = ["LagGauge", "consumer_lag"]

_UNKNOWN = 0


def consumer_lag(consumer: Consumer, *, cached: bool = True, timeout: float = 5.0) -> dict[tuple[str, int], int]:
    """The lag of each partition ``consumer`` is assigned, from cached watermarks unless ``cached`` is False
    (then one request per partition, for a consumer that fetches rarely)."""
    owned = consumer.assignment()
    if not owned:
        return {}
    positions = consumer.positions(owned)
    unread = [tp for tp, offset in positions.items() if offset < 0]
    if unread:  # nothing read yet since the assignment: the group's committed offset is where it stands
        positions.update(consumer.committed(unread, timeout=2.0))
    lags: dict[tuple[str, int], int] = {}
    try:
        for topic, partition in owned:
            low, high = consumer.raw.get_watermark_offsets(
                _TopicPartition(consumer.names.physical(topic), partition), timeout=timeout, cached=cached)
            if high < 0:
                continue  # nothing fetched yet: unknown, not zero
            position = positions.get((topic, partition), -1)
            lags[(topic, partition)] = max(_UNKNOWN, high - (position if position >= 0 else low))
    except _CKafkaException as exc:
        raise translate(exc, "reading watermarks", ConsumeError) from exc
    return lags


class LagGauge:
    """Keeps a Prometheus gauge labelled ``(topic, partition)`` (after ``prefix`` labels) at ``consumer``'s lag,
    at most once every ``every_s`` seconds; partitions no longer assigned lose their series."""

    def __init__(self, gauge: Gauge, consumer: Consumer, *prefix: str, every_s: float = 1.0,
                 cached: bool = True) -> None:
        self._gauge, self._consumer, self._prefix = gauge, consumer, prefix
        self._every_s, self._cached = every_s, cached
        self._last = float("-inf")
        self._shown: set[tuple[str, int]] = set()

    def update(self, *, now: bool = False) -> dict[tuple[str, int], int] | None:
        """Measure and set the gauge (unless measured less than ``every_s`` ago and not ``now``); the lags, or
        None when not measured."""
        if not now and time.monotonic() - self._last < self._every_s:
            return None
        self._last = time.monotonic()
        lags = consumer_lag(self._consumer, cached=self._cached)
        for topic, partition in self._shown - set(lags):
            self._gauge.remove(*self._prefix, topic, str(partition))
        for (topic, partition), lag in lags.items():
            self._gauge.labels(*self._prefix, topic, str(partition)).set(lag)
        self._shown = set(lags)
        return lags

    def clear(self) -> None:
        """Remove every series this gauge set (the consumer is closing)."""
        for topic, partition in self._shown:
            self._gauge.remove(*self._prefix, topic, str(partition))
        self._shown = set()
