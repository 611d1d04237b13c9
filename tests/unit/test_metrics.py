"""The Prometheus endpoint serves the exchange's metrics."""

from __future__ import annotations

import socket
import urllib.request

from exchange.metrics import EVENTS, QUARANTINED, serve_metrics


def test_metrics_endpoint_serves_counters() -> None:
    """Counters incremented in the process appear on /metrics with their labels."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve_metrics(port)
    EVENTS.labels(stage="verify", outcome="ok").inc(3)
    QUARANTINED.labels(reason="BAD_SIGNATURE").inc()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert 'exchange_events_total{outcome="ok",stage="verify"} 3.0' in body
    assert 'exchange_quarantined_total{reason="BAD_SIGNATURE"} 1.0' in body
    assert "exchange_routing_latency_seconds_bucket" in body
