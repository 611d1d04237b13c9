"""The access-log sequencer on the real broker: every decision sequenced once with contiguous indices, signed
checkpoints that verify against the replayed tree, a restart that resumes, and a lost state that refuses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from exchange.audit import (
    AUDIT_IDENTITY,
    Sequencer,
    SequencerConfig,
    SequencerStateError,
    verify_log,
)
from exchange.router import RouterConfig, RouterThread, build_router
from exchange.runner import ServiceThread
from exchange.settings import Settings
from tests.integration.router_world import World

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
    finally:
        first.stop()
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
