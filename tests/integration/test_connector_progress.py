"""`exchange connector run files` on a terminal: a progress line with the records done out of those waiting, the
rate and the time left; the total is what waits after the committed offset."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import threading
from pathlib import Path

from exchange.schemas.samples import sample_record
from tests.integration.router_world import World

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
TYPE = "population.address-changed"


def _drop(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(sample_record(TYPE, rng), default=str) + "\n" for _ in range(n)),
                    encoding="utf-8")


def _run_on_a_terminal(world: World, config: Path) -> str:
    """Run the connector to idle with its stderr on a pseudo-terminal; what the terminal showed."""
    main, side = os.openpty()
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the connector closed the terminal's other side
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        done = subprocess.run([EXCHANGE, "connector", "run", "files", "--config", str(config), "--exit-when-idle",
                               "1"], env={**os.environ, **world.env(), "EXCHANGE_LOG_LEVEL": "WARNING"},
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=side, timeout=300, check=False)
    finally:
        os.close(side)
    reader.join(timeout=30)
    os.close(main)
    text = b"".join(shown).decode("utf-8", "replace")
    assert done.returncode == 0, text[-2000:]
    return text


def test_a_bulk_import_on_a_terminal_shows_done_out_of_total_the_rate_and_the_time_left(
        bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path / "world")
    drop = tmp_path / "drop"
    drop.mkdir()
    _drop(drop / "register-a.jsonl", 1500, seed=1)
    _drop(drop / "register-b.jsonl", 700, seed=2)
    config = tmp_path / "import.yaml"
    config.write_text(json.dumps({"name": "progress-import", "kind": "files", "agency": "population-registry",
                                  "record_type": TYPE, "directory": str(drop), "format": "jsonl", "batch": 200,
                                  "max_batch": 200}), encoding="utf-8")
    shown = _run_on_a_terminal(world, config)
    lines = [line.replace("\x1b[K", "") for line in re.split(r"[\r\n]", shown) if "records" in line]
    assert lines, shown[-2000:]
    assert all(re.fullmatch(r"progress-import  [\d,]+ / 2,200 records  [\d,]+/s  ETA \d+s", line) for line in lines)
    assert lines[-1].startswith("progress-import  2,200 / 2,200 records")

    _drop(drop / "register-c.jsonl", 300, seed=3)  # after a restart: only what waits after the committed offset
    again = [line for line in re.split(r"[\r\n]", _run_on_a_terminal(world, config)) if "records" in line]
    assert again[-1].replace("\x1b[K", "").startswith("progress-import  300 / 300 records")
