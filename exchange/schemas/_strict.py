"""Strict Avro decoding: only the writer's own encoding of a value is read, anything else is refused.

:class:`StrictReader` reads a single-object datum of one schema so; :func:`compile_strict_reader` is the
compiled reader it uses.

Avro allows several encodings of one value (a varint padded with ``0x80`` bytes, an array in many blocks or with
a negative count, a union value in a later branch that an earlier one would take, a map key twice). A verifier
that commits to a datum's bytes must refuse them; decoding, re-encoding and comparing does, at the cost of a
second pass. A strict reader reads a datum if and only if it decodes and re-encodes to itself, in one pass,
and hands out each top-level field's bytes on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from exchange.schemas._avro import PRIMITIVES, Names, kind, logical_type
from exchange.schemas._avro import resolve as _resolve
from exchange.schemas._decode import (
    _PRIMITIVE_READERS,
    MALFORMED,
    Reader,
    _Compiler,
    _r_null,
    _union_reader,
    _unpack_double,
    _unpack_float,
    read_long,
    varint_readers,
)
from exchange.schemas._encode import BadValueError, Writer, _pack_double, _pack_float, compile_writer
from exchange.schemas._model import RecordSchema
from exchange.schemas.errors import DatumError

__all__ = ["PartsReader", "StrictReader", "compile_strict_reader", "read_long_strict"]

PartsReader = Callable[[bytes, int], tuple[dict[str, Any], list[bytes], int]]
"""Reads a record: ``(record, each field's own encoding, end position)``."""


def read_long_strict(buf: bytes, pos: int) -> tuple[int, int]:
    """:func:`~exchange.schemas._decode.read_long`, refusing a varint longer than needed (a last byte of zero)."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    # Two and three bytes inline (lengths, dates, small amounts); a zero last byte takes the long way and fails.
    c = buf[pos + 1]
    if 0 < c < 0x80:
        n = (b & 0x7F) | (c << 7)
        return (n >> 1) ^ -(n & 1), pos + 2
    if c >= 0x80:
        d = buf[pos + 2]
        if 0 < d < 0x80:
            n = (b & 0x7F) | ((c & 0x7F) << 7) | (d << 14)
            return (n >> 1) ^ -(n & 1), pos + 3
    value, end = read_long(buf, pos)
    if buf[end - 1] == 0:
        raise BadValueError("varint longer than needed")
    return value, end


def _r_float(buf: bytes, pos: int) -> tuple[Any, int]:
    value = _unpack_float(buf, pos)[0]
    if _pack_float(value) != buf[pos:pos + 4]:  # a NaN whose payload the round trip through a double changes
        raise BadValueError("float does not re-encode to its bytes")
    return value, pos + 4


def _r_double(buf: bytes, pos: int) -> tuple[Any, int]:
    value = _unpack_double(buf, pos)[0]
    if _pack_double(value) != buf[pos:pos + 8]:
        raise BadValueError("double does not re-encode to its bytes")
    return value, pos + 8


_STRICT_READERS: dict[str, Reader] = {
    **_PRIMITIVE_READERS,  # null and boolean have one encoding per value already
    "float": _r_float,
    "double": _r_double,
    **varint_readers(read_long_strict),
}
_r_string = _STRICT_READERS["string"]


class _StrictCompiler(_Compiler):
    """Plain readers (writer == reader) that accept only the writer's encoding; records and fixed are shared."""

    def __init__(self, names: Names) -> None:
        super().__init__(names, names)
        self._names = names
        self._writers: dict[str, Writer] = {}

    def resolving(self, writer: Any, reader: Any, *, same: bool = False) -> Reader:
        node = _resolve(writer, self._names)
        k = kind(node)
        if k in PRIMITIVES:
            return _STRICT_READERS[logical_type(node) or k]
        if k == "union":
            return _union_reader_strict([self.plain(branch) for branch in node],
                                        [compile_writer(branch, self._names, self._writers) for branch in node])
        if k == "array":
            return _array_reader(self.plain(node["items"]))
        if k == "map":
            return _map_reader(self.plain(node["values"]))
        if k == "enum":
            return _enum_reader(len(node["symbols"]), node["symbols"])
        return super().resolving(writer, reader, same=True)  # records (their fields come back here) and fixed


def _enum_reader(count: int, symbols: Sequence[str]) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long_strict(buf, pos)
        if index < 0 or index >= count:
            raise BadValueError("enum index out of range")
        return symbols[index], pos

    return read


def _union_reader_strict(branches: Sequence[Reader], writers: Sequence[Writer]) -> Reader:
    if len(branches) == 2 and branches[0] is _r_null:
        return _union_reader(branches)  # the optional field: its reader takes only the bytes 0x00 and 0x02
    count = len(branches)

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long_strict(buf, pos)
        if index < 0 or index >= count:
            raise BadValueError("union branch index out of range")
        value, pos = branches[index](buf, pos)
        # The writer takes the first branch that accepts a value: a later one is not its encoding.
        for earlier in writers[:index]:
            try:
                earlier(value)
            except BadValueError:
                continue
            raise BadValueError("union value written in a later branch than the writer chooses")
        return value, pos

    return read


def _count(buf: bytes, pos: int) -> tuple[int, int]:
    # The writer writes one block with a positive count, then the terminating zero (or only the zero).
    count, pos = read_long_strict(buf, pos)
    if count < 0 or count > len(buf) - pos:
        raise BadValueError("block count is negative or exceeds the data")
    return count, pos


def _end_of_blocks(buf: bytes, pos: int) -> int:
    if buf[pos] != 0:
        raise BadValueError("more than one block")
    return pos + 1


def _array_reader(items: Reader) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        count, pos = _count(buf, pos)
        out: list[Any] = []
        if not count:
            return out, pos
        for _ in range(count):
            item, pos = items(buf, pos)
            out.append(item)
        return out, _end_of_blocks(buf, pos)

    return read


def _map_reader(values: Reader) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        count, pos = _count(buf, pos)
        out: dict[str, Any] = {}
        if not count:
            return out, pos
        for _ in range(count):
            key, pos = _r_string(buf, pos)
            if key in out:
                raise BadValueError("a map key appears twice")
            out[key], pos = values(buf, pos)
        return out, _end_of_blocks(buf, pos)

    return read


def compile_strict_reader(node: Any, names: Names) -> PartsReader:
    """For data written with the record ``node``: the record, each field's own encoding (in declaration order,
    slices of the buffer) and the end position.

    Only the writer's own encoding is read: a minimal varint for every length, count, index and number, one
    block per array or map, no map key twice, the first union branch that takes the value, float bits that
    survive the round trip. Anything else raises one of ``_decode.MALFORMED``. So a datum is read if and only
    if it decodes and re-encodes to itself.
    """
    compiler = _StrictCompiler(names)
    fields = tuple((str(f["name"]), compiler.plain(f["type"])) for f in _resolve(node, names)["fields"])

    def read(buf: bytes, pos: int) -> tuple[dict[str, Any], list[bytes], int]:
        record: dict[str, Any] = {}
        parts: list[bytes] = []
        for name, field_reader in fields:
            start = pos
            record[name], pos = field_reader(buf, pos)
            parts.append(buf[start:pos])
        return record, parts, pos

    return read


class StrictReader:
    """Reads the datums of one record schema strictly, with each top-level field's bytes.

    ``read(message, offset)`` returns what ``schema.decode_datum(message, offset)`` returns and, per field in
    declaration order, what ``schema.encode_parts`` would give for it, and raises :class:`DatumError` for any
    datum that does not decode *and re-encode to itself* (non-canonical, malformed, trailing bytes).
    """

    __slots__ = ("_label", "_read")

    def __init__(self, schema: RecordSchema) -> None:
        self._read = compile_strict_reader(schema.node, schema.names)
        self._label = schema.label

    def read(self, data: bytes, offset: int = 0) -> tuple[dict[str, Any], list[bytes]]:
        """The record and its fields' encodings; DatumError unless ``data[offset:]`` is one canonical datum."""
        try:
            record, parts, end = self._read(data, offset)
        except MALFORMED as exc:
            raise DatumError(f"{self._label}: not the canonical encoding of one datum") from exc
        if end != len(data):
            raise DatumError(f"{self._label}: {len(data) - end} trailing bytes after the datum")
        return record, parts
