"""The access-log sequencer on the real broker: every decision sequenced once with contiguous indices, signed
checkpoints that verify against the replayed tree, a restart that resumes, and a lost state that refuses."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from exchange.audit import (
    AUDIT_IDENTITY,
    Sequencer,
    SequencerConfig,
    SequencerStateError,
    TileReader,
    checkpoint_size,
    read_log_entries,
    verify_log,
)
from exchange.crypto.checkpoint import open_checkpoint
from exchange.crypto.cosignature import Cosigner
from exchange.crypto.keys import Signer
from exchange.metrics import REGISTRY
from exchange.router import RouterConfig, RouterThread, build_router
from exchange.runner import ServiceThread
from exchange.settings import Settings
from tests.integration.router_world import World
from tests.integration.sequencing import sequence

TYPES = {"population.person-registered": "population-registry", "tax.income-assessed": "tax-board"}


def _sequencer(world: World, settings: Settings, *, unsafe_trust_log_state: bool = False) -> Sequencer:
    config = SequencerConfig(checkpoint_every=100, checkpoint_interval=0.5, max_batch=100,
                             unsafe_trust_log_state=unsafe_trust_log_state)
    return Sequencer(config, world.context.keystore.signer(AUDIT_IDENTITY), settings=settings)


def _route(world: World, per_type: int, seed: int) -> None:
    before = len(world.read("audit.decisions"))
    count = 0
    for record_type, agency in TYPES.items():
        count += len(world.publish(agency, record_type, world.records(record_type, per_type, seed=seed)))
    router = RouterThread(build_router(RouterConfig(router_id="seq-router", group_id="seq-routers"), world.settings))
    try:
        router.wait_events(count)
    finally:
        router.stop()
    assert len(world.read("audit.decisions")) > before


def _verify(world: World, settings: Settings) -> tuple[int, int]:
    report = verify_log(settings, world.context.registry)
    assert report.first_error is None
    return report.entries, report.checkpoints


def test_every_decision_is_sequenced_once_and_a_restart_resumes(bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path)
    settings = world.settings.model_copy(update={"audit_state_dir": tmp_path / "audit-state"})
    _route(world, per_type=60, seed=1)
    decisions = len(world.read("audit.decisions"))

    first = ServiceThread(_sequencer(world, settings), "sequencer")
    try:
        first.wait_for(lambda s: s.size == decisions and s.signed is not None and s.signed.size == decisions)
        age = REGISTRY.get_sample_value("exchange_checkpoint_age_seconds")
        since = time.time() - first.service._published_at
    finally:
        first.stop()
    assert age is not None
    assert 0 <= age <= since  # the time since the checkpoint just published, read a moment before
    assert _verify(world, settings)[0] == decisions

    _route(world, per_type=30, seed=2)
    total = len(world.read("audit.decisions"))
    second = ServiceThread(_sequencer(world, settings), "sequencer")  # a restart: resumes from the committed state
    assert second.service.size == decisions
    try:
        second.wait_for(lambda s: s.signed is not None and s.signed.size == total)
    finally:
        second.stop()
    entries, checkpoints = _verify(world, settings)
    assert entries == total
    assert checkpoints >= total // 100
    ids = Counter(dict(r.headers)["ce_id"] for r in world.read("audit.log"))
    assert len(ids) == total
    assert set(ids.values()) == {1}  # every decision exactly once


def test_a_lost_state_refuses_to_sign(bootstrap: str, tmp_path: Path) -> None:
    """With its record of what it signed gone, the sequencer refuses to start, unless told loudly to trust the
    log; a state directory from before the last checkpoint (a restored backup) refuses too."""
    world = World.create(bootstrap, tmp_path)
    settings = world.settings.model_copy(update={"audit_state_dir": tmp_path / "audit-state"})
    _route(world, per_type=20, seed=3)
    decisions = len(world.read("audit.decisions"))
    running = ServiceThread(_sequencer(world, settings), "sequencer")
    try:
        running.wait_for(lambda s: s.signed is not None and s.signed.size == decisions)
    finally:
        running.stop()
    (head,) = (tmp_path / "audit-state").glob("*.signed")
    recorded = head.read_text()

    head.unlink()
    with pytest.raises(SequencerStateError, match="missing"):
        _sequencer(world, settings)
    adopted = _sequencer(world, settings, unsafe_trust_log_state=True)
    assert adopted.size == decisions
    assert head.read_text() == recorded

    head.write_text(f"{decisions + 5}\n{recorded.splitlines()[1]}\n")  # a head the log never reached
    with pytest.raises(SequencerStateError, match="behind"):
        _sequencer(world, settings)


def test_checkpoints_are_tiled_and_cosigned_by_a_witness(bootstrap: str, tmp_path: Path) -> None:
    """With a tiles directory and a witness, every published checkpoint carries the witness's cosignature
    (checked with its key), the tiles hold every entry, and the served checkpoint is the last one published."""
    world = World.create(bootstrap, tmp_path)
    settings = world.settings.model_copy(update={"audit_state_dir": tmp_path / "audit-state"})
    _route(world, per_type=40, seed=4)
    decisions = len(world.read("audit.decisions"))
    cosigner = Cosigner(Signer.generate("witness.test/dpa"))
    tiles = tmp_path / "tiles"
    log_verifier = sequence(settings, world.context.keystore, decisions, every=50, tiles=tiles, cosigner=cosigner,
                            witness_dir=tmp_path / "witness")
    notes = [r.value or b"" for r in world.read("audit.checkpoints")]
    assert len(notes) >= decisions // 50
    witness_key = cosigner.verifier()
    for note in notes:
        open_checkpoint(note, [log_verifier], origin=settings.audit_origin)  # the log's signature
        open_checkpoint(note, [witness_key])  # the witness's alone: it cosigned every one
    reader = TileReader(tiles)
    assert checkpoint_size(tiles) == decisions
    assert [reader.entry(i, decisions) for i in range(decisions)] == [v for _, v in _log_values(settings)]
    assert _verify(world, settings)[0] == decisions


def _log_values(settings: Settings) -> list[tuple[int, bytes]]:
    return read_log_entries(settings)
