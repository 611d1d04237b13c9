"""Prometheus metrics of the exchange, and a helper that serves ``/metrics``.

The metrics are module-level (one registry per process, as prometheus-client intends); services expose them
with :func:`serve_metrics` when ``EXCHANGE_METRICS_PORT`` (or ``--metrics-port``) is set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = [
    "CHECKPOINT_AGE",
    "CONSUMER_LAG",
    "DECISIONS",
    "EVENTS",
    "QUARANTINED",
    "REGISTRY",
    "ROUTING_LATENCY",
    "TRACKER_INDEXED",
    "TRACKER_NEXT_INDEX",
    "TRACKER_REQUESTS",
    "TRACKER_REQUEST_SECONDS",
    "serve_metrics",
]

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter("exchange_events_total", "Events by pipeline stage and outcome", ["stage", "outcome"],
                 registry=REGISTRY)
DECISIONS = Counter("exchange_decisions_total", "Policy decisions by recipient, outcome and reason",
                    ["recipient", "outcome", "reason"], registry=REGISTRY)
QUARANTINED = Counter("exchange_quarantined_total", "Records sent to exchange.quarantine, by reason", ["reason"],
                      registry=REGISTRY)
ROUTING_LATENCY = Histogram("exchange_routing_latency_seconds", "From the event's publication to its delivery",
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                            registry=REGISTRY)
CONSUMER_LAG = Gauge("exchange_consumer_lag", "Records not yet consumed, by topic and partition",
                     ["topic", "partition"], registry=REGISTRY)
CHECKPOINT_AGE = Gauge("exchange_checkpoint_age_seconds", "Seconds since the access log's last checkpoint",
                       registry=REGISTRY)

TRACKER_REQUESTS = Counter("exchange_tracker_requests_total", "Data-tracker requests by route and status",
                           ["route", "status"], registry=REGISTRY)
TRACKER_REQUEST_SECONDS = Histogram("exchange_tracker_request_seconds", "Data-tracker request time, by route",
                                    ["route"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
                                    registry=REGISTRY)
TRACKER_INDEXED = Counter("exchange_tracker_indexed_entries_total", "Access-log entries indexed, by outcome",
                          ["outcome"], registry=REGISTRY)
TRACKER_NEXT_INDEX = Gauge("exchange_tracker_next_index", "The next access-log index the tracker will index",
                           registry=REGISTRY)


def serve_metrics(port: int, addr: str | None = None) -> None:
    """Serve ``/metrics`` for this process's registry on ``addr:port`` (default: ``EXCHANGE_METRICS_ADDR``) from a
    daemon thread."""
    from exchange.settings import get_settings  # noqa: PLC0415 - the metrics themselves need no settings

    start_http_server(port, addr=addr or get_settings().metrics_addr, registry=REGISTRY)
