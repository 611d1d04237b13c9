"""`exchange broker up | status | down` as a user runs them, on a broker of the test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXCHANGE, *args], env=env, capture_output=True, text=True, timeout=240, check=False)


def test_broker_up_status_down_round_trip(tmp_path: Path) -> None:
    """up starts and prints the address, a second up reuses it and fetches nothing, down stops it."""
    env = {k: v for k, v in os.environ.items() if k != "EXCHANGE_BOOTSTRAP"}
    env["EXCHANGE_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        first = _run(env, "broker", "up")
        assert first.returncode == 0, first.stderr
        address = first.stdout.strip()
        assert address.startswith("127.0.0.1:")
        assert "fetching Apache Kafka" in first.stderr

        status = _run(env, "broker", "status")
        assert status.returncode == 0
        assert "answers" in status.stdout

        again = _run(env, "broker", "up")
        assert again.returncode == 0
        assert again.stdout.strip() == address
        assert "already running" in again.stderr
        assert "fetching" not in again.stderr

        logs = _run(env, "broker", "logs", "-n", "200")
        assert "Kafka Server started" in logs.stdout

        down = _run(env, "broker", "down")
        assert down.returncode == 0
        assert "stopped the local broker" in down.stdout
        assert _run(env, "broker", "status").returncode == 1

        # A restart reuses the cached jars and the formatted data, on the same address.
        restart = _run(env, "broker", "up")
        assert restart.returncode == 0, restart.stderr
        assert restart.stdout.strip() == address
        assert "fetching" not in restart.stderr
    finally:
        purge = _run(env, "broker", "down", "--purge")
    assert purge.returncode == 0
    assert "removed its data" in purge.stdout
    assert not (tmp_path / "cache" / "kafka-4.3.1" / "data").exists()


def test_status_of_an_unreachable_bootstrap_fails(tmp_path: Path) -> None:
    """With EXCHANGE_BOOTSTRAP pointing at nothing, status exits 1 and says so."""
    env = dict(os.environ, EXCHANGE_BOOTSTRAP="127.0.0.1:1", EXCHANGE_CACHE_DIR=str(tmp_path))
    result = _run(env, "broker", "status")
    assert result.returncode == 1
    assert "does not answer" in result.stdout
