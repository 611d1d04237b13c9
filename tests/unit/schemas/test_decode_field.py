"""RecordSchema.decode_field is the exact inverse of encode_field, and refuses anything but one value."""

from __future__ import annotations

import random
from datetime import date

import pytest

from exchange.schemas import Catalogue, DatumError, UnknownFieldError
from exchange.schemas.samples import sample_record
from tests.unit.schemas.conftest import MakeSchema


def test_every_field_of_every_revision_round_trips(catalogue: Catalogue) -> None:
    """For sample records of every shipped revision, decode_field(encode_field(v)) == v, field by field."""
    rng = random.Random(11)
    checked = 0
    for schema in catalogue.schemas():
        for _ in range(5):
            record = sample_record(schema.type_name, rng)
            for name in (n for n in schema.field_names if n in record):  # samples follow the current revision
                encoded = schema.encode_field(name, record[name])
                assert schema.decode_field(name, encoded) == record[name]
                checked += 1
    assert checked > 200


def test_types_come_back_typed(make_schema: MakeSchema) -> None:
    """Dates, enums, optional values, maps and arrays decode to their Python types."""
    schema = make_schema([
        {"name": "id", "type": "string"},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "maybe", "type": ["null", "long"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "kinds", "type": {"type": "map", "values": "Kind"}},
    ])
    values = {"id": "x", "day": date(2024, 2, 29), "kind": "B", "maybe": 7, "tags": ["a", "b"],
              "kinds": {"k": "A"}}
    for name, value in values.items():
        assert schema.decode_field(name, schema.encode_field(name, value)) == value
    assert schema.decode_field("maybe", schema.encode_field("maybe", None)) is None


def test_malformed_values_are_refused(make_schema: MakeSchema) -> None:
    """Trailing bytes, truncation, a bad enum index or bad UTF-8 raise DatumError; an unknown name UnknownFieldError."""
    schema = make_schema([
        {"name": "id", "type": "string"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    ])
    good = schema.encode_field("id", "abc")
    for bad_name, bad in (("id", good + b"\x00"), ("id", good[:-1]), ("id", b""), ("kind", b"\x04"),
                          ("id", b"\x04\xff\xfe")):
        with pytest.raises(DatumError):
            schema.decode_field(bad_name, bad)
    with pytest.raises(UnknownFieldError):
        schema.decode_field("nope", good)
