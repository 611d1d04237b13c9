"""Avro binary encoding, compiled once per schema into small closures (the hot path builds no schema objects).

A writer takes a Python value and returns its Avro binary encoding, or raises :class:`BadValueError` with a reason
that never includes the value itself. A record's encoding is the concatenation of its fields' encodings, so the
per-field bytes used for commitments and the whole datum come out of one pass.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from exchange.schemas._avro import EPOCH, EPOCH_ORDINAL, NAMED, Names, describe, kind, logical_type, resolve
from exchange.schemas.errors import RecordValidationError, SchemaError, UnknownFieldError

Writer = Callable[[Any], bytes]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_ONE_BYTE = [bytes((i,)) for i in range(128)]  # every varint below 0x80 is this single byte
_pack_float = struct.Struct("<f").pack
_pack_double = struct.Struct("<d").pack


class BadValueError(SchemaError):
    """A value does not fit its Avro type (internal: turned into RecordValidationError by the record writer)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _got(expected: str, value: Any) -> BadValueError:
    return BadValueError(f"expected {expected}, got {type(value).__name__}")


def varint(n: int) -> bytes:
    """The Avro varint of a non-negative (already zig-zagged) integer."""
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:  # two bytes: lengths up to 8 KiB, dates near the epoch
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 0x200000:  # three bytes: every date of this century
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _is_int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _w_null(value: Any) -> bytes:
    if value is not None:
        raise _got("null", value)
    return b""


def _w_boolean(value: Any) -> bytes:
    if value is True:
        return b"\x01"
    if value is False:
        return b"\x00"
    raise _got("boolean", value)


def _w_int(value: Any) -> bytes:
    if not _is_int(value):
        raise _got("int", value)
    if not _INT_MIN <= value <= _INT_MAX:
        raise BadValueError("int out of 32-bit range")
    return varint((value << 1) ^ (value >> 63))


def _w_long(value: Any) -> bytes:
    if not _is_int(value):
        raise _got("long", value)
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise BadValueError("long out of 64-bit range")
    return varint((value << 1) ^ (value >> 63))


def _w_float(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _got("float", value)
    try:
        return _pack_float(value)
    except OverflowError as exc:
        raise BadValueError("float out of 32-bit range") from exc


def _w_double(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _got("double", value)
    return _pack_double(value)


def _w_bytes(value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise _got("bytes", value)
    return varint(len(value) << 1) + bytes(value)


def _w_string(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _got("string", value)
    try:
        data = value.encode()
    except UnicodeEncodeError as exc:
        raise BadValueError("string is not valid Unicode") from exc
    n = len(data)
    return (_ONE_BYTE[n << 1] if n < 64 else varint(n << 1)) + data


def _w_date(value: Any) -> bytes:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise _got("date", value)
    days = value.toordinal() - EPOCH_ORDINAL
    return varint((days << 1) ^ (days >> 63))


def _w_timestamp_micros(value: Any) -> bytes:
    if not isinstance(value, datetime):
        raise _got("datetime", value)
    try:
        delta = value - EPOCH
    except TypeError as exc:
        # A naive datetime is ambiguous; refusing it keeps commitments and decoded values exact.
        raise BadValueError("datetime must be timezone-aware") from exc
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return varint((micros << 1) ^ (micros >> 63))


_PRIMITIVE_WRITERS: dict[str, Writer] = {
    "null": _w_null,
    "boolean": _w_boolean,
    "int": _w_int,
    "long": _w_long,
    "float": _w_float,
    "double": _w_double,
    "bytes": _w_bytes,
    "string": _w_string,
    "date": _w_date,
    "timestamp-micros": _w_timestamp_micros,
}


def compile_writer(node: Any, names: Names, memo: dict[str, Writer] | None = None) -> Writer:
    """A writer for a normalised schema node; ``memo`` shares named types (and allows recursive ones)."""
    memo = {} if memo is None else memo
    if isinstance(node, str) and node in memo:
        return memo[node]
    node = resolve(node, names)
    k = kind(node)
    primitive = _PRIMITIVE_WRITERS.get(logical_type(node) or k)
    if primitive is not None:
        return primitive
    if k == "union":
        return _union_writer(node, names, memo)
    if k == "array":
        return _array_writer(compile_writer(node["items"], names, memo))
    if k == "map":
        return _map_writer(compile_writer(node["values"], names, memo))
    if k not in NAMED:
        raise SchemaError(f"cannot encode type {k}")
    full = node["name"]
    if full in memo:
        return memo[full]
    if k == "enum":
        writer = _enum_writer(node)
    elif k == "fixed":
        writer = _fixed_writer(node)
    else:
        return RecordWriter(node, names, memo).nested  # registers itself in memo
    memo[full] = writer
    return writer


def _enum_writer(node: Mapping[str, Any]) -> Writer:
    index = {symbol: varint(i << 1) for i, symbol in enumerate(node["symbols"])}
    label = str(node["name"]).rsplit(".", 1)[-1]

    def write(value: Any) -> bytes:
        encoded = index.get(value) if isinstance(value, str) else None
        if encoded is None:
            raise BadValueError(f"not a symbol of enum {label} ({', '.join(index)})")
        return encoded

    return write


def _fixed_writer(node: Mapping[str, Any]) -> Writer:
    size = int(node["size"])

    def write(value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray)):
            raise _got(f"{size} bytes", value)
        if len(value) != size:
            raise BadValueError(f"expected exactly {size} bytes, got {len(value)}")
        return bytes(value)

    return write


def _union_writer(node: Sequence[Any], names: Names, memo: dict[str, Writer]) -> Writer:
    branches = [(varint(i << 1), compile_writer(branch, names, memo)) for i, branch in enumerate(node)]
    label = describe(node, names)
    if len(node) == 2 and node[0] == "null":
        # The common optional field: one identity test instead of trying branches.
        inner = branches[1][1]

        def write_optional(value: Any) -> bytes:
            if value is None:
                return b"\x00"
            try:
                return b"\x02" + inner(value)
            except BadValueError as exc:
                raise BadValueError(f"{exc.reason} (or null)") from exc

        return write_optional

    def write(value: Any) -> bytes:
        for prefix, writer in branches:
            try:
                return prefix + writer(value)
            except BadValueError:
                continue
        raise BadValueError(f"matches no branch of {label}")

    return write


def _array_writer(items: Writer) -> Writer:
    def write(value: Any) -> bytes:
        if not isinstance(value, (list, tuple)):
            raise _got("array (list)", value)
        if not value:
            return b"\x00"
        parts = [varint(len(value) << 1)]
        for i, item in enumerate(value):
            try:
                parts.append(items(item))
            except BadValueError as exc:
                raise BadValueError(f"item {i}: {exc.reason}") from exc
        parts.append(b"\x00")
        return b"".join(parts)

    return write


def _map_writer(values: Writer) -> Writer:
    def write(value: Any) -> bytes:
        if not isinstance(value, Mapping):
            raise _got("map (dict)", value)
        if not value:
            return b"\x00"
        parts = [varint(len(value) << 1)]
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadValueError("map keys must be strings")
            try:
                parts.append(_w_string(key) + values(item))
            except BadValueError as exc:
                raise BadValueError(f"value of a key: {exc.reason}") from exc
        parts.append(b"\x00")
        return b"".join(parts)

    return write


class RecordWriter:
    """Encodes a record field by field, reporting every bad field at once."""

    __slots__ = ("_by_name", "_count", "_label", "_writers")

    def __init__(
        self, node: Mapping[str, Any], names: Names, memo: dict[str, Writer] | None = None, label: str | None = None
    ) -> None:
        memo = {} if memo is None else memo
        self._label = label or str(node["name"])
        memo[str(node["name"])] = self.nested  # before the fields, so a record may contain itself
        self._writers: tuple[tuple[str, Writer], ...] = tuple(
            (str(f["name"]), compile_writer(f["type"], names, memo)) for f in node["fields"]
        )
        self._by_name = dict(self._writers)
        self._count = len(self._writers)

    def parts(self, record: Mapping[str, Any]) -> list[bytes]:
        """Each field's encoding in declaration order; RecordValidationError lists every bad field."""
        try:
            # Optimistic: one comprehension for a valid record; the field-by-field pass only on failure.
            parts = [writer(record[name]) for name, writer in self._writers]
        except (KeyError, BadValueError):
            pass
        else:
            if len(record) == self._count:
                return parts
        problems, _ = self.problems_and_parts(record)
        raise RecordValidationError(self._label, problems)

    def nested(self, value: Any) -> bytes:
        """The writer used when this record is the type of a field of another record."""
        if not isinstance(value, Mapping):
            raise _got("record (dict)", value)
        problems, parts = self.problems_and_parts(value)
        if problems:
            raise BadValueError("; ".join(problems))
        return b"".join(parts)

    def problems_and_parts(self, record: Mapping[str, Any]) -> tuple[list[str], list[bytes]]:
        """Every problem of ``record`` (one line per bad field) and the encodings of the good fields."""
        problems: list[str] = []
        parts: list[bytes] = []
        for name, writer in self._writers:
            try:
                value = record[name]
            except KeyError:
                problems.append(f"field {name!r}: missing")
                continue
            try:
                parts.append(writer(value))
            except BadValueError as exc:
                problems.append(f"field {name!r}: {exc.reason}")
        if problems or len(record) != self._count:
            problems.extend(
                f"field {key!r}: unknown field of {self._label}" for key in record if key not in self._by_name
            )
        return problems, parts

    def field(self, name: str, value: Any) -> bytes:
        """One field's encoding under that field's schema alone."""
        try:
            writer = self._by_name[name]
        except KeyError as exc:
            raise UnknownFieldError(f"{self._label} has no field {name!r}") from exc
        try:
            return writer(value)
        except BadValueError as exc:
            raise RecordValidationError(self._label, [f"field {name!r}: {exc.reason}"]) from exc
