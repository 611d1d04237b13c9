"""One line of a drop-folder file read as a record of its type: a CSV row under its header, or a JSON line.

Every value is converted to its schema field's type, as :mod:`exchange.schemas.samples` represents it (``date``
for a date, a timezone-aware ``datetime`` for a timestamp, ``bool``, ``int``, an enum's symbol as a string). A
JSON line is read exactly as the HTTP webhook reads a body (:mod:`connectors.sdk.jsonrecord`: dates
``"YYYY-MM-DD"``, timestamps RFC 3339 with a zone, bytes base64, ``null`` for an optional field), and a CSV cell
by the same rules written as text:

==========================  ================================================================================
Avro type                   CSV cell
==========================  ================================================================================
``string``                  the text as is (a quoted cell may hold commas, quotes and line breaks)
enum                        one of its symbols
``int``, ``long``           ``-12``, ``+7`` (in range; no spaces, no fraction)
``float``, ``double``       ``3.25``, ``-1e3`` (finite)
``boolean``                 ``true`` / ``false`` in any letter case, or ``1`` / ``0``
``date``                    ``YYYY-MM-DD``
``timestamp-micros``        RFC 3339 with a zone: ``2026-11-02T08:30:00Z``, ``…+02:00``
``bytes``, fixed            standard base64, padded
optional (``[null, T]``)    an empty cell is null (so an optional string cannot be the empty string)
array, map, record          not in CSV: a config with such a field is refused; use JSON lines
==========================  ================================================================================

A field with a default may be left out (a CSV header need not name it). Problems name the field and the
expected type — ``field 'tax_year': expected int`` — and never the value: the files are registers of personal
data, and dead letters and logs must not repeat it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.files._convert import Bad, cell_converter, printable
from connectors.files.config import Format
from connectors.files.errors import FilesConfigError, ParseError
from connectors.sdk.jsonrecord import record_from_json
from exchange.schemas import RecordSchema
from exchange.schemas._avro import default_value

__all__ = ["CsvHeader", "RecordParser"]


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """A checked header: the columns in file order, and the values of the fields it leaves to their defaults."""

    columns: tuple[str, ...]
    defaults: Mapping[str, Any]


class RecordParser:
    """Reads lines of one record type in one format; :class:`FilesConfigError` if the type has a field the format
    cannot carry (an array in CSV)."""

    def __init__(self, schema: RecordSchema, file_format: Format) -> None:
        self.schema, self.format = schema, file_format
        names = schema.names
        self._key = schema.key_field
        self._fields = [(str(f["name"]), f) for f in schema.node["fields"]]
        self._names = frozenset(name for name, _ in self._fields)
        self._defaults = {name: default_value(f["type"], names, f["default"])
                          for name, f in self._fields if "default" in f}
        self._json = file_format == "jsonl"
        try:
            self._convert = {} if self._json else {name: cell_converter(f["type"], names) for name, f in self._fields}
        except Bad as bad:
            raise FilesConfigError(f"{schema.label}: {bad.problem}") from None

    # -- CSV ------------------------------------------------------------------------------------------------

    def header(self, text: str) -> CsvHeader:
        """The header row ``text`` checked against the schema: every column a field, none twice, every field
        without a default present; :class:`ParseError` listing what is wrong."""
        columns = _csv_cells(text)
        if columns == [""]:
            raise ParseError("the header row is empty")
        seen: set[str] = set()
        unknown, twice = [], []
        for column in columns:
            if column in seen:
                twice.append(f"'{printable(column)}'")
            elif column not in self._names:
                unknown.append(f"'{printable(column)}'")
            seen.add(column)
        missing = [name for name, _ in self._fields if name not in seen and name not in self._defaults]
        problems = [f"{label} {', '.join(names)}" for label, names in (
            ("unknown column" + _s(unknown), unknown), ("column" + _s(twice) + " given twice:", twice),
            ("missing column" + _s(missing), missing)) if names]
        if problems:
            fields = ", ".join(name for name, _ in self._fields)
            raise ParseError(f"{'; '.join(problems)} (the columns are fields of {self.schema.label}: {fields})")
        defaults = {name: value for name, value in self._defaults.items() if name not in seen}
        return CsvHeader(tuple(columns), defaults)

    def csv_row(self, header: CsvHeader, text: str) -> dict[str, Any]:
        """The record of one CSV row under ``header``; :class:`ParseError` naming every bad field."""
        cells = _csv_cells(text)
        if len(cells) != len(header.columns):
            raise ParseError(f"the row has {len(cells)} values; the header has {len(header.columns)} columns")
        problems: list[str] = []
        values: dict[str, Any] = dict(header.defaults)
        for column, cell in zip(header.columns, cells, strict=True):
            try:
                values[column] = self._convert[column](cell)
            except Bad as bad:
                problems.append(f"field '{column}': {bad.problem}")
        return self._finish(values, problems)

    # -- JSON lines -----------------------------------------------------------------------------------------

    def json_line(self, text: str) -> dict[str, Any]:
        """The record of one JSON line; :class:`ParseError` naming every bad field."""
        try:
            body = _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
        except Bad as bad:
            raise ParseError(bad.problem) from None
        except RecursionError:
            raise ParseError("not valid JSON: nested too deeply") from None
        if not isinstance(body, dict):
            raise ParseError(f"a line must be a JSON object, not {_json_kind(body)}")
        values, problems = record_from_json(self.schema, body)
        if problems:
            raise ParseError("; ".join(f"field '{p.field}': {p.problem}" for p in problems))
        return values

    def _finish(self, values: dict[str, Any], problems: list[str]) -> dict[str, Any]:
        if values.get(self._key) == "":
            problems.append(f"field {self._key!r}: the key field must not be empty")
        if problems:
            raise ParseError("; ".join(problems))
        return values


# -- helpers ------------------------------------------------------------------------------------------------

def _csv_cells(text: str) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise ParseError(f"not valid CSV ({exc})") from None
    if len(rows) != 1:
        raise ParseError(f"not one CSV row ({len(rows)} rows)")
    return rows[0]


def _s(items: list[str]) -> str:
    return "s" if len(items) > 1 else ""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a key repeated: name the first one that is
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Bad(f"field '{printable(key)}' appears twice")
            seen.add(key)
    return out


def _no_constant(name: str) -> Any:
    raise Bad(f"not valid JSON ({name} is not a JSON number)")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
"""One decoder for every line (``json.loads`` with hooks builds a new one per call)."""


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "a number"


