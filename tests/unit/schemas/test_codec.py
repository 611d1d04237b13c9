"""Single-object encoding and decoding: round trips, agreement with fastavro, validation and malformed input."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.schemas import (
    MAGIC,
    Catalogue,
    DatumError,
    RecordValidationError,
    UnknownFieldError,
    UnknownSchemaError,
)
from exchange.schemas.samples import SAMPLE_TYPES, sample_record
from tests.unit.schemas.conftest import SCHEMAS_ROOT, MakeSchema, seeded


def _fastavro_bytes(schema: Any, value: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return out.getvalue()


@pytest.mark.parametrize("type_name", SAMPLE_TYPES)
def test_round_trip_of_every_type(catalogue: Catalogue, type_name: str) -> None:
    """Every shipped type encodes to C3 01 + fingerprint + the datum fastavro writes, and decodes back equal."""
    rng = seeded(type_name)
    schema = catalogue.current(type_name)
    for _ in range(200):
        record = sample_record(type_name, rng)
        message = catalogue.encode(type_name, record)
        assert message[:2] == MAGIC
        assert message[2:10] == schema.fingerprint
        assert message[10:] == _fastavro_bytes(schema.schema, record)
        writer, decoded = catalogue.decode(message)
        assert writer is schema
        assert decoded == record
        assert fastavro.schemaless_reader(io.BytesIO(message[10:]), schema.parsed) == record


@pytest.mark.parametrize("type_name", SAMPLE_TYPES)
def test_encode_parts_are_the_field_encodings(catalogue: Catalogue, type_name: str) -> None:
    """encode_parts gives the message and, per field, exactly encode_field and fastavro's encoding of that field."""
    schema = catalogue.current(type_name)
    record = sample_record(type_name, seeded(3))
    message, parts = catalogue.encode_parts(schema, record)
    assert message == catalogue.encode(schema, record)
    assert message[10:] == b"".join(parts)
    for field, part in zip(schema.fields, parts, strict=True):
        assert catalogue.encode_field(type_name, field.name, record[field.name]) == part
        named = {"type": "record", "name": "One", "namespace": "gov.exchange.x",
                 "fields": [{"name": field.name, "type": field.type}]}
        assert part == _fastavro_bytes(named, {field.name: record[field.name]})


def test_validation_lists_every_bad_field(catalogue: Catalogue) -> None:
    """One RecordValidationError names the missing, mistyped, unknown and bad-enum fields together."""
    record = sample_record("population.person-registered", seeded(1))
    del record["given_name"]
    record["birth_date"] = "1990-01-01"
    record["sex"] = "Q"
    record["registered_on"] = datetime(2024, 1, 1, tzinfo=UTC)
    record["nickname"] = "Mari"
    with pytest.raises(RecordValidationError) as caught:
        catalogue.encode("population.person-registered", record)
    problems = caught.value.problems
    assert len(problems) == 5
    assert "field 'given_name': missing" in problems
    assert "field 'birth_date': expected date, got str" in problems
    assert any(p.startswith("field 'sex': not a symbol of enum Sex") for p in problems)
    assert "field 'registered_on': expected date, got datetime" in problems
    assert any(p.startswith("field 'nickname': unknown field") for p in problems)
    assert "Mari" not in str(caught.value)  # values never appear in messages


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("tax_year", True, "expected int, got bool"),
        ("tax_year", 2**31, "int out of 32-bit range"),
        ("tax_due_cents", 2**63, "long out of 64-bit range"),
        ("tax_due_cents", 1.5, "expected long, got float"),
        ("person_id", b"3850101", "expected string, got bytes"),
        ("person_id", "\ud800", "string is not valid Unicode"),
        ("assessed_on", None, "expected date, got NoneType"),
    ],
)
def test_one_bad_value_is_named(catalogue: Catalogue, field: str, value: Any, reason: str) -> None:
    """Each kind of bad scalar is refused with the field and the reason."""
    record = sample_record("tax.income-assessed", seeded(2))
    record[field] = value
    with pytest.raises(RecordValidationError) as caught:
        catalogue.encode("tax.income-assessed", record)
    assert caught.value.problems == [f"field {field!r}: {reason}"]


def test_naive_datetime_is_refused(catalogue: Catalogue) -> None:
    """A timestamp without a time zone is ambiguous and is refused."""
    record = sample_record("exchange.consent", seeded(4))
    record["issued_at"] = datetime(2024, 5, 1, 12, 0)
    with pytest.raises(RecordValidationError, match="timezone-aware"):
        catalogue.encode("exchange.consent", record)


def test_nested_and_optional_values_are_checked(catalogue: Catalogue) -> None:
    """Bad items of arrays, nested records and optional fields are reported with their place."""
    record = sample_record("exchange.quarantine", seeded(5))
    record["original_headers"] = [{"name": "a", "value": b"x"}, {"name": "b", "value": "text"}]
    record["original_partition"] = "7"
    with pytest.raises(RecordValidationError) as caught:
        catalogue.encode("exchange.quarantine", record)
    assert caught.value.problems == [
        "field 'original_partition': expected int, got str (or null)",
        "field 'original_headers': item 1: field 'value': expected bytes, got str (or null)",
    ]
    record = sample_record("exchange.decision", seeded(5))
    record["event_digest"] = b"short"
    with pytest.raises(RecordValidationError, match="expected exactly 32 bytes, got 5"):
        catalogue.encode("exchange.decision", record)


def test_encode_field_refuses_unknown_fields_and_bad_values(catalogue: Catalogue) -> None:
    """encode_field raises UnknownFieldError for a field the type lacks, RecordValidationError for a bad value."""
    with pytest.raises(UnknownFieldError):
        catalogue.encode_field("population.death-registered", "given_name", "Mari")
    with pytest.raises(RecordValidationError, match="date_of_death"):
        catalogue.encode_field("population.death-registered", "date_of_death", "2024-01-01")
    assert catalogue.encode_field("population.death-registered", "date_of_death", date(1970, 1, 2)) == b"\x02"


def test_unknown_type_and_foreign_schema_are_refused(catalogue: Catalogue, make_schema: MakeSchema) -> None:
    """Encoding with a type or a schema object the catalogue does not hold fails closed."""
    with pytest.raises(UnknownSchemaError):
        catalogue.encode("population.unknown", {})
    foreign = make_schema([{"name": "id", "type": "string"}])
    with pytest.raises(UnknownSchemaError):
        catalogue.encode(foreign, {"id": "x"})


def test_unknown_fingerprint_is_refused(catalogue: Catalogue) -> None:
    """A well-formed message whose fingerprint is not in the catalogue raises UnknownSchemaError."""
    message = catalogue.encode("population.death-registered",
                               sample_record("population.death-registered", seeded(6)))
    tampered = message[:2] + bytes(8) + message[10:]
    with pytest.raises(UnknownSchemaError, match="0000000000000000"):
        catalogue.decode(tampered)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "C3 01"),
        (b"\xc3\x02" + bytes(8), "C3 01"),
        (b"Obj\x01" + bytes(8), "C3 01"),
    ],
)
def test_missing_marker_is_refused(catalogue: Catalogue, data: bytes, reason: str) -> None:
    """Bytes without the single-object marker raise DatumError."""
    with pytest.raises(DatumError, match=reason):
        catalogue.decode(data)


def test_truncated_trailing_and_garbage_data_are_refused(catalogue: Catalogue) -> None:
    """Truncated data, trailing bytes and malformed values raise DatumError naming the type and revision."""
    schema = catalogue.current("population.address-changed")
    message = catalogue.encode(schema, sample_record(schema.type_name, seeded(7)))
    with pytest.raises(DatumError, match=r"population\.address-changed 0002: malformed datum: truncated"):
        catalogue.decode(message[:-3])
    with pytest.raises(DatumError, match="2 trailing bytes"):
        catalogue.decode(message + b"\x00\x00")
    with pytest.raises(DatumError, match="length runs past the end"):
        catalogue.decode(schema.header + b"\x7e" + b"x" * 10)  # a 63-byte string in 10 bytes
    with pytest.raises(DatumError, match="not UTF-8"):
        catalogue.decode(schema.header + b"\x04\xff\xfe")
    with pytest.raises(DatumError, match="varint longer than 10 bytes"):
        catalogue.decode(schema.header + b"\xff" * 12)
    good = catalogue.encode(schema, {**sample_record(schema.type_name, seeded(7)), "dwelling_type": None})
    assert good[-1] == 0  # ... address_protected (one byte), then dwelling_type's null branch
    bad = bytearray(good)
    bad[-2] = 7
    with pytest.raises(DatumError, match="boolean byte"):
        catalogue.decode(bytes(bad))
    bad = bytearray(good)
    bad[-1] = 6  # branch 3 of a two-branch union
    with pytest.raises(DatumError, match="union branch index"):
        catalogue.decode(bytes(bad))


def test_bad_enum_index_is_refused(catalogue: Catalogue) -> None:
    """An enum index outside the symbols (including a negative one) raises DatumError."""
    schema = catalogue.current("social.benefit-granted")
    parts = schema.encode_parts(sample_record(schema.type_name, seeded(8)))[1]
    for index in (b"\x08", b"\x01"):  # 4 (one past the last symbol) and -1, in place of benefit_type
        with pytest.raises(DatumError, match="enum index out of range"):
            catalogue.decode(schema.header + parts[0] + index + b"".join(parts[2:]))


@cache
def _shared_catalogue() -> Catalogue:
    return Catalogue.load(SCHEMAS_ROOT)  # hypothesis tests cannot take function-scoped fixtures


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLE_TYPES), st.binary(max_size=80))
def test_arbitrary_bytes_never_escape_as_foreign_errors(type_name: str, noise: bytes) -> None:
    """Whatever follows a known header, decode returns a record or raises DatumError, nothing else."""
    catalogue = _shared_catalogue()
    schema = catalogue.current(type_name)
    try:
        _, record = catalogue.decode(schema.header + noise)
    except DatumError:
        return
    assert set(record) == set(schema.field_names)


def test_decode_accepts_bytearray_and_memoryview(catalogue: Catalogue) -> None:
    """Buffers other than bytes decode the same as bytes."""
    record = sample_record("vehicle.vehicle-registered", seeded(9))
    message = catalogue.encode("vehicle.vehicle-registered", record)
    assert catalogue.decode(bytearray(message))[1] == record
    assert catalogue.decode(memoryview(message))[1] == record


@pytest.mark.parametrize(
    "value", [0, -1, 1, 63, -64, 64, 8191, -8192, 8192, 2**20 - 1, 2**20, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)]
)
def test_long_varints_at_byte_boundaries(catalogue: Catalogue, value: int) -> None:
    """Longs around every varint length boundary encode as fastavro does and decode back."""
    schema = catalogue.current("tax.income-assessed")
    encoded = catalogue.encode_field(schema, "tax_due_cents", value)
    assert encoded == _fastavro_bytes("long", value)
    record = {**sample_record(schema.type_name, seeded(10)), "tax_due_cents": value}
    assert catalogue.decode(catalogue.encode(schema, record))[1] == record
