"""Reading drop-folder lines, no broker: CSV rows and JSON lines converted to their schema's types exactly as
sample records hold them, every bad value refused naming the field and the expected type but never the value,
wrong headers named, and the line reader's numbering (BOM, CR LF, blank lines, quoted line breaks, stray quotes,
overlong lines)."""

from __future__ import annotations

import base64
import csv
import io
import json
import random
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.files import CsvHeader, FilesConfigError, FilesSourceConfig, ParseError, RecordParser
from connectors.files.reader import MAX_RECORD_BYTES, LineFile
from connectors.sdk import ConnectorConfigError, load_config
from exchange.schemas import Catalogue, parse_record_schema
from exchange.schemas.samples import sample_record
from tests.conftest import ROOT

CATALOGUE = Catalogue.load(ROOT / "schemas")
AGENCY_TYPES = [t for t in CATALOGUE.types() if not t.startswith("exchange.")]
ADDRESS = "population.address-changed"


def parser(record_type: str = ADDRESS, file_format: str = "csv") -> RecordParser:
    return RecordParser(CATALOGUE.current(record_type), "csv" if file_format == "csv" else "jsonl")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)


def csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def as_json(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


def row(record: Mapping[str, Any], columns: tuple[str, ...]) -> str:
    return csv_line([cell(record[c]) for c in columns])


# -- CSV ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("record_type", AGENCY_TYPES)
def test_a_csv_row_reads_back_as_the_sample_record_it_was_written_from(record_type: str) -> None:
    reader = parser(record_type)
    columns = CATALOGUE.current(record_type).field_names
    header = reader.header(csv_line(list(columns)))
    rng = random.Random(record_type)
    for _ in range(60):
        record = sample_record(record_type, rng)
        assert reader.csv_row(header, row(record, columns)) == record


def test_the_header_may_order_columns_freely_and_leave_out_a_field_with_a_default() -> None:
    reader = parser()
    columns = ("moved_on", "person_id", "address_protected", "postal_code", "street_address", "municipality_code")
    header = reader.header(",".join(columns))
    assert header == CsvHeader(columns, {"dwelling_type": None})
    record = {**sample_record(ADDRESS, random.Random(1)), "dwelling_type": None}
    assert reader.csv_row(header, row(record, columns)) == record


@pytest.mark.parametrize(("text", "reason"), [
    ("person_id,street_address,postcode,municipality_code,moved_on,address_protected",
     "unknown column 'postcode'; missing column postal_code (the columns are fields of "
     "population.address-changed 0002: person_id, street_address"),
    ("person_id,person_id,street_address,postal_code,municipality_code,moved_on,address_protected",
     "column given twice: 'person_id'"),
    ("person_id,moved_on", "missing columns street_address, postal_code, municipality_code, address_protected"),
    ('"person_id,moved_on', "not valid CSV"),
    ("Person_ID ,\u202e", "unknown columns 'Person_ID ', '\\u202e'"),
])
def test_a_wrong_header_is_refused_naming_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parser().header(text)
    assert reason in caught.value.reason


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("moved_on", "31.12.2024", "field 'moved_on': expected date (YYYY-MM-DD)"),
    ("moved_on", "2024-02-30", "field 'moved_on': expected date (YYYY-MM-DD): not a valid calendar date or time"),
    ("moved_on", "", "field 'moved_on': expected date (YYYY-MM-DD)"),
    ("address_protected", "yes", "field 'address_protected': expected boolean (true or false)"),
    ("dwelling_type", "castle", "field 'dwelling_type': expected one of APARTMENT, HOUSE, OTHER (or empty for null)"),
    ("person_id", "", "field 'person_id': the key field must not be empty"),
])
def test_a_csv_value_that_does_not_convert_names_the_field_not_the_value(field: str, value: str,
                                                                         problem: str) -> None:
    reader = parser()
    columns = CATALOGUE.current(ADDRESS).field_names
    header = reader.header(",".join(columns))
    record = {**sample_record(ADDRESS, random.Random(2)), "dwelling_type": "HOUSE"}
    cells = [value if c == field else cell(record[c]) for c in columns]
    with pytest.raises(ParseError) as caught:
        reader.csv_row(header, csv_line(cells))
    assert caught.value.reason == problem


@pytest.mark.parametrize(("value", "problem"), [
    ("20x4", "expected int"), ("2024.0", "expected int"), ("99999999999", "expected int: out of range"),
    ("", "expected int"), ("+2024", None), (" 2024", "expected int"),
])
def test_integers_are_read_strictly_and_within_range(value: str, problem: str | None) -> None:
    reader = parser("tax.income-assessed")
    columns = CATALOGUE.current("tax.income-assessed").field_names
    record = sample_record("tax.income-assessed", random.Random(3))
    cells = [value if c == "tax_year" else cell(record[c]) for c in columns]
    header = reader.header(",".join(columns))
    if problem is None:
        assert reader.csv_row(header, csv_line(cells))["tax_year"] == 2024
        return
    with pytest.raises(ParseError, match=f"^field 'tax_year': {problem}$"):
        reader.csv_row(header, csv_line(cells))


def test_true_and_false_in_any_case_and_1_and_0_are_booleans() -> None:
    reader = parser()
    columns = CATALOGUE.current(ADDRESS).field_names
    header = reader.header(",".join(columns))
    record = sample_record(ADDRESS, random.Random(4))
    for text, value in (("TRUE", True), ("False", False), ("1", True), ("0", False)):
        cells = [text if c == "address_protected" else cell(record[c]) for c in columns]
        assert reader.csv_row(header, csv_line(cells))["address_protected"] is value


def test_a_row_with_the_wrong_number_of_values_is_refused() -> None:
    reader = parser()
    header = reader.header(",".join(CATALOGUE.current(ADDRESS).field_names))
    with pytest.raises(ParseError, match=r"^the row has 2 values; the header has 7 columns$"):
        reader.csv_row(header, "a,b")


def test_a_quoted_value_may_hold_commas_quotes_and_line_breaks() -> None:
    reader = parser()
    columns = CATALOGUE.current(ADDRESS).field_names
    header = reader.header(",".join(columns))
    record = {**sample_record(ADDRESS, random.Random(5)), "street_address": 'Pikk 3, "Vana" maja\r\nkorter 2'}
    assert reader.csv_row(header, row(record, columns)) == record


def _field(name: str, avro: Any) -> dict[str, Any]:
    return {"name": name, "type": avro, "doc": name, "classification": "public"}


TESTING = parse_record_schema({
    "type": "record", "name": "Measured", "namespace": "gov.exchange.testing", "doc": "cell types",
    "key_field": "id", "key_kind": "record", "fields": [
        _field("id", "string"), _field("at", {"type": "long", "logicalType": "timestamp-micros"}),
        _field("blob", "bytes"), _field("digest", {"type": "fixed", "name": "Four", "size": 4}),
        _field("ratio", "double"), _field("small", "float"), _field("count", "long"),
        _field("either", ["int", "string"])]}, "testing.measured", 1)


@pytest.mark.parametrize(("column", "text", "value"), [
    ("at", "2026-11-02T08:30:00+02:00", datetime(2026, 11, 2, 6, 30, tzinfo=UTC)),
    ("at", "2025-03-04T05:06:07", "expected timestamp (RFC 3339 with a zone, 2026-11-02T08:30:00Z)"),
    ("blob", "aGk=", b"hi"), ("blob", "aGk", "expected base64"),
    ("digest", "AAECAw==", b"\x00\x01\x02\x03"), ("digest", "AAEC", "expected base64 of exactly 4 bytes, got 3"),
    ("ratio", "-1.5e3", -1500.0), ("ratio", "1e999", "expected double: out of range"),
    ("ratio", "nan", "expected double (a decimal number)"), ("small", "1e39", "expected float: out of range"),
    ("count", "-9223372036854775808", -(2**63)), ("count", "9223372036854775808", "expected long: out of range"),
    ("either", "12", 12), ("either", "twelve", "twelve"),
])
def test_every_cell_type_converts_or_names_what_it_expected(column: str, text: str, value: Any) -> None:
    reader = RecordParser(TESTING, "csv")
    columns = TESTING.field_names
    good = {"id": "m-1", "at": "2026-01-01T00:00:00Z", "blob": "", "digest": "AAAAAA==", "ratio": "0.5",
            "small": "2", "count": "7", "either": "1"}
    header = reader.header(",".join(columns))
    line = csv_line([text if c == column else good[c] for c in columns])
    if isinstance(value, str) and value.startswith("expected"):
        with pytest.raises(ParseError) as caught:
            reader.csv_row(header, line)
        assert caught.value.reason == f"field '{column}': {value}"
        assert text not in caught.value.reason
    else:
        assert reader.csv_row(header, line)[column] == value


def test_csv_cannot_carry_arrays_the_config_is_refused() -> None:
    with pytest.raises(FilesConfigError, match="array of string cannot be read from a CSV cell; use format: jsonl"):
        parser("exchange.consent")


# -- JSON lines ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("record_type", [*AGENCY_TYPES, "exchange.consent", "exchange.decision",
                                         "exchange.quarantine"])
def test_a_json_line_reads_back_as_the_sample_record_it_was_written_from(record_type: str) -> None:
    reader = parser(record_type, "jsonl")
    rng = random.Random(record_type)
    for _ in range(40):
        record = sample_record(record_type, rng)
        assert reader.json_line(json.dumps(as_json(record))) == record


def test_a_field_with_a_default_may_be_left_out_of_a_json_line() -> None:
    record = sample_record(ADDRESS, random.Random(6))
    body = {k: v for k, v in as_json(record).items() if k != "dwelling_type"}
    assert parser(ADDRESS, "jsonl").json_line(json.dumps(body)) == {**record, "dwelling_type": None}


def test_timestamps_need_a_zone_and_come_back_aware() -> None:
    reader = parser("exchange.consent", "jsonl")
    body = as_json(sample_record("exchange.consent", random.Random(7)))
    got = reader.json_line(json.dumps({**body, "start": "2026-11-02T08:30:00+02:00"}))
    assert got["start"] == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    with pytest.raises(ParseError, match=r"^field 'start': expected an RFC 3339 time with a zone"):
        reader.json_line(json.dumps({**body, "start": "2026-11-02T08:30:00"}))


@pytest.mark.parametrize(("change", "problem"), [
    ({"moved_on": 20240101}, "field 'moved_on': expected a date \"YYYY-MM-DD\", got a number"),
    ({"moved_on": "01.02.2024"}, "field 'moved_on': expected a date \"YYYY-MM-DD\", got a string in another form"),
    ({"address_protected": 1}, "field 'address_protected': expected true or false, got a number"),
    ({"postal_code": 10115}, "field 'postal_code': expected a string, got a number"),
    ({"dwelling_type": "castle"}, "field 'dwelling_type': expected one of APARTMENT, HOUSE, OTHER"),
    ({"street_address": None}, "field 'street_address': expected a string, got null"),
    ({"shoe_size": 44}, "field 'shoe_size': not a field of this record type"),
    ({"person_id": ""}, "field 'person_id': the key field must not be empty"),
])
def test_a_json_value_of_the_wrong_type_names_the_field_not_the_value(change: dict[str, Any],
                                                                      problem: str) -> None:
    body = {**as_json(sample_record(ADDRESS, random.Random(8))), **change}
    with pytest.raises(ParseError) as caught:
        parser(ADDRESS, "jsonl").json_line(json.dumps(body))
    assert caught.value.reason == problem


def test_a_missing_field_and_nested_problems_are_named_with_their_path() -> None:
    body = as_json(sample_record("exchange.quarantine", random.Random(9)))
    del body["detail"]
    body["original_headers"][1]["value"] = "not base64!"
    with pytest.raises(ParseError) as caught:
        parser("exchange.quarantine", "jsonl").json_line(json.dumps(body))
    assert caught.value.reason == ("field 'detail': missing (expected string); field 'original_headers[1].value': "
                                   "expected standard base64 (A-Z a-z 0-9 + /, padded with =)")


@pytest.mark.parametrize(("line", "problem"), [
    ('{"person_id": "3900101', "not valid JSON: Unterminated string starting at (column 15)"),
    ("[1, 2]", "a line must be a JSON object, not an array"),
    ('{"person_id": "a", "person_id": "b"}', "field 'person_id' appears twice"),
    ('{"moved_on": NaN}', "not valid JSON (NaN is not a JSON number)"),
    ('"just a string"', "a line must be a JSON object, not a string"),
    ("[" * 100_000, "not valid JSON: nested too deeply"),
])
def test_a_line_that_is_not_one_json_object_is_refused(line: str, problem: str) -> None:
    with pytest.raises(ParseError) as caught:
        parser(ADDRESS, "jsonl").json_line(line)
    assert caught.value.reason == problem


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_a_record_or_a_parse_error(text: str) -> None:
    csv_reader, json_reader = parser(), parser(ADDRESS, "jsonl")
    header = csv_reader.header(",".join(CATALOGUE.current(ADDRESS).field_names))
    reasons = []
    for read in (lambda: csv_reader.csv_row(header, text), lambda: csv_reader.header(text),
                 lambda: json_reader.json_line(text)):
        try:
            read()
        except ParseError as exc:  # any other exception fails the test
            reasons.append(exc.reason)
    assert all(reasons)


# -- the line reader ----------------------------------------------------------------------------------------

def chunks(path: Path, *, quoted: bool = True) -> list[tuple[int, bytes, str | None]]:
    reader = LineFile(path)
    try:
        out = []
        while (chunk := reader.next(quoted=quoted)) is not None:
            out.append((chunk.line, chunk.data, chunk.problem))
        return out
    finally:
        reader.close()


def test_lines_are_numbered_as_an_editor_shows_them(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b'\xef\xbb\xbfa,b\r\n1,2\r\n\r\n  \n"x\r\ny",3\n4,"5\n')
    assert chunks(path) == [(1, b"a,b", None), (2, b"1,2", None), (6, b'"x\r\ny",3', None),
                            (7, b'4,"5', "a quoted value is not closed (a stray double quote?)")]


def test_a_stray_quote_makes_only_its_own_line_bad(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b'a,b\n1,"2\n' + b"3,4\n" * 100)
    got = chunks(path)
    assert got[1] == (2, b'1,"2', "a quoted value is not closed (a stray double quote?)")
    assert got[2:] == [(n, b"3,4", None) for n in range(3, 103)]


def test_an_overlong_line_is_one_bad_record_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"{}\n" + b"x" * (MAX_RECORD_BYTES + 10) + b"\n{}\n")
    got = chunks(path, quoted=False)
    assert [(line, problem) for line, _, problem in got] == [
        (1, None), (2, f"the line is longer than {MAX_RECORD_BYTES} bytes"), (3, None)]
    assert len(got[1][1]) == MAX_RECORD_BYTES


def test_a_reader_resumes_at_a_position_it_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(1, 8)))
    reader = LineFile(path)
    try:
        for _ in range(3):
            chunk = reader.next(quoted=False)
        assert chunk is not None
        assert chunk.line == 3
        reader.seek(0, 0)
        reader.seek(chunk.end, chunk.line)
        nxt = reader.next(quoted=False)
        assert nxt is not None
        assert (nxt.line, nxt.data) == (4, b'{"n": 4}')
        assert reader.skip_to(7)
        assert not reader.skip_to(8)
        assert reader.count_lines() == 7
    finally:
        reader.close()


# -- the config ---------------------------------------------------------------------------------------------

def test_the_config_fills_its_defaults_from_the_format_and_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "files.yaml"
    path.write_text(f"name: imports\nkind: files\nagency: population-registry\nrecord_type: {ADDRESS}\n"
                    f"directory: {tmp_path / 'drop'}\nformat: jsonl\n", encoding="utf-8")
    config = load_config(path, FilesSourceConfig, kind="files")
    assert (config.pattern, config.done_dir, config.rejected_dir, config.batch) == (
        "*.jsonl", tmp_path / "drop" / "done", tmp_path / "drop" / "rejected", 500)


@pytest.mark.parametrize(("extra", "line", "reason"), [
    ("format: xml\n", 6, "format: Input should be 'csv' or 'jsonl'"),
    ("format: csv\npattern: sub/*.csv\n", 7, "pattern: Value error, a glob of file names"),
    ("format: csv\ndone_dir: drop\n", 1, "three different folders"),
    ("format: csv\nbatch: 0\n", 7, "batch: Input should be greater than or equal to 1"),
])
def test_a_bad_files_config_is_refused_at_its_line(tmp_path: Path, extra: str, line: int, reason: str) -> None:
    path = tmp_path / "files.yaml"
    path.write_text(f"name: imports\nkind: files\nagency: population-registry\nrecord_type: {ADDRESS}\n"
                    f"directory: drop\n{extra}", encoding="utf-8")
    with pytest.raises(ConnectorConfigError) as caught:
        load_config(path, FilesSourceConfig, kind="files")
    assert (caught.value.line, reason in caught.value.reason) == (line, True), caught.value.reason
