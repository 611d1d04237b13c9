"""The offline archive of the access log: written from decisions taken as the router takes them, read back within
limits, and every kind of tampering refused with the exact index and the check that failed."""

from __future__ import annotations

import argparse
import io
import json
import uuid
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from exchange.audit.archive import (
    ArchiveContents,
    ArchiveLimitError,
    ArchiveLimits,
    ArchiveMemberError,
    MalformedArchiveError,
    Record,
    read_archive,
    write_archive,
)
from exchange.audit.archive_check import ArchiveReport, verify_archive
from exchange.audit.reevaluate import ConsentReplay
from exchange.cli._archive import add_archive_arguments, register_export, verify_archive_command
from exchange.consent import encode_artefact, sign_artefact
from exchange.consent.signing import ConsentVerifier
from exchange.context import type_infos
from exchange.crypto.checkpoint import Checkpoint, sign_checkpoint
from exchange.crypto.cosignature import Cosigner
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.crypto.note import Verifier
from exchange.policy import (
    ConsentArtefact,
    ConsentStatus,
    EventFacts,
    PolicyIndex,
    compile_policies,
    conditions_held,
    decide,
    held_restrictions,
    load_policies,
)
from exchange.router.entries import EntryWriter
from exchange.schemas import Catalogue
from tests.unit.delivery.support import T0, Keys, signed_events

ROOT = Path(__file__).resolve().parents[3]
ORIGIN = "test.local/access-log"
TYPE = "tax.income-assessed"
SIZES = (16, 50, 90)
WITNESS = Cosigner(Signer.generate("witness.test/w1"))


@dataclass(frozen=True)
class World:
    """A log of real decisions (two bundles, consent granted and revoked on two partitions), signed."""

    catalogue: Catalogue
    registry: bytes
    signer: Signer
    log_key: Verifier
    entries: list[bytes]
    decoded: list[dict[str, Any]]
    notes: list[str]
    bundles: list[bytes]
    records: dict[int, list[Record]]
    artefacts: dict[int, list[ConsentArtefact]]
    schemas: dict[str, bytes]

    def contents(self, first: int = 0, **changes: Any) -> ArchiveContents:
        base = ArchiveContents(ORIGIN, first, self.entries[first:], [leaf_hash(e) for e in self.entries],
                               self.notes, self.registry, self.schemas, self.bundles, self.records)
        return replace(base, **changes)


def _artefact(subject: str, consent_id: str, version: int = 1,
              status: ConsentStatus = ConsentStatus.ACTIVE) -> ConsentArtefact:
    return ConsentArtefact.model_validate({
        "consent_id": consent_id, "version": version, "subject": subject, "recipient": "municipal-services",
        "purpose": "housing-allowance", "record_types": (TYPE,), "start": T0 - timedelta(days=1),
        "expiry": T0 + timedelta(days=365), "status": status,
        "issued_at": T0 - timedelta(days=1) + timedelta(minutes=version)})


def _signed(records: list[ConsentArtefact], signer: Signer, catalogue: Catalogue) -> list[Record]:
    encoded = [encode_artefact(catalogue, sign_artefact(a, signer)) for a in records]
    return [(offset, m.key, m.value) for offset, m in enumerate(encoded)]


def _notes(entries: list[bytes], signer: Signer, sizes: tuple[int, ...]) -> list[str]:
    tree, notes = CompactTree(), []
    for entry in entries:
        tree.append(leaf_hash(entry))
        if tree.size in sizes:
            notes.append(sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), [signer]))
    return notes


@pytest.fixture(scope="module")
def world() -> World:
    """40 income assessments on two partitions; the first 25 under every agreement, the rest under a bundle
    without the statistics office's; consent granted to seven subjects, and one grant revoked, as they go."""
    catalogue = Catalogue.load(ROOT / "schemas")
    keys = Keys()
    registry = keys.registry()
    policies = load_policies(ROOT / "policies")
    agencies, types, canonical = [a.id for a in registry.agencies], type_infos(catalogue), registry.canonical()
    fewer = policies.model_copy(update={"agreements": [a for a in policies.agreements
                                                       if a.id != "sto-income-assessed-statistics"]})
    indexes = [compile_policies(p, types, agencies, canonical) for p in (policies, fewer)]
    events = signed_events(catalogue, keys, registry, TYPE, 40, seed=5)
    ids = {i: str(uuid.uuid4()) for i in (3, 5, 8, 9, 14, 20, 31)}
    # Each consent on its subject's partition (that of the subject's event), written before the event is routed.
    schedule = {i - 3: [(i % 2, _artefact(events[i].key.decode(), c))] for i, c in ids.items()}
    schedule[10] = [(1, _artefact(events[9].key.decode(), ids[9], 2, ConsentStatus.REVOKED))]
    artefacts: dict[int, list[ConsentArtefact]] = {0: [], 1: []}
    writer = EntryWriter("router-t", catalogue, frozenset({"tax-board"}), frozenset({TYPE}))
    entries: list[bytes] = []
    for i, event in enumerate(events):
        for on, artefact in schedule.get(i, []):
            artefacts[on].append(artefact)
        partition = i % 2
        records = {p: _signed(a, keys.signers["exchange-consent"], catalogue) for p, a in artefacts.items()}
        seen = len(records[partition])
        index: PolicyIndex = indexes[0 if i < 25 else 1]
        facts = EventFacts(event.attributes.id, TYPE, event.attributes.source, event.time, event.key.decode(),
                           event.record)
        fired = conditions_held(index, facts)
        held = held_restrictions(index, TYPE, fired) if fired else ()
        view = ConsentReplay(catalogue, ConsentVerifier(registry), records).at(partition, seen)
        for decision in decide(index, facts, view, fired):
            value, _ = writer.decision(event, decision, topic=f"ingress.{TYPE}", partition=partition, offset=i // 2,
                                       now=T0 + timedelta(seconds=i), held=held, consent_offset=seen)
            entries.append(value)
    signer = keys.signers["exchange-audit"]
    notes = _notes(entries, signer, (*SIZES, len(entries)))
    notes[-1] += WITNESS.cosign(notes[-1][:notes[-1].index("\n\n") + 1], 1_780_000_000).line()
    return World(catalogue, yaml.safe_dump(registry.document.model_dump(mode="json")).encode(), signer,
                 Verifier(signer.name, signer.public_key), entries, [catalogue.decode(e)[1] for e in entries], notes,
                 [i.bundle.data for i in indexes], {p: _signed(a, keys.signers["exchange-consent"], catalogue)
                                                    for p, a in artefacts.items()}, artefacts,
                 {p.relative_to(ROOT / "schemas").as_posix(): p.read_bytes()
                  for p in sorted((ROOT / "schemas").rglob("*.avsc"))})


def _check(world: World, contents: ArchiveContents, tmp_path: Path, *, keys: tuple[Verifier, ...] | None = None,
           witnesses: tuple[Verifier, ...] = ()) -> ArchiveReport:
    """Write the archive, read it back and verify it."""
    path = tmp_path / "log.zip"
    write_archive(path, contents)
    return verify_archive(read_archive(path), (world.log_key,) if keys is None else keys, witnesses, now=T0)


def _where(report: ArchiveReport) -> tuple[int | None, str] | None:
    error = report.first_error
    return None if error is None else (error.index, error.check)


def _first(world: World, condition: Callable[[Mapping[str, Any]], bool], start: int = 0) -> int:
    return next(i for i, e in enumerate(world.decoded) if i >= start and condition(e))


@pytest.mark.parametrize("first", [0, 30])
def test_a_good_archive_verifies_and_is_written_the_same_twice(world: World, tmp_path: Path, first: int) -> None:
    report = _check(world, world.contents(first), tmp_path, witnesses=(WITNESS.verifier(),))
    assert report.first_error is None
    assert report.checkpoint is not None
    assert (report.checkpoint.size, report.log_key_source) == (len(world.entries), "argument")
    assert report.integrity.checkpoints == len(SIZES) + 1  # those before the first entry too, against the hashes
    assert report.integrity.decisions_reevaluated == len(world.entries) - first
    assert report.witnesses == (f"{WITNESS.name}+{WITNESS.key_id}",)
    again = tmp_path / "again.zip"
    write_archive(again, world.contents(first))
    assert again.read_bytes() == (tmp_path / "log.zip").read_bytes()
    by_itself = verify_archive(read_archive(again), now=T0)  # the archive's own registry gives the log key
    assert (by_itself.ok, by_itself.log_key_source) == (True, "archive")


def _flip_id(world: World, index: int) -> bytes:
    """Entry ``index`` with one character of its decision id changed: still a decision the bundle supports."""
    entry, decision_id = world.entries[index], world.decoded[index]["decision_id"].encode()
    at = entry.index(decision_id)
    return entry[:at] + (b"0" if decision_id[:1] != b"0" else b"1") + entry[at + 1:]


@pytest.mark.parametrize("first", [0, 30])
def test_entries_dropped_duplicated_reordered_altered_or_cut_off_are_named(world: World, tmp_path: Path,
                                                                            first: int) -> None:
    entries, k, end = world.entries, 60, len(world.entries)
    cases = {
        "tail": (entries[first:end - 5], (end - 5, "missing index")),
        "dropped": ([*entries[first:k], *entries[k + 1:]], (k, "leaf hash")),
        "duplicated": ([*entries[first:k + 1], entries[k], *entries[k + 1:]], (k + 1, "leaf hash")),
        "reordered": ([*entries[first:k], entries[k + 1], entries[k], *entries[k + 2:]], (k, "leaf hash")),
        "altered": ([*entries[first:k], _flip_id(world, k), *entries[k + 1:]], (k, "leaf hash")),
        "appended": ([*entries[first:], entries[0]], (end, "missing checkpoint")),
    }
    for name, (changed, expected) in cases.items():
        assert _where(_check(world, world.contents(first, entries=changed), tmp_path)) == expected, name


def test_a_forged_decision_is_refused_by_the_reevaluation(world: World, tmp_path: Path) -> None:
    """An entry made to release a field its agreement does not: named before any checkpoint is reached."""
    k = _first(world, lambda e: e["outcome"] == "PERMIT" and "person_id" not in e["fields_released"], 40)
    schema, record = world.catalogue.decode(world.entries[k])
    forged = world.catalogue.encode(schema, {**record, "fields_released": [*record["fields_released"], "person_id"]})
    entries = [*world.entries[:k], forged, *world.entries[k + 1:]]
    assert _where(_check(world, world.contents(entries=entries), tmp_path)) == (k, "decision not supported")


def test_a_missing_bundle_or_consent_record_is_named_at_the_first_decision_that_needs_it(
        world: World, tmp_path: Path) -> None:
    second = _first(world, lambda e: e["bundle_id"] == world.decoded[-1]["bundle_id"])
    report = _check(world, world.contents(bundles=world.bundles[:1]), tmp_path)
    assert _where(report) == (second, "unknown bundle")
    assert "is missing or altered" in str(report.first_error)
    for partition, gap in ((1, 0), (1, 2), (0, len(world.records[0]) - 1)):
        records = {**world.records, partition: [r for r in world.records[partition] if r[0] != gap]}
        needing = _first(world, _reads(partition, gap))
        report = _check(world, world.contents(consent=records), tmp_path)
        assert _where(report) == (needing, "missing consent record"), (partition, gap)
        assert f"lacks its record at offset {gap}" in str(report.first_error)
    alone = {0: world.records[0]}  # a whole partition's member removed
    needing = _first(world, _reads(1, 0))
    assert _where(_check(world, world.contents(consent=alone), tmp_path)) == (needing, "missing consent record")


def _reads(partition: int, offset: int) -> Callable[[Mapping[str, Any]], bool]:
    """A decision that saw consent partition ``partition`` past ``offset``."""
    return lambda e: e["ingress_partition"] == partition and e["consent_offset"] > offset


def test_consent_signed_by_a_key_no_bundle_lists_does_not_count(world: World, tmp_path: Path) -> None:
    """An archive whose registry and consent records were replaced with another consent key: the first decision
    that rests on a consent is no longer supported."""
    forger = Signer.generate("exchange-consent")
    document = yaml.safe_load(world.registry)
    for service in document["services"]:
        if service["id"] == "exchange-consent":
            service["signing_keys"][0] |= {"key_id": forger.key_id, "public_key": forger.verifier_key()}
    records = {p: _signed(a, forger, world.catalogue) for p, a in world.artefacts.items()}
    consented = _first(world, lambda e: e["consent_ref"] is not None)
    contents = world.contents(registry=yaml.safe_dump(document).encode(), consent=records)
    assert _where(_check(world, contents, tmp_path)) == (consented, "decision not supported")


def test_checkpoints_removed_altered_or_signed_by_another_key(world: World, tmp_path: Path) -> None:
    notes, end = world.notes, len(world.entries)
    stranger = Signer.generate("exchange-audit")
    other = [*world.entries[:20], world.entries[21], *world.entries[21:]]  # another tree, validly signed
    cases = {
        "covering removed": (notes[:-1], (SIZES[-1], "missing checkpoint")),
        "all removed": ([], (0, "missing checkpoint")),
        "altered": ([*notes[:-1], notes[-1].replace(f"\n{end}\n", f"\n{end + 1}\n")],
                    (None, "bad checkpoint signature")),
        "another key": ([*notes[:-1], *_notes(world.entries, stranger, (end,))], (None, "bad checkpoint signature")),
        "split view": ([*notes[:-1], *_notes(other, world.signer, (end,))], (end - 1, "root mismatch")),
    }
    for name, (changed, expected) in cases.items():
        assert _where(_check(world, world.contents(checkpoints=changed), tmp_path)) == expected, name
    stranger_key = Verifier(stranger.name, stranger.public_key)
    assert _where(_check(world, world.contents(), tmp_path, keys=(stranger_key,))) == (None,
                                                                                       "bad checkpoint signature")
    absent = Cosigner(Signer.generate("witness.test/w2")).verifier()
    assert _where(_check(world, world.contents(), tmp_path, witnesses=(absent,))) == (None, "missing cosignature")


@pytest.mark.parametrize(("where", "expected"), [(10, (15, "root mismatch")), (20, (49, "root mismatch")),
                                                  (70, (70, "leaf hash"))])
def test_altered_leaf_hashes_are_caught(world: World, tmp_path: Path, where: int,
                                        expected: tuple[int, str]) -> None:
    """Before the first entry (30) the leaf hashes are checked against each checkpoint they reach; after it,
    against the entries."""
    hashes = [leaf_hash(e) for e in world.entries]
    hashes[where] = bytes(32)
    assert _where(_check(world, world.contents(30, leaf_hashes=hashes), tmp_path)) == expected
    assert _where(_check(world, world.contents(30, leaf_hashes=hashes[:29]), tmp_path)) == (29, "missing index")


def test_the_manifest_is_not_trusted(world: World, tmp_path: Path) -> None:
    """Edited sizes are reported as notes only; a first index that lies shifts every entry and is caught."""
    path = tmp_path / "log.zip"
    write_archive(path, world.contents(30))
    manifest = json.loads(_members(path)["manifest.json"])
    manifest["members"][0]["size"] += 1
    _rezip(path, {"manifest.json": json.dumps(manifest).encode()})
    contents = read_archive(path)
    assert contents.manifest_notes == ("entries differs from the manifest's size or SHA-256",)
    assert verify_archive(contents, [world.log_key], now=T0).ok
    manifest["first_index"] = 31
    _rezip(path, {"manifest.json": json.dumps(manifest).encode()})
    assert _where(verify_archive(read_archive(path), [world.log_key], now=T0)) == (31, "leaf hash")


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist()}


def _rezip(path: Path, changes: Mapping[str, bytes | None], extra: tuple[tuple[str, bytes], ...] = ()) -> Path:
    """The archive with members replaced (None: removed) and ``extra`` ones added, written anew."""
    members = _members(path)
    with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name, which one case writes on purpose
        for name, data in members.items():
            replaced = changes.get(name, data)
            if replaced is not None:
                archive.writestr(name, replaced)
        for name, data in extra:
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(("changes", "extra", "error", "match"), [
    ({}, (("../evil.avsc", b"x"),), MalformedArchiveError, "unsafe name"),
    ({}, (("schemas/../../evil.avsc", b"x"),), MalformedArchiveError, "unsafe name"),
    ({}, (("/etc/passwd", b"x"),), MalformedArchiveError, "unsafe name"),
    ({}, (("notes.txt", b"x"),), ArchiveMemberError, "not one the archive format has"),
    ({}, (("entries", b""),), ArchiveMemberError, "appears twice"),
    ({"leaf-hashes": None}, (), ArchiveMemberError, "no member leaf-hashes"),
    ({"manifest.json": b'{"format": "other"}'}, (), MalformedArchiveError, "does not name the format"),
    ({"manifest.json": b"\xff"}, (), MalformedArchiveError, "manifest.json is not JSON"),
    ({"entries": b"\x00\x09abc"}, (), MalformedArchiveError, "ends inside entry 0"),
    ({"leaf-hashes": b"\x00" * 33}, (), MalformedArchiveError, "not a multiple of 32"),
    ({"checkpoints": b"no signatures\n"}, (), MalformedArchiveError, "no empty line"),
    ({"consent/0.jsonl": b'{"offset": 0, "key": "!", "value": null}\n'}, (), MalformedArchiveError, "line 1"),
    ({"consent/0.jsonl": b'{"offset": 1, "key": null, "value": null}\n{"offset": 1, "key": null, "value": null}\n'},
     (), MalformedArchiveError, "line 2: the offset is not an integer above the one before"),
])
def test_malformed_archives_are_refused_by_name(world: World, tmp_path: Path, changes: dict[str, bytes | None],
                                                extra: tuple[tuple[str, bytes], ...], error: type[Exception],
                                                match: str) -> None:
    path = tmp_path / "log.zip"
    write_archive(path, world.contents())
    with pytest.raises(error, match=match):
        read_archive(_rezip(path, changes, extra))


def test_limits_and_files_that_are_not_archives(world: World, tmp_path: Path) -> None:
    path = tmp_path / "log.zip"
    write_archive(path, world.contents())
    with pytest.raises(ArchiveLimitError, match=r"member manifest.json has \d+ bytes, more than the limit of 1000"):
        read_archive(path, ArchiveLimits(member_bytes=1000))
    with pytest.raises(ArchiveLimitError, match=r"member entries has \d+ bytes, more than the limit of 50000"):
        read_archive(path, ArchiveLimits(member_bytes=50_000))
    with pytest.raises(ArchiveLimitError, match="members, more than 5"):
        read_archive(path, ArchiveLimits(members=5))
    with pytest.raises(ArchiveLimitError, match="in all"):
        read_archive(path, ArchiveLimits(total_bytes=10_000))
    for name, data in (("text", b"not a zip at all\n"), ("empty", b""), ("cut", path.read_bytes()[:5000])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MalformedArchiveError, match="is not a readable zip archive"):
            read_archive(tmp_path / name)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("entries", bytes(50_000_000))
    (tmp_path / "bomb").write_bytes(bomb.getvalue())
    with pytest.raises(ArchiveLimitError):
        read_archive(tmp_path / "bomb", ArchiveLimits(member_bytes=1 << 20))
    broken = world.contents(registry=b"agencies: [\n")
    with pytest.raises(MalformedArchiveError, match="registry does not load"):
        _check(world, broken, tmp_path)
    schemas = {**world.schemas, "exchange/decision/0002.avsc": b"{"}
    with pytest.raises(MalformedArchiveError, match="schemas do not load"):
        _check(world, world.contents(schemas=schemas), tmp_path)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="action", required=True)
    register_export(sub)
    verify = sub.add_parser("verify")
    verify.add_argument("--json", action="store_true")
    verify.add_argument("--integrity-only", action="store_true")
    verify.add_argument("--tiles", type=Path, default=None)
    add_archive_arguments(verify)
    verify.set_defaults(func=verify_archive_command)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_the_verify_command(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log.zip"
    write_archive(path, world.contents(30))
    key = tmp_path / "exchange-audit.vkey"
    key.write_text(world.log_key.key_string() + "\n")
    assert _cli("verify", "--archive", str(path), "--log-key", str(key), "--witness-key", WITNESS.verifier_key()) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {path}: entries 30 to {len(world.entries) - 1} of {ORIGIN}, 4 checkpoints verified")
    assert f"cosigned by {WITNESS.name}+{WITNESS.key_id}" in out
    assert "WARNING" not in out
    assert _cli("verify", "--archive", str(path), "--json") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert (result["ok"], result["log_key_source"], result["entries"]) == (True, "archive", len(world.entries) - 30)
    assert result["archive"]["checkpoint"]["size"] == len(world.entries)
    assert "WARNING: the log's key was taken from the archive itself" in captured.err

    write_archive(path, world.contents(30, entries=world.entries[30:-3]))
    assert _cli("verify", "--archive", str(path), "--log-key", world.log_key.key_string(), "--json") == 1
    result = json.loads(capsys.readouterr().out)
    assert result["first_error"]["index"] == len(world.entries) - 3
    assert result["first_error"]["check"] == "missing index"
    (tmp_path / "junk.zip").write_bytes(b"junk")
    assert _cli("verify", "--archive", str(tmp_path / "junk.zip")) == 1
    assert capsys.readouterr().out.startswith("FAILED: the archive is malformed (MalformedArchiveError)")
