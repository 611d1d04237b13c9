"""Prometheus metrics of the webhook source, on the exchange's registry (served by ``serve_metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from exchange.metrics import REGISTRY

__all__ = ["IN_FLIGHT", "PUBLISH_LATENCY", "REQUESTS"]

REQUESTS = Counter("exchange_webhook_requests_total", "Webhook requests by connector and HTTP status",
                   ["connector", "status"], registry=REGISTRY)
PUBLISH_LATENCY = Histogram("exchange_webhook_publish_latency_seconds",
                            "From a valid POST to the broker's acknowledgement of its record (acks=all)",
                            ["connector"],
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                            registry=REGISTRY)
IN_FLIGHT = Gauge("exchange_webhook_in_flight", "Records published and not yet acknowledged by the broker",
                  ["connector"], registry=REGISTRY)
