"""The fast path of :func:`connectors.sdk.jsonrecord.record_from_json`: a reader compiled once per schema, with
one converter per field, for records that read without a problem (the common case in a bulk import).

It accepts only what the general reading accepts, with the same values; anything it is not sure of — a value of
another JSON kind, a nested record, an unknown or missing field, an empty key — gives up (:class:`Unsure`) and
the general reading takes the record again, so problems are always found and worded by that one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from exchange.schemas import RecordSchema
from exchange.schemas._avro import kind, logical_type, resolve

__all__ = ["Unsure", "fast_reader"]

Convert = Callable[[Any], Any]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z")
_FLOAT32_MAX = 3.4028234663852886e38


class Unsure(Exception):  # noqa: N818 - a signal to take the general path, never an error
    """The fast reader cannot read this record by itself."""


_UNSURE = Unsure()


def fast_reader(schema: RecordSchema) -> Callable[[Mapping[str, Any]], dict[str, Any]] | None:
    """The compiled reader of ``schema``'s records (each field there, none left to its default), or None if a
    field's type has no fast converter."""
    converters: list[tuple[str, Convert]] = []
    for field in schema.node["fields"]:
        convert = _converter(field["type"], schema.names)
        if convert is None:
            return None
        converters.append((str(field["name"]), convert))
    return _reader(converters, schema.key_field)


def _reader(converters: list[tuple[str, Convert]], key: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    count = len(converters)

    def read(body: Mapping[str, Any]) -> dict[str, Any]:
        if len(body) != count:
            raise _UNSURE
        try:
            values = {name: convert(body[name]) for name, convert in converters}
        except (KeyError, ValueError):  # a field missing; a date that is no calendar date
            raise _UNSURE from None
        if values.get(key) == "":
            raise _UNSURE
        return values

    return read


def _converter(node: Any, names: Mapping[str, dict[str, Any]]) -> Convert | None:
    node = resolve(node, names)
    k = kind(node)
    if k == "union":
        others = [b for b in node if b != "null"]
        if len(others) != 1 or len(node) != 2:
            return None
        inner = _converter(others[0], names)
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    lt = logical_type(node)
    if lt == "date":
        return _date
    if lt == "timestamp-micros":
        return _timestamp
    if k == "enum":
        symbols = frozenset(node["symbols"])

        def enum(v: Any) -> Any:
            if type(v) is not str or v not in symbols:
                raise _UNSURE
            return v

        return enum
    return _PRIMITIVES.get(k)


def _string(v: Any) -> Any:
    if type(v) is not str or not (v.isascii() or _encodes(v)):
        raise _UNSURE
    return v


def _encodes(v: str) -> bool:
    try:
        v.encode()
    except UnicodeEncodeError:
        return False
    return True


def _boolean(v: Any) -> Any:
    if type(v) is not bool:
        raise _UNSURE
    return v


def _integer(bits: int) -> Convert:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def read(v: Any) -> Any:
        if type(v) is not int or not low <= v <= high:
            raise _UNSURE
        return v

    return read


def _number(limit: float | None) -> Convert:
    def read(v: Any) -> Any:
        if type(v) is not float and type(v) is not int:
            raise _UNSURE
        number = float(v)
        if limit is not None and abs(number) > limit:
            raise _UNSURE
        return number

    return read


def _null(v: Any) -> Any:
    if v is not None:
        raise _UNSURE
    return None


def _date(v: Any) -> Any:
    if type(v) is not str or not _DATE.match(v):
        raise _UNSURE
    return date.fromisoformat(v)


def _timestamp(v: Any) -> Any:
    if type(v) is not str or not _TIMESTAMP.match(v):
        raise _UNSURE
    return datetime.fromisoformat(v)


_PRIMITIVES: dict[str, Convert] = {
    "null": _null, "boolean": _boolean, "int": _integer(32), "long": _integer(64), "float": _number(_FLOAT32_MAX),
    "double": _number(None), "string": _string,
}
