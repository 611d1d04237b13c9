"""The Prometheus endpoint serves the exchange's metrics."""

from __future__ import annotations

import socket
import urllib.request

from exchange.metrics import EVENTS, QUARANTINED, REGISTRY, serve_metrics


def test_metrics_endpoint_serves_counters() -> None:
    """Counters incremented in the process appear on /metrics with their labels."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve_metrics(port)
    # Other tests in this process may have counted already: compare with the value before.
    verified = REGISTRY.get_sample_value("exchange_events_total", {"stage": "verify", "outcome": "ok"}) or 0.0
    rejected = REGISTRY.get_sample_value("exchange_quarantined_total", {"reason": "BAD_SIGNATURE"}) or 0.0
    EVENTS.labels(stage="verify", outcome="ok").inc(3)
    QUARANTINED.labels(reason="BAD_SIGNATURE").inc()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert f'exchange_events_total{{outcome="ok",stage="verify"}} {verified + 3}' in body
    assert f'exchange_quarantined_total{{reason="BAD_SIGNATURE"}} {rejected + 1}' in body
    assert "exchange_routing_latency_seconds_bucket" in body
