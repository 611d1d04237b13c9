"""Loading the schema tree: every rule a file must follow is enforced and reported with the file's path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from exchange.schemas import Catalogue, SchemaFileError, check_tree, load_file, parse_record_schema
from tests.unit.schemas.conftest import SCHEMAS_ROOT, record_json


def _write(root: Path, relative: str, content: Any) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _thing(**changes: Any) -> dict[str, Any]:
    schema = record_json([{"name": "id", "type": "string"}, {"name": "n", "type": "int"}])
    schema.update(changes)
    return schema


def _reasons(root: Path) -> list[str]:
    return [str(problem) for problem in check_tree(root)]


def test_shipped_tree_is_clean() -> None:
    """The repository's schemas pass every file rule and every compatibility check."""
    assert check_tree(SCHEMAS_ROOT) == []


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (_thing(doc=""), "the record needs a non-empty 'doc'"),
        (_thing(name="Other"), "must be named 'Thing' in namespace 'gov.exchange.test'"),
        (_thing(namespace="gov.other"), "must be named 'Thing' in namespace 'gov.exchange.test'"),
        (_thing(key_field="missing"), "needs a 'key_field' naming one of its fields"),
        (_thing(key_kind="pseudonym"), "needs a 'key_kind' of person or record"),
        (_thing(key_field="n", key_kind="person"), "key_field 'n' of a person key must be one of: string"),
        (_thing(compatibility="SOMETIMES"), "'compatibility' must be one of NONE, BACKWARD"),
        (_thing(fields=[]), "the record has no fields"),
        (record_json([{"name": "id", "type": "string", "doc": ""}]), "field 'id' needs a non-empty 'doc'"),
        (record_json([{"name": "id", "type": "string", "classification": "secret"}]),
         "field 'id' needs a 'classification' of public, personal or special"),
        (record_json([{"name": "id", "type": "string"}, {"name": "x", "type": ["null", "int"], "default": 3}]),
         "field 'x': invalid default"),
        (record_json([{"name": "id", "type": "string"}, {"name": "x", "type": "int", "default": "3"}]),
         "not valid Avro"),
        (record_json([{"name": "id", "type": {"type": "string", "logicalType": "uuid"}}]),
         "logicalType 'uuid' on string is not supported"),
        (record_json([{"name": "id", "type": "string"}, {"name": "u", "type": ["int", "int"]}]),
         "may not contain 'int' twice"),
        (record_json([{"name": "id", "type": "string"}, {"name": "id", "type": "int"}]), "has field 'id' twice"),
        (record_json([{"name": "id", "type": "Unknown"}]), "not valid Avro"),
        ({"type": "enum", "name": "Thing", "symbols": ["A"]}, "the top-level schema must be a record"),
    ],
)
def test_file_rules(tmp_path: Path, schema: dict[str, Any], reason: str) -> None:
    """Each broken rule is reported as '<file>: <reason>' and stops Catalogue.load."""
    path = _write(tmp_path, "test/thing/0001.avsc", schema)
    reasons = _reasons(tmp_path)
    assert any(r.startswith(f"{path}: ") and reason in r for r in reasons), reasons
    with pytest.raises(SchemaFileError) as caught:
        Catalogue.load(tmp_path)
    assert caught.value.path == path


def test_all_problems_of_a_file_are_listed(tmp_path: Path) -> None:
    """A file with several broken rules yields one problem per rule."""
    schema = record_json([{"name": "id", "type": "string", "doc": ""}, {"name": "n", "type": "int",
                                                                       "classification": "x"}], doc="")
    _write(tmp_path, "test/thing/0001.avsc", schema)
    assert len(_reasons(tmp_path)) == 3


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("test/thing/1.avsc", "four digits from 0001"),
        ("test/thing/0000.avsc", "four digits from 0001"),
        ("test/thing/extra/0001.avsc", "<domain>/<event>/<NNNN>.avsc"),
        ("Test/thing/0001.avsc", "not a valid domain or event name"),
        ("test/thing_x/0001.avsc", "not a valid domain or event name"),
    ],
)
def test_layout_rules(tmp_path: Path, relative: str, reason: str) -> None:
    """Files outside <domain>/<event>/<NNNN>.avsc are reported."""
    path = _write(tmp_path, relative, _thing())
    assert any(r.startswith(f"{path}: ") and reason in r for r in _reasons(tmp_path))


def test_invalid_json_is_reported(tmp_path: Path) -> None:
    """A file that is not JSON is reported with the parser's reason."""
    path = _write(tmp_path, "test/thing/0001.avsc", "{not json")
    assert _reasons(tmp_path)[0].startswith(f"{path}: line 1: invalid JSON")


def test_revision_gap_is_reported(tmp_path: Path) -> None:
    """Revisions must be contiguous: 0001 and 0003 without 0002 is an error naming the missing revision."""
    _write(tmp_path, "test/thing/0001.avsc", _thing())
    path = _write(tmp_path, "test/thing/0003.avsc", _thing())
    assert _reasons(tmp_path) == [f"{path}: revision 0002 of test.thing is missing (revisions must be contiguous "
                                  "from 0001)"]


def test_revision_with_the_same_canonical_form_is_reported(tmp_path: Path) -> None:
    """A revision that changes only docs has its predecessor's fingerprint, which would make decoding ambiguous."""
    _write(tmp_path, "test/thing/0001.avsc", _thing())
    path = _write(tmp_path, "test/thing/0002.avsc", _thing(doc="Reworded."))
    reasons = _reasons(tmp_path)
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{path}: has the same canonical form as test.thing 0001")


def test_empty_and_missing_roots(tmp_path: Path) -> None:
    """An empty tree and a missing directory are problems, not silently empty catalogues."""
    assert "no schema files" in _reasons(tmp_path)[0]
    assert "not a directory" in _reasons(tmp_path / "absent")[0]


def test_type_and_revision_come_from_the_path(tmp_path: Path) -> None:
    """The type name is <domain>.<event> and the revision the file's number."""
    shutil.copytree(SCHEMAS_ROOT / "population", tmp_path / "population")
    catalogue = Catalogue.load(tmp_path)
    schema = catalogue.current("population.address-changed")
    assert (schema.type_name, schema.revision) == ("population.address-changed", 2)
    assert schema.path == tmp_path / "population" / "address-changed" / "0002.avsc"
    again = load_file(schema.path, schema.type_name, schema.revision)
    assert again.fingerprint == schema.fingerprint


def test_parse_record_schema_raises_with_every_reason() -> None:
    """parse_record_schema (in-memory schemas) raises SchemaFileError listing every reason."""
    with pytest.raises(SchemaFileError) as caught:
        parse_record_schema(_thing(doc="", key_kind="x"), "test.thing", 1)
    assert "non-empty 'doc'" in caught.value.reason
    assert "'key_kind'" in caught.value.reason
