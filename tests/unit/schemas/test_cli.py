"""``exchange schemas check`` and ``exchange schemas list``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from exchange.cli._app import main
from tests.unit.schemas.conftest import SCHEMAS_ROOT

REPO = SCHEMAS_ROOT.parent


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of the shipped schema tree."""
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_ROOT, root)
    return root


def _add_revision(root: Path, type_dir: str, revision: int, edit: str, replacement: str) -> Path:
    previous = root / type_dir / f"{revision - 1:04d}.avsc"
    path = root / type_dir / f"{revision:04d}.avsc"
    text = previous.read_text(encoding="utf-8")
    assert edit in text
    path.write_text(text.replace(edit, replacement), encoding="utf-8")
    return path


def test_check_passes_on_the_shipped_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    """The repository's schemas are valid and compatible: exit 0 and a one-line summary."""
    assert main(["schemas", "check", "--root", str(SCHEMAS_ROOT)]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines() == [f"ok: 11 record types, 13 revisions in {SCHEMAS_ROOT}: valid and compatible"]


def test_check_fails_on_a_new_required_field(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A revision adding a field without a default is not BACKWARD compatible: exit 1, file and reason printed."""
    path = _add_revision(tree, "population/address-changed", 3, '"fields": [', '"fields": [\n    {"name": "floor", '
                         '"type": "int", "doc": "Floor of the dwelling.", "classification": "personal"},')
    assert main(["schemas", "check", "--root", str(tree)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"{path}: population.address-changed 0003 is not BACKWARD compatible with 0002: field 'floor' has no " \
           "default and the writer does not write it (0003 reading data of 0002; level FULL_TRANSITIVE)" in lines
    assert any(line.startswith(f"{path}: population.address-changed 0003 is not BACKWARD compatible with 0001")
               for line in lines)  # transitive: 0001 is checked as well


def test_check_fails_on_a_removed_enum_symbol(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A revision removing an enum symbol cannot read older data: exit 1, file and reason printed."""
    path = _add_revision(tree, "social/benefit-granted", 2, '"CHILD", "DISABILITY"', '"CHILD"')
    assert main(["schemas", "check", "--root", str(tree)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: social.benefit-granted 0002 is not BACKWARD compatible with 0001: field 'benefit_type': " \
           "symbol(s) DISABILITY of enum BenefitType are missing in the reader's enum, which has no default" in out


def test_check_reads_the_root_from_the_environment(
    tree: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --root, EXCHANGE_SCHEMAS names the tree; without either, ./schemas is used."""
    (tree / "tax" / "income-assessed" / "0001.avsc").write_text("{", encoding="utf-8")
    monkeypatch.setenv("EXCHANGE_SCHEMAS", str(tree))
    assert main(["schemas", "check"]) == 1
    assert "income-assessed/0001.avsc: line 1: invalid JSON" in capsys.readouterr().out
    monkeypatch.delenv("EXCHANGE_SCHEMAS")
    monkeypatch.chdir(REPO)
    assert main(["schemas", "check"]) == 0


def test_list_prints_types_with_owners(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """list shows each type's revisions, current fingerprint, key kind, compatibility and owning agency."""
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "agencies:\n"
        "  - id: population-registry\n"
        "    authoritative_for: [population.person-registered, population.address-changed]\n"
        "  - id: statistics-office\n",
        encoding="utf-8",
    )
    assert main(["schemas", "list", "--root", str(SCHEMAS_ROOT), "--registry", str(registry)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TYPE", "REVISIONS", "FINGERPRINT", "KEY", "KIND", "COMPATIBILITY", "OWNER"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["population.address-changed"][1:] == ["2", "f42efddec65d3946", "person", "FULL_TRANSITIVE",
                                                       "population-registry"]
    assert rows["tax.income-assessed"][-1] == "-"
    assert len(rows) == 11


def test_list_json_without_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object per type; with no registry file every owner is '-'."""
    assert main(["schemas", "list", "--root", str(SCHEMAS_ROOT), "--json",
                 "--registry", str(tmp_path / "absent.yaml")]) == 0
    rows = json.loads(capsys.readouterr().out)
    address = next(row for row in rows if row["type"] == "population.address-changed")
    assert address == {"type": "population.address-changed", "revisions": 2, "fingerprint": "f42efddec65d3946",
                       "key_field": "person_id", "key_kind": "person", "compatibility": "FULL_TRANSITIVE",
                       "owner": "-"}
    assert {row["owner"] for row in rows} == {"-"}


def test_list_refuses_a_broken_tree_or_registry(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """list exits 2 with the reason when the tree or the registry cannot be used."""
    registry = tmp_path / "registry.yaml"
    registry.write_text("agencies: {not: a list}\n", encoding="utf-8")
    assert main(["schemas", "list", "--root", str(tree), "--registry", str(registry)]) == 2
    assert "'agencies' list" in capsys.readouterr().err
    (tree / "tax" / "income-assessed" / "0001.avsc").write_text("{", encoding="utf-8")
    assert main(["schemas", "list", "--root", str(tree)]) == 2
    assert "invalid JSON" in capsys.readouterr().err
