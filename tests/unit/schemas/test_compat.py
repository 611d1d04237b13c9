"""Compatibility rules (Avro schema resolution, Confluent levels), one case per rule and direction."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.schemas import Compatibility, chain_problems, resolution_problems
from tests.unit.schemas.conftest import MakeSchema


def _rec(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "n", "fields": list(fields), **extra}


def _enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "E", "namespace": "n", "symbols": list(symbols), **extra}


def _fixed(size: int, name: str = "F") -> dict[str, Any]:
    return {"type": "fixed", "name": name, "namespace": "n", "size": size}


# (case, reader, writer, substring of the single problem, or None when the reader can read the writer)
CASES: list[tuple[str, Any, Any, str | None]] = [
    ("same primitive", "string", "string", None),
    ("int read as long", "long", "int", None),
    ("long read as int", "int", "long", "writer type long cannot be read as int"),
    ("int read as float", "float", "int", None),
    ("float read as int", "int", "float", "writer type float cannot be read as int"),
    ("int read as double", "double", "int", None),
    ("long read as float", "float", "long", None),
    ("float read as long", "long", "float", "writer type float cannot be read as long"),
    ("long read as double", "double", "long", None),
    ("float read as double", "double", "float", None),
    ("double read as float", "float", "double", "writer type double cannot be read as float"),
    ("string read as bytes", "bytes", "string", None),
    ("bytes read as string", "string", "bytes", None),
    ("boolean read as int", "int", "boolean", "writer type boolean cannot be read as int"),
    ("date read as int", "int", {"type": "int", "logicalType": "date"}, None),
    ("int read as date", {"type": "int", "logicalType": "date"}, "int", None),
    ("enum symbol added: old data, new reader", _enum("A", "B"), _enum("A"), None),
    ("enum symbol added: new data, old reader", _enum("A"), _enum("A", "B"), "symbol(s) B of enum E are missing"),
    ("enum symbol removed, reader has a default", _enum("A", "Z", default="Z"), _enum("A", "B"), None),
    ("enum renamed", {**_enum("A"), "name": "G"}, _enum("A"), "does not match the reader's enum G"),
    ("enum renamed with an alias", {**_enum("A"), "name": "G", "aliases": ["E"]}, _enum("A"), None),
    ("field added with default: old data, new reader",
     _rec({"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}),
     _rec({"name": "a", "type": "int"}), None),
    ("field added without default: old data, new reader",
     _rec({"name": "a", "type": "int"}, {"name": "b", "type": "int"}),
     _rec({"name": "a", "type": "int"}), "field 'b' has no default"),
    ("field added: new data, old reader",
     _rec({"name": "a", "type": "int"}),
     _rec({"name": "a", "type": "int"}, {"name": "b", "type": "int"}), None),
    ("field renamed with a reader alias",
     _rec({"name": "b", "type": "int", "aliases": ["a"]}), _rec({"name": "a", "type": "int"}), None),
    ("field type changed",
     _rec({"name": "a", "type": "int"}), _rec({"name": "a", "type": "string"}),
     "field 'a': writer type string cannot be read as int"),
    ("record renamed", _rec({"name": "a", "type": "int"}, name="S"), _rec({"name": "a", "type": "int"}),
     "does not match the reader's record S"),
    ("record renamed with an alias", _rec({"name": "a", "type": "int"}, name="S", aliases=["n.R"]),
     _rec({"name": "a", "type": "int"}), None),
    ("made optional: old data, new reader", ["null", "int"], "int", None),
    ("made optional: new data, old reader", "int", ["null", "int"], "null cannot be read as int"),
    ("union widened: old data, new reader", ["null", "int", "string"], ["null", "int"], None),
    ("union narrowed: new data, old reader", ["null", "int"], ["null", "int", "string"],
     "string is not readable by any branch"),
    ("union branch promoted", ["null", "long"], ["null", "int"], None),
    ("writer union, reader not", "long", ["int", "long"], None),
    ("reader union lacks the writer", ["null", "string"], "int", "int is not readable by any branch"),
    ("array items promoted", {"type": "array", "items": "long"}, {"type": "array", "items": "int"}, None),
    ("array items narrowed", {"type": "array", "items": "int"}, {"type": "array", "items": "long"},
     "array items: writer type long cannot be read as int"),
    ("map values promoted", {"type": "map", "values": "double"}, {"type": "map", "values": "float"}, None),
    ("map values narrowed", {"type": "map", "values": "float"}, {"type": "map", "values": "double"},
     "map values: writer type double cannot be read as float"),
    ("array read as map", {"type": "map", "values": "int"}, {"type": "array", "items": "int"},
     "writer type array of int cannot be read as map of int"),
    ("fixed of the same size", _fixed(16), _fixed(16), None),
    ("fixed of another size", _fixed(16), _fixed(32), "fixed size 32 cannot be read as size 16"),
    ("fixed renamed", _fixed(16, "G"), _fixed(16), "does not match the reader's fixed G"),
    ("nested record field without default",
     _rec({"name": "inner", "type": _rec({"name": "x", "type": "int"}, {"name": "y", "type": "int"}, name="I")}),
     _rec({"name": "inner", "type": _rec({"name": "x", "type": "int"}, name="I")}),
     "field 'inner': field 'y' has no default"),
]


@pytest.mark.parametrize(("case", "reader", "writer", "expected"), CASES, ids=[c[0] for c in CASES])
def test_resolution_rule(case: str, reader: Any, writer: Any, expected: str | None) -> None:
    """Each Avro resolution rule accepts or refuses as the specification says, with a reason naming the place."""
    problems = resolution_problems(reader, writer)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1, problems
        assert expected in problems[0]


def test_every_problem_is_reported() -> None:
    """All incompatible fields are listed, not only the first."""
    problems = resolution_problems(
        _rec({"name": "a", "type": "int"}, {"name": "b", "type": "int"}, {"name": "c", "type": "string"}),
        _rec({"name": "a", "type": "long"}, {"name": "c", "type": "boolean"}),
    )
    assert len(problems) == 3


def test_recursive_records_are_checked() -> None:
    """A recursive record compares with itself without looping."""
    node = _rec({"name": "next", "type": ["null", "R"]}, {"name": "v", "type": "int"})
    assert resolution_problems(node, node) == []


V1 = [{"name": "id", "type": "string"}, {"name": "a", "type": "int"}]
ADD_OPTIONAL = [*V1, {"name": "b", "type": ["null", "string"], "default": None}]
ADD_REQUIRED = [*V1, {"name": "b", "type": "string"}]
DROP_REQUIRED = [{"name": "id", "type": "string"}]


@pytest.mark.parametrize(
    ("level", "new_fields", "failing"),
    [
        ("BACKWARD", ADD_REQUIRED, ["BACKWARD"]),
        ("BACKWARD", DROP_REQUIRED, []),
        ("FORWARD", ADD_REQUIRED, []),
        ("FORWARD", DROP_REQUIRED, ["FORWARD"]),
        ("FULL", ADD_OPTIONAL, []),
        ("FULL", ADD_REQUIRED, ["BACKWARD"]),
        ("FULL", DROP_REQUIRED, ["FORWARD"]),
        ("FULL_TRANSITIVE", ADD_OPTIONAL, []),
        ("NONE", DROP_REQUIRED, []),
    ],
)
def test_levels(make_schema: MakeSchema, level: str, new_fields: list[dict[str, Any]], failing: list[str]) -> None:
    """Each level checks its direction(s): BACKWARD new reads old, FORWARD old reads new, FULL both, NONE none."""
    chain = [make_schema(V1, 1), make_schema(new_fields, 2, compatibility=level)]
    assert chain[1].compatibility is Compatibility(level)
    problems = chain_problems(chain)
    assert [p.reason.split(" compatible")[0].rsplit(" ", 1)[-1] for p in problems] == failing
    for problem in problems:
        assert problem.reason.startswith(f"test.thing 0002 is not {failing[0]} compatible with 0001: ")
        assert f"level {level}" in problem.reason


def test_transitive_checks_every_earlier_revision(make_schema: MakeSchema) -> None:
    """A field dropped in 0002 and re-added with another type in 0003 passes BACKWARD but not
    BACKWARD_TRANSITIVE, which also checks 0003 against 0001."""
    v1 = [{"name": "id", "type": "string"}, {"name": "x", "type": "int"}]
    v2 = [{"name": "id", "type": "string"}]
    v3 = [{"name": "id", "type": "string"}, {"name": "x", "type": "string", "default": ""}]
    plain = [make_schema(v1, 1, compatibility="BACKWARD"), make_schema(v2, 2, compatibility="BACKWARD"),
             make_schema(v3, 3, compatibility="BACKWARD")]
    assert chain_problems(plain) == []
    transitive = [make_schema(v1, 1), make_schema(v2, 2, compatibility="BACKWARD_TRANSITIVE"),
                  make_schema(v3, 3, compatibility="BACKWARD_TRANSITIVE")]
    problems = chain_problems(transitive)
    assert [p.revision for p in problems] == [3]
    assert "0003 is not BACKWARD compatible with 0001: field 'x': writer type int cannot be read as string" in (
        problems[0].reason)
