"""``exchange audit export`` and ``exchange audit verify --archive`` on a log made on the real broker: the archive
verifies with no broker at all (every decision taken again from the bundles and consent records it holds,
every checkpoint cosigned by a witness), a range of it too, and a tampered archive fails at the exact index."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exchange.audit import read_checkpoints
from exchange.audit.tiles import decode_entry_bundle, encode_entry_bundle
from exchange.consent.manager import ConsentManager
from exchange.crypto.checkpoint import parse_checkpoint
from exchange.crypto.cosignature import Cosigner
from exchange.crypto.keys import Signer
from tests.integration.router_world import RunningRouter, World
from tests.integration.sequencing import sequence

CHECKPOINT_EVERY = 20
OFFLINE = {"EXCHANGE_BOOTSTRAP": "127.0.0.1:1", "EXCHANGE_REGISTRY": "/nonexistent/registry.yaml",
           "EXCHANGE_SCHEMAS": "/nonexistent/schemas"}
"""Verifying an archive must need no broker, registry or schemas of its own."""

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")


@dataclass
class Log:
    world: World
    decisions: list[dict[str, Any]]
    sizes: list[int]
    key_file: Path
    witness: Cosigner


def _exchange(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXCHANGE, *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def log(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Log:
    """Addresses (a quarter protected) and income assessments of one person before a consent, during it and after
    its revocation, routed and sequenced with every checkpoint cosigned by a witness."""
    directory = tmp_path_factory.mktemp("archive")
    world = World.create(bootstrap, directory)
    router = RunningRouter(world, router_id="archive-router", group="archive-routers")
    try:
        records = world.records("population.address-changed", 30, seed=21)
        for n, record in enumerate(records):
            record["address_protected"] = n % 4 == 0
        published = len(world.publish("population-registry", "population.address-changed", records))
        router.wait_events(published)
        person = world.records("tax.income-assessed", 1, seed=22)[0]["person_id"]
        manager = ConsentManager.connect(world.context)
        try:
            def assess(seed: int) -> None:
                nonlocal published
                record = world.records("tax.income-assessed", 2, seed=seed, person_id=person)
                published += len(world.publish("tax-board", "tax.income-assessed", record))
                router.wait_events(published)

            assess(23)
            artefact = manager.grant(person_id=person, recipient="municipal-services", purpose="housing-allowance",
                                     record_types=["tax.income-assessed"],
                                     expiry=datetime.now(UTC) + timedelta(days=30))
            assess(24)
            manager.revoke(artefact.consent_id)
            assess(25)
        finally:
            manager.close()
    finally:
        router.stop()
    decisions = world.decisions()
    cosigner = Cosigner(Signer.generate("witness.test/dpa"))
    settings = world.settings.model_copy(update={"audit_state_dir": directory / "state"})
    log_key = sequence(settings, world.context.keystore, len(decisions), every=CHECKPOINT_EVERY,
                       tiles=directory / "tiles", cosigner=cosigner, witness_dir=directory / "witness")
    key_file = directory / "exchange-audit.vkey"
    key_file.write_text(log_key.key_string() + "\n")
    sizes = [parse_checkpoint(n.decode()[:n.decode().index("\n\n") + 1]).size for n in read_checkpoints(settings)]
    return Log(world, decisions, sizes, key_file, cosigner)


def _export(log: Log, path: Path, *args: str) -> str:
    done = _exchange(log.world.env(), "audit", "export", "--to", str(path), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _verify(log: Log, path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    done = _exchange(OFFLINE, "audit", "verify", "--archive", str(path), "--json", *args)
    return done.returncode, json.loads(done.stdout), done.stderr


def _keys(log: Log) -> tuple[str, ...]:
    return "--log-key", str(log.key_file), "--witness-key", log.witness.verifier_key()


def test_an_exported_archive_verifies_with_no_broker(log: Log, tmp_path: Path) -> None:
    consented = [d for d in log.decisions if d["consent_ref"] is not None and d["outcome"] == "PERMIT"]
    assert consented, "no decision rests on a consent: the consent records would not be exercised"
    assert any(d["restrictions_held"] for d in log.decisions)
    total = len(log.decisions)
    assert log.sizes[-1] == total
    path = tmp_path / "log.zip"
    out = _export(log, path)
    assert f"wrote entries 0 to {total - 1} of " in out
    assert f"{len(log.sizes)} checkpoints up to size {total}" in out
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert names[:5] == ["manifest.json", "entries", "leaf-hashes", "checkpoints", "registry.yaml"]
    assert any(n.startswith("consent/") for n in names)
    assert any(n.startswith("bundles/") for n in names)

    code, result, _ = _verify(log, path, *_keys(log))
    assert code == 0, result
    assert (result["ok"], result["entries"], result["checkpoints"]) == (True, total, len(log.sizes))
    assert result["decisions_reevaluated"] == sum(d["outcome"] != "REJECT" for d in log.decisions)
    assert result["log_key_source"] == "argument"
    assert result["archive"]["checkpoint"]["size"] == total
    assert result["archive"]["witnesses"] == [f"{log.witness.name}+{log.witness.key_id}"]

    code, result, stderr = _verify(log, path)  # the archive's own registry gives the key: said loudly
    assert (code, result["ok"], result["log_key_source"]) == (0, True, "archive")
    assert "WARNING: the log's key was taken from the archive itself" in stderr
    again = tmp_path / "again.zip"
    _export(log, again)
    assert again.read_bytes() == path.read_bytes()  # one log, one archive, byte for byte


def test_a_range_of_the_log_exports_and_verifies(log: Log, tmp_path: Path) -> None:
    """From entry 30 to a point between two checkpoints: the archive ends at the checkpoint before it."""
    assert len(log.sizes) >= 3
    end = log.sizes[-2]
    path = tmp_path / "range.zip"
    _export(log, path, "--from", "30", "--to-index", str(end + 3))
    code, result, _ = _verify(log, path, *_keys(log))
    assert code == 0, result
    assert (result["archive"]["first_index"], result["archive"]["end_index"]) == (30, end)
    assert result["entries"] == end - 30
    assert result["checkpoints"] == len(log.sizes) - 1


def _rewrite(path: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(path) as archive:
        members = {i.filename: archive.read(i) for i in archive.infolist()}
    members[name] = data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    out = path.with_name(f"{path.stem}-{name}-{len(data)}.zip")
    out.write_bytes(buffer.getvalue())
    return out


def test_a_tampered_archive_fails_at_the_exact_index(log: Log, tmp_path: Path) -> None:
    path = tmp_path / "log.zip"
    _export(log, path)
    with zipfile.ZipFile(path) as archive:
        entries = decode_entry_bundle(archive.read("entries"))
    total = len(entries)

    cut = _rewrite(path, "entries", encode_entry_bundle(entries[:-4]))
    code, result, _ = _verify(log, cut, *_keys(log))
    assert code == 1
    assert (result["first_error"]["index"], result["first_error"]["check"]) == (total - 4, "missing index")

    k = total // 2 + 1
    decision_id = log.world.context.catalogue.decode(entries[k])[1]["decision_id"].encode()
    at = entries[k].index(decision_id)
    flipped = [*entries[:k], entries[k][:at] + bytes([entries[k][at] ^ 1]) + entries[k][at + 1:], *entries[k + 1:]]
    code, result, _ = _verify(log, _rewrite(path, "entries", encode_entry_bundle(flipped)), *_keys(log))
    assert code == 1
    assert (result["first_error"]["index"], result["first_error"]["check"]) == (k, "leaf hash")

    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a byte of the zip itself: a member's checksum fails
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(raw))
    code, result, _ = _verify(log, broken, *_keys(log))
    assert (code, result["ok"], result["first_error"]["check"]) == (1, False, "malformed archive")
