"""An outbox row's ``payload``, JSON, read as a record of its type.

JSON has no dates, times or bytes, so a payload carries them as text, which is read here by the field's Avro
type; every other value is taken as it is and the schema's own encoder checks it (naming each bad field, never
repeating a value):

======================  =================================================
Avro type               JSON value
======================  =================================================
``date``                ``"YYYY-MM-DD"``
``timestamp-micros``    RFC 3339 with a zone: ``"2026-11-02T08:30:00Z"``
``bytes``, fixed        standard base64
a field with a default  may be left out
======================  =================================================
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from exchange import safeparse
from exchange.schemas import RecordSchema
from exchange.schemas._avro import default_value, kind, logical_type, resolve
from exchange.schemas.errors import RecordValidationError

__all__ = ["PayloadError", "read_payload"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z")
MAX_PAYLOAD_BYTES = 1 << 20


class PayloadError(ValueError):
    """A payload that is not a record of its type; the message names the fields, not their values."""


def parse_json(raw: Any) -> Mapping[str, Any]:
    """The JSON object of a payload column: JSON text (or bytes), or the value a JSON column was read as."""
    if isinstance(raw, memoryview | bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("the payload is not UTF-8 text") from None
    if isinstance(raw, str):
        try:
            raw = safeparse.parse_json(raw, limit=MAX_PAYLOAD_BYTES)
        except safeparse.SafeParseError as exc:
            raise PayloadError(f"the payload is not JSON: {exc.reason}") from None
    if not isinstance(raw, dict):
        raise PayloadError("the payload is not a JSON object")
    return raw


def read_payload(schema: RecordSchema, raw: Any) -> dict[str, Any]:
    """The record ``raw`` holds, as :meth:`RecordSchema.encode` accepts it; PayloadError naming every bad,
    missing or unknown field if it is not one."""
    body = parse_json(raw)
    unread: dict[str, str] = {}
    values: dict[str, Any] = {name: value for name, value in body.items() if name not in schema.field_names}
    for field in schema.node["fields"]:
        name = str(field["name"])
        if name not in body:
            if "default" in field:
                values[name] = default_value(field["type"], schema.names, field["default"])
            continue  # the encoder reports it missing
        try:
            values[name] = _value(field["type"], body[name], schema.names)
        except PayloadError as exc:
            unread[name] = f"field {name!r}: {exc}"
    try:
        schema.encode(values)
    except RecordValidationError as exc:
        problems = list(unread.values()) + [p for p in exc.problems if not any(
            p.startswith(f"field {name!r}:") for name in unread)]
        raise PayloadError(f"{schema.label}: " + "; ".join(problems)) from None
    if unread:  # only the fields read here were wrong
        raise PayloadError(f"{schema.label}: " + "; ".join(unread.values()))
    return values


def _value(node: Any, value: Any, names: Mapping[str, dict[str, Any]]) -> Any:
    node = resolve(node, names)
    k = kind(node)
    if k == "union":
        return _union(node, value, names)
    if k in ("record", "error") and isinstance(value, dict):
        return {str(f["name"]): _value(f["type"], value[f["name"]], names) if f["name"] in value
                else default_value(f["type"], names, f["default"]) if "default" in f else None
                for f in node["fields"]}
    if k == "array" and isinstance(value, list):
        return [_value(node["items"], item, names) for item in value]
    if k == "map" and isinstance(value, dict):
        return {key: _value(node["values"], item, names) for key, item in value.items()}
    lt = logical_type(node)
    if lt == "date":
        return _date(value)
    if lt == "timestamp-micros":
        return _timestamp(value)
    if k in ("bytes", "fixed"):
        return _base64(value)
    return value  # the encoder checks it


def _union(branches: list[Any], value: Any, names: Mapping[str, dict[str, Any]]) -> Any:
    if value is None:
        return None
    others = [b for b in branches if b != "null"]
    if len(others) == 1:
        return _value(others[0], value, names)
    for branch in others:  # the first branch that reads text as a date, time or bytes, or reads a nested value
        try:
            candidate = _value(branch, value, names)
        except PayloadError:
            continue
        if candidate is not value:
            return candidate
    return value


def _date(value: Any) -> date:
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PayloadError('expected a date "YYYY-MM-DD"')


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str) and _TIMESTAMP.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise PayloadError('expected an RFC 3339 time with a zone ("2026-11-02T08:30:00Z")')


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise PayloadError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("expected standard base64") from None

