"""A record from JSON: each value read as its schema field's type, every bad field named, no value echoed.

The one JSON reading of every connector that takes records as JSON — the webhook's bodies, the files source's
JSON lines, the outbox's payloads, the feed's changes. JSON has no dates, times or bytes, so they are read from
strings:

============================  ==========================================================================
Avro type                     JSON value
============================  ==========================================================================
``string``, enum              a string (an enum's one of its symbols)
``int``, ``long``             an integer (no fraction, within range)
``float``, ``double``         a number
``boolean``, ``null``         ``true`` / ``false``, ``null``
``date``                      ``"YYYY-MM-DD"``
``timestamp-micros``          RFC 3339 with a zone: ``"2026-11-02T08:30:00Z"``, ``"…+02:00"``
``bytes``, fixed              standard base64 (a fixed one decoding to exactly its size)
array, map, record            an array, an object, an object
union                         the plain value of the first branch that reads it (``null`` for null)
============================  ==========================================================================

A field with a default may be left out. The problems say what was expected and what kind of JSON value came
(``expected a date "YYYY-MM-DD", got a number``), never the value: records carry personal data, and answers and
logs must not repeat it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connectors.sdk._fastjson import Unsure, fast_reader
from exchange import safeparse
from exchange.schemas import RecordSchema
from exchange.schemas._avro import default_value, describe, kind, logical_type, resolve
from exchange.schemas.errors import SchemaError

__all__ = ["FieldProblem", "JsonRecordError", "parse_json_object", "read_json_record", "record_from_json"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
_FLOAT32_MAX = 3.4028234663852886e38
_FAST: dict[tuple[str, bytes], Callable[[Mapping[str, Any]], dict[str, Any]] | None] = {}
"""The compiled reader of each schema seen (:mod:`connectors.sdk._fastjson`), or None when it has none."""
MAX_JSON_BYTES = 1 << 20
"""The largest JSON text :func:`parse_json_object` reads by default (1 MiB)."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One bad field: its path (``street``, ``children[2].birth_date``) and what was expected."""

    field: str
    problem: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


class _Bad(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class JsonRecordError(ValueError):
    """JSON that is not a record of its type; the message names the fields and what was expected, never a value."""

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def read_json_record(schema: RecordSchema, body: Mapping[str, Any]) -> dict[str, Any]:
    """The record ``body`` holds (see :func:`record_from_json`); :class:`JsonRecordError` listing every problem
    (``field 'moved_on': expected a date "YYYY-MM-DD", got a number; …``) if it is not one."""
    values, problems = record_from_json(schema, body)
    if problems:
        raise JsonRecordError("; ".join(f"field '{p.field}': {p.problem}" for p in problems), problems)
    return values


def parse_json_object(raw: Any, *, limit: int = MAX_JSON_BYTES) -> Mapping[str, Any]:
    """One JSON object from JSON text or UTF-8 bytes (within the size and depth limits of
    :mod:`exchange.safeparse`: at most ``limit`` bytes), or as a JSON column already read it (a mapping);
    :class:`JsonRecordError` saying why if it is not one."""
    if isinstance(raw, memoryview | bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRecordError("not UTF-8 text") from None
    if isinstance(raw, str):
        try:
            raw = safeparse.parse_json(raw, limit=limit)
        except safeparse.SafeParseError as exc:
            raise JsonRecordError(f"not JSON: {exc.reason}") from None
    if not isinstance(raw, Mapping):
        raise JsonRecordError(f"not a JSON object but {_json_kind(raw)}")
    return raw


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expected(what: str, value: Any) -> _Bad:
    return _Bad(f"expected {what}, got {_json_kind(value)}")


def record_from_json(schema: RecordSchema, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The record ``body`` holds, read against ``schema``'s fields, and every problem (empty if none)."""
    place = (schema.label, schema.fingerprint)
    if place not in _FAST:
        _FAST[place] = fast_reader(schema)
    fast = _FAST[place]
    if fast is not None:
        try:
            return fast(body), []
        except Unsure:
            pass  # the general reading takes it, and names what is wrong
    return general_record(schema, body)


def general_record(schema: RecordSchema, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldProblem]]:
    """:func:`record_from_json` without its fast path: what that path must agree with."""
    problems: list[FieldProblem] = []
    values = _record(schema.node, body, schema.names, "", problems)
    key = values.get(schema.key_field)
    if isinstance(key, str) and not key:
        problems.append(FieldProblem(schema.key_field, "the key field must not be empty"))
    return values, problems


def _record(node: Mapping[str, Any], body: Mapping[str, Any], names: Mapping[str, dict[str, Any]], prefix: str,
            problems: list[FieldProblem]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    known = set()
    for field in node["fields"]:
        name = str(field["name"])
        known.add(name)
        path = prefix + name
        if name not in body:
            if "default" in field:
                values[name] = default_value(field["type"], names, field["default"])
            else:
                problems.append(FieldProblem(path, f"missing (expected {describe(field['type'], names)})"))
            continue
        try:
            values[name] = _value(field["type"], body[name], names, path, problems)
        except _Bad as bad:
            problems.append(FieldProblem(path, bad.problem))
    for name in body:
        if name not in known:
            problems.append(FieldProblem(prefix + _printable(name), "not a field of this record type"))
    return values


def _printable(name: str) -> str:
    """A client's unknown key, bounded: it is a name the client chose, shown back so it can find its typo."""
    shown = name.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 64 else shown[:61] + "..."


def _value(node: Any, value: Any, names: Mapping[str, dict[str, Any]], path: str,
           problems: list[FieldProblem]) -> Any:
    """``value`` read as ``node``; raises _Bad for this value, or records nested problems and returns a stand-in."""
    node = resolve(node, names)
    k = kind(node)
    if k == "union":
        return _union(node, value, names, path, problems)
    if k in ("record", "error"):
        if not isinstance(value, dict):
            raise _expected(f"an object ({describe(node, names)})", value)
        return _record(node, value, names, path + ".", problems)
    if k == "array":
        if not isinstance(value, list):
            raise _expected("an array", value)
        return [_nested(node["items"], item, names, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    if k == "map":
        if not isinstance(value, dict):
            raise _expected("an object", value)
        return {key: _nested(node["values"], item, names, f"{path}.{_printable(key)}", problems)
                for key, item in value.items()}
    return _scalar(node, k, value, names)


def _nested(node: Any, value: Any, names: Mapping[str, dict[str, Any]], path: str,
            problems: list[FieldProblem]) -> Any:
    try:
        return _value(node, value, names, path, problems)
    except _Bad as bad:
        problems.append(FieldProblem(path, bad.problem))
        return None


def _union(branches: list[Any], value: Any, names: Mapping[str, dict[str, Any]], path: str,
           problems: list[FieldProblem]) -> Any:
    if value is None:
        if "null" in branches:
            return None
        raise _expected(describe(branches, names), value)
    others = [b for b in branches if b != "null"]
    if len(others) == 1:  # the common optional field: report what is wrong inside it
        return _value(others[0], value, names, path, problems)
    for branch in others:
        nested: list[FieldProblem] = []
        try:
            result = _value(branch, value, names, path, nested)
        except _Bad:
            continue
        if not nested:
            return result
    readable = " or ".join(describe(b, names) for b in branches)
    raise _expected(readable, value)


def _scalar(node: Any, k: str, value: Any, names: Mapping[str, dict[str, Any]]) -> Any:
    lt = logical_type(node)
    if lt == "date":
        text = _string_like(value, _DATE, 'a date "YYYY-MM-DD"')
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise _Bad("not a valid calendar date") from None
    if lt == "timestamp-micros":
        text = _string_like(value, _TIMESTAMP, 'an RFC 3339 time with a zone ("2026-11-02T08:30:00Z")')
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise _Bad("not a valid time") from None
    if k == "enum":
        symbols = "one of " + ", ".join(node["symbols"])
        if not isinstance(value, str):
            raise _expected(symbols, value)
        if value not in node["symbols"]:
            raise _Bad(f"expected {symbols}")
        return value
    if k == "fixed":
        data = _base64(value)
        if len(data) != node["size"]:
            raise _Bad(f"expected base64 of exactly {node['size']} bytes, got {len(data)}")
        return data
    return _primitive(k, value)


def _string_like(value: Any, shape: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str):
        raise _expected(what, value)
    if not shape.match(value):
        raise _Bad(f"expected {what}, got a string in another form")
    return value


def _null(value: Any) -> Any:
    if value is not None:
        raise _expected("null", value)
    return None


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _expected("true or false", value)
    return value


def _integer(bits: int) -> Callable[[Any], Any]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def read(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expected("an integer", value)
        if not low <= value <= high:
            raise _Bad(f"integer out of {bits}-bit range")
        return value

    return read


def _number(limit: float | None) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _expected("a number", value)
        number = float(value)
        if limit is not None and abs(number) > limit:
            raise _Bad("number out of 32-bit float range")
        return number

    return read


def _string(value: Any) -> Any:
    if not isinstance(value, str):
        raise _expected("a string", value)
    try:
        value.encode()
    except UnicodeEncodeError:
        raise _Bad("the string is not valid Unicode (a lone surrogate escape)") from None
    return value


def _primitive(k: str, value: Any) -> Any:
    try:
        read = _PRIMITIVES[k]
    except KeyError:
        raise SchemaError(f"no JSON reading for Avro type {k}") from None  # the catalogue admits no other type
    return read(value)


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _expected("a base64 string", value)
    if len(value) % 4 or not _BASE64.match(value):
        raise _Bad("expected standard base64 (A-Z a-z 0-9 + /, padded with =)")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _Bad("expected standard base64 (A-Z a-z 0-9 + /, padded with =)") from None


_PRIMITIVES: dict[str, Callable[[Any], Any]] = {
    "null": _null, "boolean": _boolean, "int": _integer(32), "long": _integer(64), "float": _number(_FLOAT32_MAX),
    "double": _number(None), "string": _string, "bytes": _base64,
}
