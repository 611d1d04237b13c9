"""The strict reader reads a datum if and only if decoding and re-encoding it gives the same bytes."""

from __future__ import annotations

import math
import random
import struct
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.schemas import Catalogue, RecordSchema, SchemaError, parse_record_schema
from exchange.schemas._decode import MALFORMED
from exchange.schemas._strict import compile_strict_reader
from exchange.schemas.samples import SAMPLE_TYPES, sample_record
from tests.unit.schemas.conftest import SCHEMAS_ROOT, record_json

Outcome = tuple[dict[str, Any], list[bytes]] | None

_KIND = {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}
_MIXED_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "long"},
    {"name": "i", "type": "int"},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "kind", "type": _KIND},
    {"name": "f", "type": "float"},
    {"name": "d", "type": "double"},
    {"name": "raw", "type": "bytes"},
    {"name": "digest", "type": {"type": "fixed", "name": "Four", "size": 4}},
    {"name": "flag", "type": "boolean"},
    {"name": "maybe", "type": ["null", "string"], "default": None},
    {"name": "number", "type": ["double", "long", "string"]},
    {"name": "label", "type": ["string", "gov.exchange.test.Kind"]},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "counts", "type": {"type": "map", "values": "long"}},
    {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
        {"name": "x", "type": ["null", "long"]}, {"name": "ys", "type": {"type": "array", "items": "int"}}]}},
]
_MIXED_VALUES: list[dict[str, Any]] = [
    {"id": "a", "n": -3, "i": 70, "day": date(2024, 2, 29), "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
     "kind": "B", "f": 1.5, "d": -0.0, "raw": b"\x00\x80", "digest": b"abcd", "flag": True, "maybe": "é",
     "number": 2.5, "label": "free text", "tags": ["x", "y" * 70], "counts": {"k": 1, "l": -2**40},
     "inner": {"x": None, "ys": [1, -1]}},
    {"id": "", "n": 2**62, "i": -2**31, "day": date(1969, 12, 31), "at": datetime(1970, 1, 1, tzinfo=UTC),
     "kind": "A", "f": float("inf"), "d": float("nan"), "raw": b"", "digest": b"\xff" * 4, "flag": False,
     "maybe": None, "number": "seven", "label": "C", "tags": [], "counts": {}, "inner": {"x": 5, "ys": []}},
]


@cache
def _mixed() -> RecordSchema:
    return parse_record_schema(record_json(_MIXED_FIELDS), "test.thing", 1)


@cache
def _catalogue() -> Catalogue:
    return Catalogue.load(SCHEMAS_ROOT)  # hypothesis tests cannot take function-scoped fixtures


def _reference(schema: RecordSchema, datum: bytes) -> Outcome:
    """What decoding and re-encoding says: the record and its field encodings if the datum is canonical."""
    try:
        record = schema.decode_datum(datum)
        _, parts = schema.encode_parts(record)
    except SchemaError:
        return None
    return (record, parts) if b"".join(parts) == datum else None


def _strict(schema: RecordSchema, datum: bytes) -> Outcome:
    try:
        record, parts, end = compile_strict_reader(schema.node, schema.names)(datum, 0)
    except MALFORMED:
        return None
    return (record, parts) if end == len(datum) else None


def _same(schema: RecordSchema, datum: bytes) -> Outcome:
    expected, got = _reference(schema, datum), _strict(schema, datum)
    # NaN != NaN: compare the encodings, which are exact, and the records through them.
    assert (got is None) == (expected is None), datum.hex()
    if got is not None and expected is not None:
        assert got[1] == expected[1]
        assert schema.encode_datum(got[0]) == schema.encode_datum(expected[0]) == datum
        assert got[0].keys() == expected[0].keys()
    return got


def _datums() -> list[tuple[RecordSchema, bytes]]:
    rng = random.Random(5)
    out = [(_mixed(), _mixed().encode_datum(v)) for v in _MIXED_VALUES]
    for type_name in SAMPLE_TYPES:
        schema = _catalogue().current(type_name)
        out += [(schema, schema.encode_datum(sample_record(type_name, rng))) for _ in range(3)]
    return out


def test_valid_datums_are_read_with_their_field_encodings() -> None:
    """Every encoded record is read back, with each field's bytes equal to encode_parts."""
    for schema, datum in _datums():
        got = _same(schema, datum)
        assert got is not None


_EDITS = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete"]), st.integers(0, 10**6),
                            st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 10**6), _EDITS)
def test_edited_datums_are_read_exactly_when_they_re_encode_to_themselves(which: int, edits: list[Any]) -> None:
    """After random byte edits, the strict reader and decode-then-re-encode agree on every datum."""
    datums = _datums_cached()
    schema, datum = datums[which % len(datums)]
    data = bytearray(datum)
    for op, where, byte in edits:
        at = where % (len(data) + 1)
        if op == "insert":
            data.insert(at, byte)
        elif data and op == "delete":
            del data[at % len(data)]
        elif data and op == "flip":
            data[at % len(data)] ^= 1 << (byte % 8)
        elif data:
            data[at % len(data)] = byte
    _same(schema, bytes(data))


@cache
def _datums_cached() -> list[tuple[RecordSchema, bytes]]:
    return _datums()


def _mixed_with(**changes: Any) -> bytes:
    return _mixed().encode_datum({**_MIXED_VALUES[1], **changes})


@pytest.mark.parametrize(("before", "after", "why"), [
    (b"\x00", b"\x80\x00", "a padded varint (the id's length)"),
    (b"\x8e\x01", b"\x8e\x81\x00", "a padded two-byte varint"),
    (b"\x02" + b"\x02x" + b"\x00", b"\x01\x04" + b"\x02x" + b"\x00", "an array block with a negative count"),
    (b"\x04\x02x\x02y\x00", b"\x02\x02x\x02\x02y\x00", "an array in two blocks"),
    (b"\x04\x02k\x02\x02j\x04\x00", b"\x04\x02k\x02\x02k\x04\x00", "a map key twice"),
])
def test_non_canonical_forms_are_refused(before: bytes, after: bytes, why: str) -> None:
    """Each alternative encoding Avro allows is refused, as decode-then-re-encode refuses it."""
    schema = _mixed()
    datum = {
        "a padded varint (the id's length)": _mixed_with(id=""),
        "a padded two-byte varint": _mixed_with(id="x" * 71),
        "an array block with a negative count": _mixed_with(tags=["x"]),
        "an array in two blocks": _mixed_with(tags=["x", "y"]),
        "a map key twice": _mixed_with(counts={"k": 1, "j": 2}),
    }[why]
    assert before in datum
    edited = datum.replace(before, after, 1)
    assert _strict(schema, datum) is not None
    assert _same(schema, edited) is None


def test_a_union_value_in_a_later_branch_is_refused() -> None:
    """A long written as the union's long branch is read; the double branch holding an int-like value is not
    where the writer would put a long, and an enum symbol in the enum branch is where it would put a string."""
    schema = _mixed()
    as_long = _mixed_with(number=7)
    assert _same(schema, as_long) is not None
    label_index = as_long.index(b"\x00\x02C")  # label: branch 0 (string) "C"
    as_enum = as_long[:label_index] + b"\x02\x04" + as_long[label_index + 3:]  # branch 1, the enum's C
    assert _same(schema, as_enum) is None


@pytest.mark.parametrize("bits", [0x7FC00000, 0x7F800001, 0xFFC00001, 0x7FA00000])
def test_float_nan_payloads_agree(bits: int) -> None:
    """Float NaNs are read when, and only when, their bits survive the round trip."""
    schema = _mixed()
    datum = _mixed_with(f=1.0)
    one = struct.pack("<f", 1.0)
    edited = datum.replace(one, struct.pack("<I", bits), 1)
    got = _same(schema, edited)
    if got is not None:
        assert math.isnan(got[0]["f"])


@pytest.mark.parametrize("value", [0, -1, 1, 63, -64, 64, 8191, -8192, 8192, 2**20 - 1, -(2**20), 2**20, 2**31,
                                   -(2**31) - 1, 2**63 - 1, -(2**63)])
def test_varints_at_byte_boundaries(value: int) -> None:
    """Longs around every varint length are read, and the same varint padded with a zero byte is refused."""
    schema = _mixed()
    datum = _mixed_with(n=value)
    got = _same(schema, datum)
    assert got is not None
    assert got[0]["n"] == value
    start = 1  # the id is empty: its length is the one byte 0x00, then n's varint
    end = start + len(got[1][1])
    varint = datum[start:end]
    if len(varint) < 10:
        padded = varint[:-1] + bytes((varint[-1] | 0x80, 0))
        assert _same(schema, datum[:start] + padded + datum[end:]) is None
