"""transparency-dev's Go client reads the access log as C2SP tlog-tiles, written by TileWriter and served by
TileServer: it verifies the checkpoint's signature, proves entries included and two sizes consistent, and
notices a tampered tile or entry bundle.

The client is tests/go/tilesclient (github.com/transparency-dev/tessera/client, cross-checked with
golang.org/x/mod/sumdb/tlog). Go is required: without it the test fails, it does not skip. Modules are cached in
~/.cache/exchange/go, so a second run (and CI with that directory cached) builds offline in seconds.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exchange.audit.serve import TileServer
from exchange.audit.tile_writer import TileWriter
from exchange.audit.tiles import TileReader, entries_path, tile_path
from exchange.crypto import merkle
from exchange.crypto.checkpoint import Checkpoint, sign_checkpoint
from exchange.crypto.keys import Signer

ORIGIN = "test.exchange.local/access-log"
OLD_SIZE, SIZE = 300, 700
INDICES = [0, 4, 5, 255, 256, 299, 300, 511, 512, 699]
GO_CACHE = Path.home() / ".cache" / "exchange" / "go"


@dataclass(frozen=True)
class Log:
    directory: Path
    old_checkpoint: Path
    signer: Signer
    entries: list[bytes]
    root: bytes


@pytest.fixture(scope="session")
def tilesclient(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is not on PATH: this test builds tests/go/tilesclient (transparency-dev's tlog-tiles client) "
                    "and needs Go 1.25 or later. Install Go; the test does not skip without it.")
    binary = tmp_path_factory.mktemp("go") / "tilesclient"
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "GOPATH": str(GO_CACHE),
           "GOMODCACHE": str(GO_CACHE / "pkg" / "mod")}
    started = time.monotonic()
    built = subprocess.run([go, "build", "-o", str(binary), "."], cwd=repo_root / "tests" / "go" / "tilesclient",
                           env=env, capture_output=True, text=True, timeout=900, check=False)
    assert built.returncode == 0, f"go build failed:\n{built.stderr}"
    print(f"go build of tilesclient: {time.monotonic() - started:.1f} s")  # shown with pytest -s
    return binary


def _build_log(directory: Path, seed: int = 7) -> tuple[list[bytes], str, Signer]:
    rng = random.Random(seed)
    signer = Signer.generate("exchange-audit")
    entries = [rng.randbytes(rng.choice([0, 1, 40, 300, 3000])) for _ in range(SIZE)]
    entries[5] = b"entry 5, which a test tampers with"
    writer = TileWriter(directory, fsync=False)
    old_note = ""
    while writer.size < SIZE:
        stop = min(SIZE, writer.size + rng.randint(1, 90))
        if writer.size < OLD_SIZE < stop:
            stop = OLD_SIZE
        writer.append(entries[writer.size:stop])
        if writer.size in (OLD_SIZE, SIZE):
            note = sign_checkpoint(Checkpoint(ORIGIN, writer.size, TileReader(directory).root(writer.size)), [signer])
            writer.write_checkpoint(note.encode())
            old_note = old_note or note
    return entries, old_note, signer


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    base = tmp_path_factory.mktemp("tiles")
    entries, old_note, signer = _build_log(base / "log")
    (base / "old-checkpoint").write_text(old_note)
    return Log(base / "log", base / "old-checkpoint", signer, entries,
               merkle.root([merkle.leaf_hash(e) for e in entries]))


@pytest.fixture
def served(log: Log) -> Iterator[str]:
    with TileServer(log.directory).start() as server:
        yield server.url


def _run(binary: Path, url: str, log: Log, vkey: str | None = None) -> tuple[int, dict[str, Any]]:
    started = time.monotonic()
    done = subprocess.run([str(binary), "-url", url, "-vkey", vkey or log.signer.verifier_key(), "-origin", ORIGIN,
                           "-index", ",".join(map(str, INDICES)), "-old-checkpoint", str(log.old_checkpoint)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), f"tilesclient exited {done.returncode}:\n{done.stderr}"
    print(f"tilesclient: {time.monotonic() - started:.2f} s")  # shown with pytest -s
    return done.returncode, json.loads(done.stdout)


def test_go_client_verifies_the_served_log(tilesclient: Path, served: str, log: Log) -> None:
    code, verdict = _run(tilesclient, served, log)
    assert verdict["errors"] == []
    assert code == 0
    assert verdict["ok"] is True
    assert verdict["origin"] == ORIGIN
    assert verdict["size"] == SIZE
    assert verdict["root"] == base64.b64encode(log.root).decode()
    assert verdict["signers"] == [f"{log.signer.name}+{log.signer.key_id}"]
    assert verdict["checkpoint"] == {"ok": True}
    assert verdict["root_from_tiles"] is True
    assert verdict["inclusion"] == [{"index": i, "ok": True} for i in INDICES]
    assert verdict["consistency"] == {"from": OLD_SIZE, "to": SIZE, "ok": True}
    assert verdict["tlog"] == {"ok": True}


def test_go_client_refuses_a_checkpoint_by_another_key(tilesclient: Path, served: str, log: Log) -> None:
    code, verdict = _run(tilesclient, served, log, vkey=Signer.generate("exchange-audit").verifier_key())
    assert code == 1
    assert verdict["ok"] is False
    assert verdict["checkpoint"]["ok"] is False
    assert "signature" in verdict["checkpoint"]["error"]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _tamper(what: str, directory: Path, log: Log) -> None:
    if what == "leaf hash":  # entry 4's leaf hash in the full level-0 tile 0: entry 5's proof uses it
        _flip(directory / tile_path(0, 0), 4 * 32)
    elif what == "level-1 hash":  # level-0 tile 1's hash in the level-1 tile: the root no longer comes out
        _flip(directory / tile_path(1, 0, SIZE // 256), 32 + 7)
    else:  # a byte of entry 5 in its bundle, after entries 0..4 (each a 2-byte length and its bytes)
        _flip(directory / entries_path(0), sum(2 + len(e) for e in log.entries[:5]) + 2 + 7)


@pytest.mark.parametrize(("what", "failed"), [("leaf hash", "inclusion of 5"), ("level-1 hash", "root from tiles"),
                                              ("entry", "inclusion of 5")])
def test_go_client_detects_a_tampered_tile(tilesclient: Path, log: Log, tmp_path: Path, what: str,
                                           failed: str) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(log.directory, copy)
    _tamper(what, copy, log)
    with TileServer(copy).start() as server:
        code, verdict = _run(tilesclient, server.url, log)
    assert code == 1, f"tampered {what} not detected: {verdict}"
    assert verdict["ok"] is False
    assert any(e.startswith(failed) for e in verdict["errors"]), verdict["errors"]
    assert verdict["checkpoint"] == {"ok": True}  # the checkpoint itself is intact
    assert verdict["tlog"]["ok"] is False  # sumdb/tlog notices too
