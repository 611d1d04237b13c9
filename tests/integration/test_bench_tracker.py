"""`exchange bench tracker` at a small size on the real broker: it writes a sequenced log, indexes it, serves the
citizen's page and API from a process of its own, and reports its figures; the citizen's rows seen through the
API are the rows written less the hidden ones; its topics are gone afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from confluent_kafka.admin import AdminClient

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
KEYS = {"entries", "subject_rows", "hidden_rows", "api_total", "write_entries_per_s", "index_entries_per_s",
        "index_s", "requests", "rate_limit_burst", "page_p50_ms", "page_p99_ms", "page_p999_ms", "api_p50_ms",
        "api_p99_ms", "api_p999_ms", "target_index_entries_per_s", "target_p99_ms", "index_target_met",
        "page_target_met", "api_target_met", "namespace"}


def _bench_topics(bootstrap: str) -> set[str]:
    return {t for t in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
            if t.startswith("bench")}


def test_bench_tracker_reports_its_figures_and_cleans_up(bootstrap: str) -> None:
    done = subprocess.run(
        [EXCHANGE, "bench", "tracker", "--entries", "3000", "--subject-rows", "200", "--requests", "50", "--json"],
        env={**os.environ, "EXCHANGE_BOOTSTRAP": bootstrap}, capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert set(figures) == KEYS
    assert (figures["entries"], figures["subject_rows"], figures["requests"]) == (3000, 200, 50)
    assert 0 < figures["hidden_rows"] < figures["subject_rows"]
    assert figures["api_total"] == figures["subject_rows"] - figures["hidden_rows"]
    assert figures["rate_limit_burst"] > 2 * figures["requests"]
    assert figures["index_entries_per_s"] > 0
    assert 0 < figures["page_p50_ms"] <= figures["page_p99_ms"]
    assert 0 < figures["api_p50_ms"] <= figures["api_p99_ms"]
    assert figures["page_p999_ms"] is None  # fewer than 1,000 requests: no p99.9 is claimed
    assert (figures["target_index_entries_per_s"], figures["target_p99_ms"]) == (20_000, 100.0)
    assert figures["api_target_met"] == (figures["api_p99_ms"] <= 100.0)
    assert figures["namespace"].startswith("bench")
    assert not {t for t in _bench_topics(bootstrap) if t.startswith(figures["namespace"])}
