"""A legacy register of 50,000 rows imported through the files connector, the connector killed with SIGKILL
halfway and started again, every event routed exactly once, and a department's SQL sink then holding exactly
the permitted fields of each delivery."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from connectors.sdk.sink_runtime import SinkRunner
from connectors.sql import SqlSinkConfig, build_sink
from exchange.kafka import Consumer
from exchange.schemas.samples import sample_record
from tests.integration.router_world import RunningRouter, World

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
TYPE = "population.address-changed"
ROWS = 50_000
RECIPIENT = "tax-board"


def _committed_events(world: World) -> int:
    """Records in the ingress topic, transaction markers and aborted ones included: only a progress gauge."""
    with Consumer("e2e-progress", settings=world.settings) as consumer:
        parts = [(f"ingress.{TYPE}", p) for p in range(consumer.partition_count(f"ingress.{TYPE}"))]
        return sum(consumer.end_offsets(parts).values())


def _connector(world: World, config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([EXCHANGE, "connector", "run", "files", "--config", str(config), *extra],
                            env={**os.environ, **world.env(), "EXCHANGE_LOG_LEVEL": "WARNING"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_register_imported_through_a_crash_is_routed_once_and_lands_in_a_department_table(
        bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path / "world")
    drop = tmp_path / "drop"
    drop.mkdir()
    rng = random.Random(50)
    register = [sample_record(TYPE, rng) for _ in range(ROWS)]
    with (drop / "register.jsonl").open("w", encoding="utf-8") as out:
        for row in register:
            out.write(json.dumps(row, default=str) + "\n")
    config = tmp_path / "import.yaml"
    config.write_text(json.dumps({"name": "register-import", "kind": "files", "agency": "population-registry",
                                  "record_type": TYPE, "directory": str(drop), "format": "jsonl",
                                  "max_batch": 2000}), encoding="utf-8")

    first = _connector(world, config)
    deadline = time.monotonic() + 180
    while _committed_events(world) < ROWS // 2:
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the import did not get halfway in 180 s"
        time.sleep(0.05)  # sampling the topic's end offsets, the condition checked above
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)  # reaped, its pipes closed
    assert first.returncode == -signal.SIGKILL

    second = _connector(world, config, "--exit-when-idle", "2")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["dead_letters"] == 0
    assert 0 < summary["records"] < ROWS  # it resumed where the first one's last commit left it
    assert (drop / "done" / "register.jsonl").exists()

    router = RunningRouter(world, router_id="e2e-router", group="e2e-routers")
    try:
        router.wait_events(ROWS, timeout=300)
        assert router.router.stats.events == ROWS
    finally:
        router.stop()
    events = world.read(f"ingress.{TYPE}")
    assert len(events) == ROWS  # read_committed: exactly the register, none twice, none lost
    assert len({dict(r.headers)["ce_id"] for r in events}) == ROWS

    database = tmp_path / "department.db"
    sink_config = SqlSinkConfig(name="tax-board-table", recipient=RECIPIENT, url=f"sqlite:///{database}",
                                record_types=(TYPE,), max_batch=2000)
    stats = SinkRunner(build_sink(sink_config, settings=world.settings), sink_config, recipient=RECIPIENT,
                       settings=world.settings).run(max_idle_s=2.0)
    assert stats.dead_letters == 0
    with sqlite3.connect(database) as db:
        table = sink_config.table(TYPE)
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        rows = db.execute(f"SELECT postal_code, street_address, municipality_code FROM {table}").fetchall()  # noqa: S608 - as above
    released = {"moved_on", "municipality_code", "person_id", "postal_code", "street_address"}
    assert columns == released | {"event_id", "agreement_id", "event_time", "subject"}
    assert len(rows) == stats.written == ROWS
    protected = sum(1 for r in register if r["address_protected"])
    # A protected address reaches the tax board without its street and postal code (the restriction withholds
    # them): exactly those rows have neither.
    assert sum(1 for postal, street, _ in rows if postal is None and street is None) == protected
    assert all(municipality is not None for _, _, municipality in rows)
