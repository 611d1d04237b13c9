"""``exchange audit prove`` and ``check-proof`` on a log the sequencer wrote on the real broker: an entry proved
from the tiles against the newest cosigned checkpoint and checked offline with the log's and the witness's keys,
a consistency proof between two published checkpoints, and tampered proofs and a wrong entry refused."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

from exchange.audit import read_log_entries
from exchange.audit.proof import parse_consistency_proof, parse_proof
from exchange.crypto.checkpoint import open_checkpoint
from exchange.crypto.cosignature import Cosigner
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import HASH_SIZE
from exchange.crypto.note import Verifier
from exchange.router import RouterConfig, RouterThread, build_router
from exchange.settings import Settings
from tests.integration.router_world import World
from tests.integration.sequencing import sequence

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
TYPES = {"population.person-registered": "population-registry", "tax.income-assessed": "tax-board"}
OFFLINE = {"EXCHANGE_BOOTSTRAP": "127.0.0.1:1"}  # check-proof must never need a broker


def _exchange(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXCHANGE, *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=180, check=False)


def _route(world: World, per_type: int) -> int:
    count = 0
    for record_type, agency in TYPES.items():
        count += len(world.publish(agency, record_type, world.records(record_type, per_type, seed=7)))
    router = RouterThread(build_router(RouterConfig(router_id="proof-router", group_id="proof-routers"),
                                       world.settings))
    try:
        router.wait_events(count)
    finally:
        router.stop()
    return len(world.read("audit.decisions"))


def _sequence(world: World, settings: Settings, tiles: Path, cosigner: Cosigner, decisions: int) -> Verifier:
    """Sequence every decision into tiles, every checkpoint cosigned by a witness; returns the log's key."""
    return sequence(settings, world.context.keystore, decisions, every=40, tiles=tiles, cosigner=cosigner,
                    witness_dir=world.directory / "witness")


def _with_line(path: Path, number: int, line: str) -> Path:
    lines = path.read_text().split("\n")
    lines[number] = line
    altered = path.with_suffix(".altered")
    altered.write_text("\n".join(lines))
    return altered


def test_an_entry_is_proved_from_the_tiles_and_checked_offline(bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path)
    settings = world.settings.model_copy(update={"audit_state_dir": tmp_path / "audit-state"})
    decisions = _route(world, per_type=50)
    tiles = tmp_path / "tiles"
    cosigner = Cosigner(Signer.generate("witness.test/dpa"))
    log_key = _sequence(world, settings, tiles, cosigner, decisions)
    key_file = tmp_path / "exchange-audit.vkey"
    key_file.write_text(log_key.key_string() + "\n")
    keys = ["--log-key", str(key_file), "--witness-key", cosigner.verifier_key()]
    logged = dict(read_log_entries(settings))
    assert len(logged) == decisions

    index = decisions // 2 + 1
    proof, entry = tmp_path / f"{index}.tlog-proof", tmp_path / f"{index}.entry"
    done = _exchange(world.env(), "audit", "prove", "--index", str(index), "--tiles", str(tiles), "--out",
                     str(proof), "--entry-out", str(entry))
    assert done.returncode == 0, done.stderr
    assert entry.read_bytes() == logged[index]  # the entry as it is in audit.log
    parsed = parse_proof(proof.read_bytes())
    assert parsed.checkpoint == (tiles / "checkpoint").read_text()  # the newest, with its cosignature
    assert open_checkpoint(parsed.checkpoint, [log_key], origin=settings.audit_origin).size == decisions

    checked = _exchange(OFFLINE, "audit", "check-proof", str(proof), *keys, "--entry", str(entry))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"ok: entry {index} (leaf hash ")
    assert f"of size {decisions} " in checked.stdout
    assert f"cosigned by {cosigner.name}+{cosigner.key_id}; the entry matches" in checked.stdout

    middle = len(parsed.hashes) // 2
    flipped = bytes([parsed.hashes[middle][0] ^ 1]) + parsed.hashes[middle][1:]
    tampered = _with_line(proof, 3 + middle, base64.b64encode(flipped).decode())  # after header, extra, index
    refused = _exchange(OFFLINE, "audit", "check-proof", str(tampered), *keys, "--entry", str(entry))
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"FAILED: inclusion proof for leaf {index} of {decisions} leads to root")

    other = tmp_path / "other.entry"
    other.write_bytes(logged[index + 1])
    wrong = _exchange(OFFLINE, "audit", "check-proof", str(proof), *keys, "--entry", str(other))
    assert wrong.returncode == 1
    assert wrong.stdout.startswith("FAILED: the entry's leaf hash is")
    unwitnessed = _exchange(OFFLINE, "audit", "check-proof", str(proof), "--log-key", str(key_file),
                            "--witness-key", Cosigner(Signer.generate("witness.test/other")).verifier_key())
    assert unwitnessed.returncode == 1
    assert "has no cosignature by the witness witness.test/other" in unwitnessed.stdout

    beyond = _exchange(world.env(), "audit", "prove", "--index", str(decisions), "--tiles", str(tiles))
    assert beyond.returncode == 2
    assert "not in the newest checkpoint" in beyond.stderr

    # Consistency between the first and the last published checkpoint, both cosigned.
    sizes = [open_checkpoint(r.value or b"", [log_key]).size for r in world.read("audit.checkpoints")]
    assert len(sizes) >= 2
    old, new = sizes[0], sizes[-1]
    consistency = tmp_path / f"{old}-{new}.proof"
    done = _exchange(world.env(), "audit", "prove", "--consistency", str(old), str(new), "--tiles", str(tiles),
                     "--out", str(consistency))
    assert done.returncode == 0, done.stderr
    assert parse_consistency_proof(consistency.read_bytes()).hashes
    checked = _exchange(OFFLINE, "audit", "check-proof", str(consistency), *keys, "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f'"old": {{"size": {old}, ' in checked.stdout
    assert f'"new": {{"size": {new}, ' in checked.stdout
    tampered = _with_line(consistency, 3, "A" * 43 + "=")  # a hash of zeros for the first one
    assert len(parse_consistency_proof(tampered.read_bytes()).hashes[0]) == HASH_SIZE
    refused = _exchange(OFFLINE, "audit", "check-proof", str(tampered), *keys)
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"FAILED: consistency proof {old} -> {new} leads to")
