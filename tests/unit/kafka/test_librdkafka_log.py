"""librdkafka's own log lines go through the exchange's structlog, never raw to the terminal."""

from __future__ import annotations

import time

import pytest
import structlog

from exchange.kafka import Producer


def test_client_log_lines_are_structured(capfd: pytest.CaptureFixture[str]) -> None:
    """A client that cannot connect logs why through structlog (component librdkafka, its facility), and
    nothing in librdkafka's raw ``%3|…|FAIL|…`` form reaches stderr."""
    with structlog.testing.capture_logs() as logs:
        producer = Producer(bootstrap="127.0.0.1:1")
        producer.produce("anything", b"x")
        deadline = time.monotonic() + 20
        while not any(e.get("component") == "librdkafka" for e in logs) and time.monotonic() < deadline:
            producer.poll(0.2)  # serves the client's queued log lines; the condition is checked above
    found = [e for e in logs if e.get("component") == "librdkafka"]
    assert found, "no librdkafka line was logged through structlog"
    assert all(e["facility"] and e["event"] for e in found)
    assert "|FAIL|" not in capfd.readouterr().err
