"""The sequencer killed with SIGKILL five times at random points while it sequences 20,000 entries, restarted
each time: contiguous indices, every decision exactly once, every checkpoint consistent with every other."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from exchange.audit import CHECKPOINT_TOPIC, read_log_entries, verify_log
from exchange.kafka import Consumer
from exchange.router import RouterConfig, RouterThread, build_router
from tests.integration.router_world import World

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
TYPES = {"population.person-registered": "population-registry", "population.address-changed": "population-registry",
         "tax.income-assessed": "tax-board"}


def _log_size(world: World) -> int:
    """Records in audit.log, transaction markers included (a lower bound that only grows)."""
    with Consumer("log-watermark", settings=world.settings) as consumer:
        return consumer.end_offsets([("audit.log", 0)])[("audit.log", 0)]


def test_sigkill_five_times_leaves_no_gap_and_no_duplicate(bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path)
    count = 0
    for record_type, agency in TYPES.items():
        count += len(world.publish(agency, record_type, world.records(record_type, 2400, seed=count)))
    router = RouterThread(build_router(RouterConfig(router_id="crash-seq", group_id="crash-seq"), world.settings))
    try:
        router.wait_events(count, timeout=240)
    finally:
        router.stop()
    decisions = world.read("audit.decisions")
    assert len(decisions) >= 20_000

    env = {**os.environ, **world.env(), "EXCHANGE_AUDIT_STATE_DIR": str(tmp_path / "audit-state"),
           "EXCHANGE_LOG_FORMAT": "json"}
    log = tmp_path / "sequencer.log"
    rng = random.Random(7)

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([EXCHANGE, "audit", "sequencer", "run", "--checkpoint-every", "500",
                                     "--checkpoint-interval", "0.2"], env=env, stdout=out, stderr=subprocess.STDOUT)

    kills = 0
    while kills < 5:
        process = start()
        target = _log_size(world) + rng.randrange(500, 3000)
        deadline = time.monotonic() + 120
        while _log_size(world) < target:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the sequencer made no progress in 120 s"
            time.sleep(0.01)  # polling the log's end offset; the condition is checked above
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        kills += 1
    assert _log_size(world) < len(decisions), "the sequencer finished before the last kill: the test proved little"

    last = start()
    try:
        deadline = time.monotonic() + 240
        while len(read_log_entries(world.settings)) < len(decisions):
            assert last.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the restarted sequencer did not finish within 240 s"
            time.sleep(0.5)  # waiting for the restarted sequencer; the condition is checked above
        deadline = time.monotonic() + 30
        while True:  # and for its last checkpoint, which covers everything
            notes = [r.value or b"" for r in world.read(CHECKPOINT_TOPIC)]
            if notes and f"\n{len(decisions)}\n".encode() in notes[-1]:
                break
            assert time.monotonic() < deadline, "no checkpoint of the whole log within 30 s"
            time.sleep(0.2)  # waiting for the time-based checkpoint; the condition is checked above
    finally:
        last.send_signal(signal.SIGTERM)
        assert last.wait(timeout=60) == 0, log.read_text()[-3000:]

    entries = read_log_entries(world.settings)
    assert [i for i, _ in entries] == list(range(len(decisions)))
    ids = Counter(dict(r.headers)["ce_id"] for r in world.read("audit.log"))
    assert len(ids) == len(decisions)
    assert set(ids.values()) == {1}
    report = verify_log(world.settings, world.context.registry)
    assert report.first_error is None
    assert report.entries == len(entries)
    assert report.checkpoints == len(notes) >= 5
