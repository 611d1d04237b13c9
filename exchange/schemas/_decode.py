"""Avro binary decoding, compiled once per schema (and once per writer → reader pair) into small closures.

A reader takes ``(buffer, position)`` and returns ``(value, next position)``. Malformed input surfaces as
IndexError, ValueError (including UnicodeDecodeError), OverflowError, struct.error or :class:`BadValueError`; the
catalogue turns all of them into one DatumError. Resolving readers assume the pair passed the static check of
``_compat`` first.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from exchange.schemas._avro import EPOCH, EPOCH_ORDINAL, NAMED, PRIMITIVES, Names, default_value, kind, logical_type
from exchange.schemas._avro import resolve as _resolve
from exchange.schemas._compat import names_match, node_problems, writer_field
from exchange.schemas._encode import BadValueError
from exchange.schemas.errors import SchemaError

Reader = Callable[[bytes, int], tuple[Any, int]]

MALFORMED = (IndexError, ValueError, OverflowError, struct.error, BadValueError)
"""What a reader raises on malformed input."""

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_unpack_float = struct.Struct("<f").unpack_from
_unpack_double = struct.Struct("<d").unpack_from
_from_ordinal = date.fromordinal
_MICROSECOND = timedelta(microseconds=1)  # multiplying it is faster than building a timedelta from keywords


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint (at most 10 bytes, 64 bits)."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    n = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise BadValueError("varint longer than 10 bytes")
    if n >> 64:
        raise BadValueError("varint exceeds 64 bits")
    return (n >> 1) ^ -(n & 1), pos


def _r_null(buf: bytes, pos: int) -> tuple[Any, int]:
    return None, pos


def _r_boolean(buf: bytes, pos: int) -> tuple[Any, int]:
    b = buf[pos]
    if b > 1:
        raise BadValueError("boolean byte is neither 0 nor 1")
    return b == 1, pos + 1


def _r_float(buf: bytes, pos: int) -> tuple[Any, int]:
    return _unpack_float(buf, pos)[0], pos + 4


def _r_double(buf: bytes, pos: int) -> tuple[Any, int]:
    return _unpack_double(buf, pos)[0], pos + 8


def varint_readers(read_varint: Callable[[bytes, int], tuple[int, int]]) -> dict[str, Reader]:
    """Readers of the types whose encoding is or starts with a varint (int, long, bytes, string, date,
    timestamp-micros), reading it with ``read_varint``: :func:`read_long`, or a stricter one."""

    def r_int(buf: bytes, pos: int) -> tuple[Any, int]:
        value, pos = read_varint(buf, pos)
        if not _INT_MIN <= value <= _INT_MAX:
            raise BadValueError("int out of 32-bit range")
        return value, pos

    def r_bytes(buf: bytes, pos: int) -> tuple[Any, int]:
        b = buf[pos]
        if b < 0x80:
            n, pos = (b >> 1) ^ -(b & 1), pos + 1
        else:
            n, pos = read_varint(buf, pos)
        end = pos + n
        if n < 0 or end > len(buf):
            raise BadValueError("length runs past the end of the data")
        return buf[pos:end], end

    def r_string(buf: bytes, pos: int) -> tuple[Any, int]:
        # r_bytes inlined: strings are the most common field type.
        b = buf[pos]
        if b < 0x80:
            n, pos = (b >> 1) ^ -(b & 1), pos + 1
        else:
            n, pos = read_varint(buf, pos)
        end = pos + n
        if n < 0 or end > len(buf):
            raise BadValueError("length runs past the end of the data")
        return buf[pos:end].decode(), end

    def r_date(buf: bytes, pos: int) -> tuple[Any, int]:
        days, pos = r_int(buf, pos)
        return _from_ordinal(days + EPOCH_ORDINAL), pos

    def r_timestamp_micros(buf: bytes, pos: int) -> tuple[Any, int]:
        micros, pos = read_varint(buf, pos)
        return EPOCH + _MICROSECOND * micros, pos

    return {"int": r_int, "long": read_varint, "bytes": r_bytes, "string": r_string, "date": r_date,
            "timestamp-micros": r_timestamp_micros}


_PRIMITIVE_READERS: dict[str, Reader] = {
    "null": _r_null,
    "boolean": _r_boolean,
    "float": _r_float,
    "double": _r_double,
    **varint_readers(read_long),
}
_r_bytes = _PRIMITIVE_READERS["bytes"]
_r_string = _PRIMITIVE_READERS["string"]


def _as_float(inner: Reader) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        value, pos = inner(buf, pos)
        return float(value), pos

    return read


def _bytes_as_string(buf: bytes, pos: int) -> tuple[Any, int]:
    return _r_string(buf, pos)


# Avro spec promotions, keyed (writer, reader). int ↔ long share their wire form, so the reader's own decoder
# (with its range and logical type) serves those pairs.
_PROMOTED: dict[tuple[str, str], Reader] = {
    ("int", "float"): _as_float(read_long),
    ("int", "double"): _as_float(read_long),
    ("long", "float"): _as_float(read_long),
    ("long", "double"): _as_float(read_long),
    ("float", "double"): _r_float,
    ("string", "bytes"): _r_bytes,
    ("bytes", "string"): _bytes_as_string,
}


class _Compiler:
    """Compiles plain readers (writer == reader) and resolving readers (writer → reader)."""

    def __init__(self, writer_names: Names, reader_names: Names) -> None:
        self._wn = writer_names
        self._rn = reader_names
        self._memo: dict[tuple[str, str], Reader] = {}

    def plain(self, node: Any) -> Reader:
        """Read data written with ``node`` as ``node`` (the writer's names)."""
        return self.resolving(node, node, same=True)

    def resolving(self, writer: Any, reader: Any, *, same: bool = False) -> Reader:
        rn = self._wn if same else self._rn
        writer = _resolve(writer, self._wn)
        reader = _resolve(reader, rn)
        wk, rk = kind(writer), kind(reader)
        if wk == "union":
            if same:
                return _union_reader([self.plain(branch) for branch in writer])
            return _union_reader([self.resolving(branch, reader) for branch in writer])
        if rk == "union":
            return self.resolving(writer, reader[self._best_branch(writer, reader)])
        if wk in PRIMITIVES:
            if wk == rk or (wk, rk) == ("int", "long"):
                return _PRIMITIVE_READERS[logical_type(reader) or rk]
            return _PROMOTED[(wk, rk)]
        if wk == "array":
            return _array_reader(self.resolving(writer["items"], reader["items"], same=same))
        if wk == "map":
            return _map_reader(self.resolving(writer["values"], reader["values"], same=same))
        if wk == "fixed":
            return _fixed_reader(int(writer["size"]))
        if wk == "enum":
            return _enum_reader(writer, reader)
        return self._record(writer, reader, same)

    def _best_branch(self, writer: Any, reader: Sequence[Any]) -> int:
        # Avro spec: the first reader branch that matches; an exact match (same type, same name) is preferred
        # over a promotion, as in the Java resolver.
        wk = kind(writer)
        for i, branch in enumerate(reader):
            candidate = _resolve(branch, self._rn)
            if kind(candidate) == wk and (wk not in NAMED or names_match(candidate, writer)):
                return i
        for i, branch in enumerate(reader):
            if not node_problems(branch, writer, self._rn, self._wn):
                return i
        raise SchemaError("writer type matches no branch of the reader's union")

    def _record(self, writer: Mapping[str, Any], reader: Mapping[str, Any], same: bool) -> Reader:
        key = (writer["name"], "" if same else reader["name"])
        if key in self._memo:
            return self._memo[key]
        cell: list[Reader] = []

        def forward(buf: bytes, pos: int) -> tuple[Any, int]:  # stands in while a recursive record compiles
            return cell[0](buf, pos)

        self._memo[key] = forward
        rn = self._wn if same else self._rn
        by_writer_name: dict[str, str] = {}
        for field in reader["fields"]:
            source = writer_field(field, {f["name"]: f for f in writer["fields"]})
            if source is not None:
                by_writer_name[source["name"]] = field["name"]
        steps: list[tuple[str | None, Reader]] = []
        reader_types = {f["name"]: f["type"] for f in reader["fields"]}
        for field in writer["fields"]:
            target = by_writer_name.get(field["name"])
            if target is None:
                steps.append((None, self.plain(field["type"])))  # read and drop a field the reader lacks
            else:
                steps.append((target, self.resolving(field["type"], reader_types[target], same=same)))
        defaults = [
            (f["name"], default_value(f["type"], rn, f["default"])) for f in reader["fields"]
            if f["name"] not in by_writer_name.values()
        ]
        order = [f["name"] for f in reader["fields"]]
        record = _plain_record_reader(steps) if same else _resolving_record_reader(steps, defaults, order)
        cell.append(record)
        self._memo[key] = record
        return record


def _plain_record_reader(steps: Sequence[tuple[str | None, Reader]]) -> Reader:
    fields = tuple((name or "", read) for name, read in steps)

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        out = {}
        for name, field_reader in fields:
            out[name], pos = field_reader(buf, pos)
        return out, pos

    return read


def _resolving_record_reader(
    steps: Sequence[tuple[str | None, Reader]], defaults: Sequence[tuple[str, Any]], order: Sequence[str]
) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        values: dict[str, Any] = {}
        for name, field_reader in steps:
            value, pos = field_reader(buf, pos)
            if name is not None:
                values[name] = value
        for name, default in defaults:
            # A default list or dict must not be shared between decoded records.
            values[name] = copy.deepcopy(default) if isinstance(default, (list, dict)) else default
        return {name: values[name] for name in order}, pos

    return read


def _enum_reader(writer: Mapping[str, Any], reader: Mapping[str, Any]) -> Reader:
    fallback = reader.get("default")
    table = [s if s in reader["symbols"] else fallback for s in writer["symbols"]]

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(buf, pos)
        if index < 0 or index >= len(table):
            raise BadValueError("enum index out of range")
        symbol = table[index]
        if symbol is None:
            raise BadValueError("enum symbol unknown to the reader")
        return symbol, pos

    return read


def _fixed_reader(size: int) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        end = pos + size
        if end > len(buf):
            raise BadValueError("fixed runs past the end of the data")
        return buf[pos:end], end

    return read


def _union_reader(branches: Sequence[Reader]) -> Reader:
    count = len(branches)
    if count == 2:
        # The common optional field: the branch index is the single byte 0x00 or 0x02.
        first, second = branches
        if first is _r_null:

            def read_optional(buf: bytes, pos: int) -> tuple[Any, int]:
                b = buf[pos]
                if b == 0:
                    return None, pos + 1
                if b == 2:
                    return second(buf, pos + 1)
                raise BadValueError("union branch index out of range")

            return read_optional

        def read_pair(buf: bytes, pos: int) -> tuple[Any, int]:
            b = buf[pos]
            if b == 0:
                return first(buf, pos + 1)
            if b == 2:
                return second(buf, pos + 1)
            raise BadValueError("union branch index out of range")

        return read_pair

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(buf, pos)
        if index < 0 or index >= count:
            raise BadValueError("union branch index out of range")
        return branches[index](buf, pos)

    return read


def _blocks(buf: bytes, pos: int) -> tuple[int, int]:
    count, pos = read_long(buf, pos)
    if count < 0:  # Avro spec: a negative count is followed by the block's size in bytes
        count = -count
        _, pos = read_long(buf, pos)
    # Every item of our schemas takes at least one byte; a larger count is garbage, not a reason to loop.
    if count > len(buf) - pos:
        raise BadValueError("block count exceeds the data")
    return count, pos


def _array_reader(items: Reader) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        out: list[Any] = []
        count, pos = _blocks(buf, pos)
        while count:
            for _ in range(count):
                item, pos = items(buf, pos)
                out.append(item)
            count, pos = _blocks(buf, pos)
        return out, pos

    return read


def _map_reader(values: Reader) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        out: dict[str, Any] = {}
        count, pos = _blocks(buf, pos)
        while count:
            for _ in range(count):
                key, pos = _r_string(buf, pos)
                out[key], pos = values(buf, pos)
            count, pos = _blocks(buf, pos)
        return out, pos

    return read


def compile_reader(node: Any, names: Names) -> Reader:
    """A reader for data written with ``node``, returning values of that same schema."""
    return _Compiler(names, names).plain(node)


def compile_resolving_reader(writer: Any, writer_names: Names, reader: Any, reader_names: Names) -> Reader:
    """A reader for data written with ``writer`` that returns values of ``reader`` (Avro schema resolution).

    Raise SchemaError if the pair is not compatible (the static check of ``_compat`` says why).
    """
    problems = node_problems(reader, writer, reader_names, writer_names)
    if problems:
        raise SchemaError("; ".join(problems))
    return _Compiler(writer_names, reader_names).resolving(writer, reader)
