"""Decoding with a reader revision: Avro schema resolution between revisions of one type."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import fastavro
import pytest

from exchange.schemas import Catalogue, CompatibilityError
from exchange.schemas.samples import sample_record
from tests.unit.schemas.conftest import MakeSchema, seeded

ADDRESS = "population.address-changed"


def test_old_data_read_with_new_reader(catalogue: Catalogue) -> None:
    """0001 data read with the 0002 reader gains dwelling_type = None (its default); the writer is 0001."""
    old, new = catalogue.revision(ADDRESS, 1), catalogue.revision(ADDRESS, 2)
    rng = seeded(11)
    for _ in range(50):
        record = {k: v for k, v in sample_record(ADDRESS, rng).items() if k in old.field_names}
        writer, decoded = catalogue.decode(catalogue.encode(old, record), reader=new)
        assert writer is old
        assert decoded == {**record, "dwelling_type": None}
        assert list(decoded) == list(new.field_names)


def test_new_data_read_with_old_reader(catalogue: Catalogue) -> None:
    """0002 data read with the 0001 reader drops dwelling_type; a type name as reader means its current revision."""
    old, new = catalogue.revision(ADDRESS, 1), catalogue.revision(ADDRESS, 2)
    rng = seeded(12)
    for _ in range(50):
        record = sample_record(ADDRESS, rng)
        message = catalogue.encode(new, record)
        writer, decoded = catalogue.decode(message, reader=old)
        assert writer is new
        assert decoded == {k: record[k] for k in old.field_names}
        assert catalogue.decode(message, reader=ADDRESS)[1] == record


def test_resolution_agrees_with_fastavro(catalogue: Catalogue) -> None:
    """Both directions give what fastavro's own resolver gives."""
    old, new = catalogue.revision(ADDRESS, 1), catalogue.revision(ADDRESS, 2)
    record = sample_record(ADDRESS, seeded(13))
    for writer, reader in ((old, new), (new, old)):
        data = {k: record[k] for k in writer.field_names}
        ours = catalogue.decode(catalogue.encode(writer, data), reader=reader)[1]
        theirs = fastavro.schemaless_reader(io.BytesIO(writer.encode_datum(data)), writer.parsed, reader.parsed)
        assert ours == theirs


def test_reader_of_another_type_is_refused(catalogue: Catalogue) -> None:
    """Data of one type cannot be read as another type."""
    message = catalogue.encode(ADDRESS, sample_record(ADDRESS, seeded(14)))
    with pytest.raises(CompatibilityError, match="another type"):
        catalogue.decode(message, reader=catalogue.current("population.death-registered"))


def _pair(make_schema: MakeSchema, writer: list[dict[str, Any]], reader: list[dict[str, Any]]) -> Catalogue:
    return Catalogue.of([make_schema(writer, 1), make_schema(reader, 2)])


def _read(catalogue: Catalogue, record: dict[str, Any]) -> dict[str, Any]:
    old, new = catalogue.revisions("test.thing")
    return catalogue.decode(catalogue.encode(old, record), reader=new)[1]


def test_incompatible_reader_is_refused_with_reasons(make_schema: MakeSchema) -> None:
    """A reader that lacks a writer's enum symbol (and has no default) is refused before any byte is read."""
    catalogue = _pair(
        make_schema,
        [{"name": "id", "type": "string"}, {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}}],
        [{"name": "id", "type": "string"}, {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}}],
    )
    with pytest.raises(CompatibilityError, match="symbol\\(s\\) B of enum E") as caught:
        _read(catalogue, {"id": "x", "e": "A"})
    assert caught.value.problems


def test_promotions_reordering_defaults_and_aliases(make_schema: MakeSchema) -> None:
    """Resolution promotes numbers and strings, follows reader field order and aliases, and fills defaults."""
    catalogue = _pair(
        make_schema,
        [
            {"name": "id", "type": "string"},
            {"name": "n", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "f", "type": "float"},
            {"name": "s", "type": "string"},
            {"name": "b", "type": "bytes"},
            {"name": "old_name", "type": "int"},
            {"name": "dropped", "type": {"type": "array", "items": "string"}},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "m", "type": {"type": "map", "values": "int"}},
        ],
        [
            {"name": "id", "type": "string"},
            {"name": "new_name", "type": "long", "aliases": ["old_name"]},
            {"name": "f", "type": "double"},
            {"name": "n", "type": "double"},
            {"name": "l", "type": "float"},
            {"name": "s", "type": "bytes"},
            {"name": "b", "type": "string"},
            {"name": "d", "type": "long"},
            {"name": "m", "type": {"type": "map", "values": "long"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["a"]},
            {"name": "when", "type": {"type": "int", "logicalType": "date"}, "default": 1},
        ],
    )
    record = {"id": "x", "n": 7, "l": 2**40, "f": 1.5, "s": "tekst", "b": b"raw", "old_name": -3,
              "dropped": ["gone"], "d": date(1970, 1, 11), "m": {"k": 1}}
    decoded = _read(catalogue, record)
    assert decoded == {"id": "x", "new_name": -3, "f": 1.5, "n": 7.0, "l": float(2**40), "s": b"tekst", "b": "raw",
                       "d": 10, "m": {"k": 1}, "tags": ["a"], "when": date(1970, 1, 2)}
    assert list(decoded) == ["id", "new_name", "f", "n", "l", "s", "b", "d", "m", "tags", "when"]
    assert isinstance(decoded["n"], float)
    again = _read(catalogue, record)
    again["tags"].append("b")
    assert _read(catalogue, record)["tags"] == ["a"]  # a default list is not shared between records


def test_union_and_enum_default_resolution(make_schema: MakeSchema) -> None:
    """Writer non-union into a reader union, writer union into a wider union, and an enum default."""
    catalogue = _pair(
        make_schema,
        [
            {"name": "id", "type": "string"},
            {"name": "u", "type": "int"},
            {"name": "w", "type": ["null", "int"]},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "NEW"]}},
        ],
        [
            {"name": "id", "type": "string"},
            {"name": "u", "type": ["null", "string", "long"]},
            {"name": "w", "type": ["null", "string", "long"]},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "OTHER"], "default": "OTHER"}},
        ],
    )
    assert _read(catalogue, {"id": "x", "u": 5, "w": None, "e": "NEW"}) == {"id": "x", "u": 5, "w": None,
                                                                              "e": "OTHER"}
    assert _read(catalogue, {"id": "x", "u": 5, "w": 9, "e": "A"})["w"] == 9


def test_nested_records_and_dropped_named_fields(make_schema: MakeSchema) -> None:
    """Nested records resolve field by field; dropped fields whose named type the reader lacks are skipped."""
    header = {"type": "record", "name": "Header", "fields": [{"name": "name", "type": "string"},
                                                             {"name": "value", "type": ["null", "bytes"]}]}
    header_v2 = {"type": "record", "name": "Header", "fields": [
        {"name": "name", "type": "string"}, {"name": "value", "type": ["null", "bytes"]},
        {"name": "seen", "type": "boolean", "default": False}]}
    catalogue = _pair(
        make_schema,
        [
            {"name": "id", "type": "string"},
            {"name": "headers", "type": {"type": "array", "items": header}},
            {"name": "meta", "type": {"type": "record", "name": "Meta", "fields": [{"name": "m", "type": "int"}]}},
            {"name": "first", "type": ["null", "Meta"]},
            {"name": "tail", "type": "int"},
        ],
        [
            {"name": "id", "type": "string"},
            {"name": "headers", "type": {"type": "array", "items": header_v2}},
            {"name": "tail", "type": "long"},
        ],
    )
    record = {"id": "x", "headers": [{"name": "a", "value": b"1"}, {"name": "b", "value": None}],
              "meta": {"m": 1}, "first": {"m": 2}, "tail": 42}
    assert _read(catalogue, record) == {
        "id": "x",
        "headers": [{"name": "a", "value": b"1", "seen": False}, {"name": "b", "value": None, "seen": False}],
        "tail": 42,
    }
