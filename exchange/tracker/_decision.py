"""The current ``exchange.decision`` revision read without the generic decoder, for the tracker's indexer.

An entry is read field by field with the generic decoder's checks (UTF-8, varint and int bounds, union branches,
block counts, no trailing bytes) but without building the record: the fields the index keeps come out as they
are, the rest are checked and skipped. Anything not accepted here, or a time the generic path would turn into a
number differently, raises one of :data:`MALFORMED_ENTRY` and goes to the generic decoder, which names what is
wrong. A revision with another layout is read generically (:func:`decision_header` is None for it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from exchange.schemas import Catalogue, SchemaError
from exchange.schemas._decode import MALFORMED, read_long
from exchange.schemas._encode import BadValueError
from exchange.schemas._model import HEADER_SIZE

__all__ = ["MALFORMED_ENTRY", "Decision", "decision_header", "read_decision"]

DECISION_TYPE = "exchange.decision"
Decision = tuple[int, str | None, str | None, str | None, str | None, str | None, str, str | None, str | None,
                 str | None, str, tuple[str, ...], tuple[str, ...]]
"""decided_at (µs), subject_ref, recipient, event_type, event_id, agreement_id, bundle_id, purpose,
legal_basis, consent_ref, outcome, fields_released, reason_codes."""


class _Unusual(Exception):  # noqa: N818 - not an error: a shape left to the generic decoder
    """An entry not read here."""


_LAYOUT: tuple[tuple[str, Any], ...] = (
    ("decision_id", "string"), ("decided_at", {"type": "long", "logicalType": "timestamp-micros"}),
    ("router_id", "string"), ("event_id", ["null", "string"]), ("event_type", ["null", "string"]),
    ("event_source", ["null", "string"]), ("ingress_topic", "string"), ("ingress_partition", "int"),
    ("ingress_offset", "long"), ("event_digest", ["null", "fixed32"]),
    ("subject_ref", ["null", "bytes"]), ("recipient", ["null", "string"]), ("agreement_id", ["null", "string"]),
    ("agreement_version", ["null", "int"]), ("bundle_id", "string"), ("purpose", ["null", "string"]),
    ("legal_basis", ["null", "string"]), ("consent_ref", ["null", "string"]),
    ("outcome", "enum:PERMIT,DENY,REJECT"), ("reason_codes", {"type": "array", "items": "string"}),
    ("fields_released", {"type": "array", "items": "string"}),
    ("event_time", ["null", {"type": "long", "logicalType": "timestamp-micros"}]),
    ("restrictions_held", {"type": "array", "items": "string"}), ("consent_offset", ["null", "long"]))
_OUTCOMES = ("PERMIT", "DENY", "REJECT")
_DECIDED = range(2**52)
"""The decision times (µs, to about 2112) the generic path turns into the same number: before 1970 it truncates
seconds towards zero, and later its float seconds may round a time up."""
_TIMES = range(-62135596800 * 10**6, 253402300800 * 10**6)
"""The times the generic decoder makes datetimes of (years 1 to 9999)."""
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
MALFORMED_ENTRY = (*MALFORMED, _Unusual)
"""What :func:`read_decision` raises: the entry is to be read by the generic decoder."""
_headers: dict[int, tuple[Catalogue, bytes | None]] = {}


def decision_header(catalogue: Catalogue) -> bytes | None:
    """The single-object header of the current decision revision if it has the layout read here, else None."""
    found = _headers.get(id(catalogue))
    if found is None or found[0] is not catalogue:
        try:
            schema = catalogue.current(DECISION_TYPE)
        except SchemaError:
            found = _headers[id(catalogue)] = (catalogue, None)
            return None
        layout = tuple((f["name"], _plain(f["type"], schema.names)) for f in schema.node["fields"])
        found = _headers[id(catalogue)] = (catalogue, schema.header if layout == _LAYOUT else None)
    return found[1]


def _plain(node: Any, names: Mapping[str, Any]) -> Any:
    """A field's type as the layout above spells it (named types by their shape, docs left out)."""
    if isinstance(node, list):
        return [_plain(branch, names) for branch in node]
    if isinstance(node, str) and node in names:
        node = names[node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "fixed":
        return f"fixed{node.get('size')}"
    if kind == "enum":
        return "enum:" + ",".join(node.get("symbols") or ())
    if kind == "array":
        return {"type": "array", "items": _plain(node.get("items"), names)}
    return {k: node[k] for k in ("type", "logicalType") if k in node}


def read_decision(buf: bytes) -> Decision:
    """What the index keeps of an entry of the current revision (header included); :data:`MALFORMED_ENTRY`
    for anything it does not read itself."""
    _, pos = _string(buf, HEADER_SIZE)  # decision_id
    decided, pos = _decided(buf, pos)
    _, pos = _string(buf, pos)  # router_id
    event_id, pos = _optional(buf, pos)
    event_type, pos = _optional(buf, pos)
    _, pos = _optional(buf, pos)  # event_source
    _, pos = _string(buf, pos)  # ingress_topic
    pos = _int(buf, pos)  # ingress_partition
    _, pos = read_long(buf, pos)  # ingress_offset
    pos = _branch(buf, pos, _digest)  # event_digest
    if buf[pos] == 2:
        subject, pos = _bytes(buf, pos + 1)
        subject_ref: str | None = subject.decode("ascii", "replace")
    else:
        subject_ref, pos = _optional(buf, pos)  # None, or an out-of-range branch refused
    recipient, pos = _optional(buf, pos)
    agreement_id, pos = _optional(buf, pos)
    pos = _branch(buf, pos, _int)  # agreement_version
    bundle, pos = _string(buf, pos)
    purpose, pos = _optional(buf, pos)
    legal_basis, pos = _optional(buf, pos)
    consent_ref, pos = _optional(buf, pos)
    if buf[pos] not in (0, 2, 4):
        raise _Unusual  # a multi-byte or out-of-range enum index: the generic decoder says which
    outcome = _OUTCOMES[buf[pos] >> 1]
    reasons, pos = _strings(buf, pos + 1)
    fields, pos = _strings(buf, pos)
    pos = _branch(buf, pos, _time_end)  # event_time
    _, pos = _strings(buf, pos)  # restrictions_held
    pos = _branch(buf, pos, _long_end)  # consent_offset
    if pos != len(buf):
        raise _Unusual
    return (decided, subject_ref, recipient, event_type, event_id, agreement_id, bundle, purpose, legal_basis,
            consent_ref, outcome, fields, reasons)


def _branch(buf: bytes, pos: int, skip: Callable[[bytes, int], int]) -> int:
    """Past an optional value (``["null", T]``), ``skip`` checking and passing a T."""
    b = buf[pos]
    if b == 0:
        return pos + 1
    if b == 2:
        return skip(buf, pos + 1)
    raise BadValueError("union branch index out of range")


def _decided(buf: bytes, pos: int) -> tuple[int, int]:
    micros, pos = read_long(buf, pos)
    if micros not in _DECIDED:
        raise _Unusual
    return micros, pos


def _time_end(buf: bytes, pos: int) -> int:
    micros, pos = read_long(buf, pos)
    if micros not in _TIMES:
        raise _Unusual  # the generic decoder refuses it
    return pos


def _long_end(buf: bytes, pos: int) -> int:
    return read_long(buf, pos)[1]


def _digest(buf: bytes, pos: int) -> int:
    if pos + 32 > len(buf):
        raise BadValueError("fixed runs past the end of the data")
    return pos + 32


def _bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    b = buf[pos]
    if b < 0x80:
        n, pos = (b >> 1) ^ -(b & 1), pos + 1
    else:
        n, pos = read_long(buf, pos)
    end = pos + n
    if n < 0 or end > len(buf):
        raise BadValueError("length runs past the end of the data")
    return buf[pos:end], end


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    raw, end = _bytes(buf, pos)
    return raw.decode(), end


def _optional(buf: bytes, pos: int) -> tuple[str | None, int]:
    b = buf[pos]
    if b == 0:
        return None, pos + 1
    if b != 2:
        raise BadValueError("union branch index out of range")
    n = buf[pos + 1]
    if n & 0x81:  # a negative or a multi-byte length
        return _string(buf, pos + 1)
    end = pos + 2 + (n >> 1)
    if end > len(buf):
        raise BadValueError("length runs past the end of the data")
    return buf[pos + 2:end].decode(), end


def _int(buf: bytes, pos: int) -> int:
    value, pos = read_long(buf, pos)
    if not _INT_MIN <= value <= _INT_MAX:
        raise BadValueError("int out of 32-bit range")
    return pos


def _strings(buf: bytes, pos: int) -> tuple[tuple[str, ...], int]:
    if buf[pos] == 0:
        return (), pos + 1
    out: list[str] = []
    size = len(buf)
    while True:
        count, pos = read_long(buf, pos)
        if count == 0:
            return tuple(out), pos
        if count < 0:
            raise _Unusual  # a block with its size: rare, left to the generic decoder
        if count > size - pos:
            raise BadValueError("block count exceeds the data")
        for _ in range(count):
            n = buf[pos]
            if n & 0x81:  # a negative or a multi-byte length
                item, pos = _string(buf, pos)
            else:
                end = pos + 1 + (n >> 1)
                if end > size:
                    raise BadValueError("length runs past the end of the data")
                item, pos = buf[pos + 1:end].decode(), end
            out.append(item)
