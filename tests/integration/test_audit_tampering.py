"""Tampering with a copy of the access log, one kind at a time: the verifier stops at the exact index, with the
right check, every time.

The log is made on the real broker: events routed (protected addresses, and income assessments before a consent,
during it and after its revocation), sequenced with tiles. Each test alters an in-memory copy of the sequenced
entries or checkpoints and replays it against what the cluster holds (bundles, consent log, ingress records) with
the tiles as the signed tree's second copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exchange.audit import AUDIT_IDENTITY, Sequencer, SequencerConfig, TileReader, read_checkpoints, read_log_entries
from exchange.audit.names import H_INDEX
from exchange.audit.sources import LogSources
from exchange.audit.verify import Discrepancy, IntegrityReport
from exchange.consent.manager import ConsentManager
from exchange.crypto.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from exchange.runner import ServiceThread
from exchange.schemas import Catalogue
from tests.integration.router_world import RunningRouter, World

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
CONSENTED = {"recipient": "municipal-services", "purpose": "housing-allowance", "type": "tax.income-assessed"}
PROTECTED = "population.address-changed"


@dataclass
class Log:
    world: World
    tiles: Path
    entries: list[tuple[int, bytes]]
    notes: list[bytes]
    sources: LogSources

    @property
    def catalogue(self) -> Catalogue:
        return self.world.context.catalogue

    def decoded(self, index: int) -> dict[str, Any]:
        return dict(self.catalogue.decode(self.entries[index][1])[1])

    def encode(self, entry: dict[str, Any]) -> bytes:
        return self.catalogue.current("exchange.decision").encode(entry)

    def find(self, matches: Callable[[dict[str, Any]], bool]) -> int:
        return next(i for i in range(len(self.entries)) if matches(self.decoded(i)))

    def verify(self, entries: list[tuple[int, bytes]] | None = None,
               notes: list[bytes] | None = None) -> IntegrityReport:
        world = self.world
        verifiers = world.context.registry.note_verifiers(datetime.now(UTC), identities=[AUDIT_IDENTITY])
        copy = self.entries if entries is None else entries
        return self.sources.verify(copy, self.notes if notes is None else notes, verifiers,
                                   world.settings.audit_origin, reference=TileReader(self.tiles))

    def first_error(self, entries: list[tuple[int, bytes]] | None = None,
                    notes: list[bytes] | None = None) -> Discrepancy:
        error = self.verify(entries, notes).first_error
        assert error is not None, "the tampered copy verified"
        return error


@pytest.fixture(scope="module")
def log(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    directory = tmp_path_factory.mktemp("tampering")
    world = World.create(bootstrap, directory)
    router = RunningRouter(world, router_id="tamper-router", group="tamper-routers")
    published = 0
    try:
        # Addresses, some protected: the restriction holds on those, and the entries record it.
        records = world.records(PROTECTED, 40, seed=11)
        for n, record in enumerate(records):
            record["address_protected"] = n % 4 == 0
        published += len(world.publish("population-registry", PROTECTED, records))
        router.wait_events(published)
        person = world.records(CONSENTED["type"], 1, seed=12)[0]["person_id"]
        manager = ConsentManager.connect(world.context)
        try:
            def assess(seed: int) -> None:
                nonlocal published
                record = world.records(CONSENTED["type"], 1, seed=seed, person_id=person)
                published += len(world.publish("tax-board", CONSENTED["type"], record))
                router.wait_events(published)

            assess(13)  # no consent yet
            artefact = manager.grant(person_id=person, recipient=CONSENTED["recipient"],
                                     purpose=CONSENTED["purpose"], record_types=[CONSENTED["type"]],
                                     expiry=datetime.now(UTC) + timedelta(days=30))
            assess(14)  # with consent
            manager.revoke(artefact.consent_id)
            assess(15)  # after the revocation
        finally:
            manager.close()
    finally:
        router.stop()
    decisions = len(world.read("audit.decisions"))
    settings = world.settings.model_copy(update={"audit_state_dir": directory / "state"})
    tiles = directory / "tiles"
    config = SequencerConfig(checkpoint_every=25, checkpoint_interval=0.5, max_batch=25, tiles_dir=tiles)
    sequencer = ServiceThread(Sequencer(config, world.context.keystore.signer(AUDIT_IDENTITY), settings=settings),
                              "sequencer")
    try:
        sequencer.wait_for(lambda s: s.signed is not None and s.signed.size == decisions)
    finally:
        sequencer.stop()
    sources = LogSources.read(world.settings, world.context.registry, world.context.catalogue)
    try:
        yield Log(world, tiles, read_log_entries(world.settings), read_checkpoints(world.settings), sources)
    finally:
        sources.close()


def _consent_entries(log: Log) -> tuple[int, int]:
    """The index of the PERMIT under the consent, and of the DENY after its revocation."""
    def consented(entry: dict[str, Any]) -> bool:
        return entry["recipient"] == CONSENTED["recipient"] and entry["purpose"] == CONSENTED["purpose"]
    permit = log.find(lambda e: consented(e) and e["outcome"] == "PERMIT")
    revoked = log.find(lambda e: consented(e) and "CONSENT_REVOKED" in e["reason_codes"])
    return permit, revoked


def _renumbered(values: list[bytes]) -> list[tuple[int, bytes]]:
    return list(enumerate(values))


def test_the_untouched_log_verifies_and_every_decision_is_taken_again(log: Log) -> None:
    report = log.verify()
    assert report.first_error is None
    assert report.entries == len(log.entries) > 100
    assert report.checkpoints == len(log.notes) >= len(log.entries) // 25
    outcomes = [log.decoded(i)["outcome"] for i in range(len(log.entries))]
    assert report.decisions_reevaluated == sum(1 for o in outcomes if o != "REJECT") == len(outcomes)
    held = [log.decoded(i)["restrictions_held"] for i in range(len(log.entries))]
    assert ["protected-address"] in held  # the facts the decisions rest on are recorded
    assert [] in held
    permit, revoked = _consent_entries(log)
    assert permit < revoked


@pytest.mark.parametrize("position", [0, 3, 17, 40, 77, 101, -40, -9, -1])
def test_a_flipped_byte_is_found_at_its_entry(log: Log, position: int) -> None:
    k = len(log.entries) // 2 + 3
    index, value = log.entries[k]
    flipped = bytearray(value)
    flipped[position] ^= 0x01
    copy = [*log.entries[:k], (index, bytes(flipped)), *log.entries[k + 1:]]
    error = log.first_error(copy)
    assert error.index == k
    assert error.check in {"not a decision entry", "event mismatch", "decision not supported", "leaf hash"}


def test_a_dropped_entry_is_found(log: Log) -> None:
    k = 30
    assert log.first_error([*log.entries[:k], *log.entries[k + 1:]]) == Discrepancy(
        k, "missing index", f"expected index {k}, found {k + 1}")
    # Renumbered so that the indices run on: the signed tree still names the first entry that differs.
    error = log.first_error(_renumbered([v for i, v in log.entries if i != k]))
    assert (error.index, error.check) == (k, "leaf hash")


def test_a_duplicated_entry_is_found(log: Log) -> None:
    k = 41
    assert log.first_error([*log.entries[:k + 1], log.entries[k], *log.entries[k + 1:]]).check == "duplicate index"
    values = [v for _, v in log.entries]
    error = log.first_error(_renumbered([*values[:k + 1], values[k], *values[k + 1:]]))
    assert (error.index, error.check) == (k + 1, "leaf hash")


def test_two_reordered_entries_are_found(log: Log) -> None:
    k = 52
    values = [v for _, v in log.entries]
    values[k], values[k + 1] = values[k + 1], values[k]
    error = log.first_error(_renumbered(values))
    assert (error.index, error.check) == (k, "leaf hash")


def test_a_forged_entry_is_found(log: Log) -> None:
    """A decision that never happened, made to look like a real one: a copy of another event's entry with a
    fresh decision id, inserted and the indices renumbered."""
    k = 63
    forged = log.decoded(10)
    forged["decision_id"] = forged["decision_id"][:-4] + "beef"
    values = [v for _, v in log.entries]
    error = log.first_error(_renumbered([*values[:k], log.encode(forged), *values[k:]]))
    assert (error.index, error.check) == (k, "leaf hash")


def test_an_altered_checkpoint_is_refused(log: Log) -> None:
    notes = list(log.notes)
    text = notes[2].decode()
    lines = text.split("\n")
    lines[1] = str(int(lines[1]) + 1)  # its size
    notes[2] = "\n".join(lines).encode()
    error = log.first_error(notes=notes)
    assert error.check == "bad checkpoint signature"
    assert "checkpoint 2" in error.detail


def test_a_split_view_is_found_at_its_size(log: Log) -> None:
    """A checkpoint validly signed with the log's own key over another root: a second, forked view."""
    genuine = parse_checkpoint(log.notes[3].decode().split("\n\n")[0] + "\n")
    other = Checkpoint(genuine.origin, genuine.size, bytes(32))
    forged = sign_checkpoint(other, [log.world.context.keystore.signer(AUDIT_IDENTITY)]).encode()
    error = log.first_error(notes=[*log.notes[:4], forged, *log.notes[4:]])
    assert (error.index, error.check) == (genuine.size - 1, "root mismatch")


def test_a_permit_after_the_revocation_is_found(log: Log) -> None:
    """The DENY after a revocation, edited into a PERMIT of what the consent once allowed."""
    permit, revoked = _consent_entries(log)
    entry = log.decoded(revoked)
    entry.update(outcome="PERMIT", reason_codes=[], fields_released=log.decoded(permit)["fields_released"])
    copy = list(log.entries)
    copy[revoked] = (revoked, log.encode(entry))
    error = log.first_error(copy)
    assert (error.index, error.check) == (revoked, "decision not supported")
    assert "CONSENT_REVOKED" in error.detail


def test_a_field_outside_the_agreement_is_found(log: Log) -> None:
    k = log.find(lambda e: e["outcome"] == "PERMIT" and e["event_type"] == PROTECTED)
    entry = log.decoded(k)
    entry["fields_released"] = [*entry["fields_released"], "given_name"]
    copy = list(log.entries)
    copy[k] = (k, log.encode(entry))
    error = log.first_error(copy)
    assert (error.index, error.check) == (k, "decision not supported")
    assert "given_name" in error.detail


def test_a_restricted_field_to_an_unlisted_recipient_is_found(log: Log) -> None:
    """A protected address, claimed as released to a recipient the restriction does not except."""
    k = log.find(lambda e: e["outcome"] == "PERMIT" and e["restrictions_held"] == ["protected-address"]
                 and e["recipient"] not in {"police-board", "population-registry"})
    entry = log.decoded(k)
    assert "street_address" not in entry["fields_released"]
    entry["fields_released"] = [*entry["fields_released"], "street_address"]
    copy = list(log.entries)
    copy[k] = (k, log.encode(entry))
    error = log.first_error(copy)
    assert (error.index, error.check) == (k, "decision not supported")
    assert "street_address" in error.detail


def test_facts_that_are_not_the_events_are_found(log: Log) -> None:
    """An entry that hides that a restriction held, while the event is still retained to contradict it."""
    k = log.find(lambda e: e["restrictions_held"] == ["protected-address"])
    entry = log.decoded(k)
    entry["restrictions_held"] = []
    copy = list(log.entries)
    copy[k] = (k, log.encode(entry))
    error = log.first_error(copy)
    assert (error.index, error.check) == (k, "event mismatch")


def test_an_unknown_bundle_is_found(log: Log) -> None:
    k = 5
    entry = log.decoded(k)
    entry["bundle_id"] = "sha256:" + "0" * 64
    copy = list(log.entries)
    copy[k] = (k, log.encode(entry))
    error = log.first_error(copy)
    assert (error.index, error.check) == (k, "unknown bundle")


def _verify_cli(log: Log) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, **log.world.env(), "EXCHANGE_AUDIT_TILES_DIR": str(log.tiles)}
    done = subprocess.run([EXCHANGE, "audit", "verify", "--json"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_command_verifies_the_log_and_finds_a_forged_entry_appended_to_it(log: Log) -> None:
    """`exchange audit verify --json` over the log on the cluster; then a PERMIT, forged from the DENY after the
    revocation, written to audit.log behind the sequencer's back with the next index: no checkpoint covers it
    yet, and the re-evaluation refuses it. (Last in this module: it changes the shared log.)"""
    code, result = _verify_cli(log)
    assert code == 0
    assert result == {"log": "audit.log", "entries": len(log.entries), "checkpoints": len(log.notes),
                      "decisions_reevaluated": len(log.entries), "ok": True, "first_error": None}

    permit, revoked = _consent_entries(log)
    forged = log.decoded(revoked)
    forged.update(outcome="PERMIT", reason_codes=[], fields_released=log.decoded(permit)["fields_released"])
    index = len(log.entries)
    producer = log.world.raw_producer()
    producer.produce("audit.log", log.encode(forged), str(index).encode(), partition=0,
                     headers=[(H_INDEX, str(index).encode())])
    producer.flush()
    code, result = _verify_cli(log)
    assert code == 1
    assert result["ok"] is False
    assert result["entries"] == index  # the forged entry is the one it stopped at
    assert (result["first_error"]["index"], result["first_error"]["check"]) == (index, "decision not supported")
    assert "CONSENT_REVOKED" in result["first_error"]["detail"]
