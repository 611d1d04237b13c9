"""Parsing Canonical Form and the CRC-64-AVRO (Rabin) fingerprint, both as the Avro specification defines them."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from exchange.schemas._avro import PRIMITIVES, normalize

__all__ = ["crc64_avro", "fingerprint", "parsing_canonical_form"]

# Avro spec, "Schema Fingerprints": the empty fingerprint, also the polynomial's reflected form.
_EMPTY = 0xC15D213AA4D7A795
_MASK = 0xFFFFFFFFFFFFFFFF
# Avro spec, "Parsing Canonical Form" [ORDER]: the only attributes kept, in this order.
_ORDER = ("name", "type", "fields", "symbols", "items", "values", "size")


def parsing_canonical_form(schema: Any) -> str:
    """The Parsing Canonical Form of Avro schema JSON (a parsed ``json`` value, not text).

    Applies [PRIMITIVES], [FULLNAMES], [STRIP], [ORDER], [STRINGS], [INTEGERS] and [WHITESPACE]; a named type is
    written in full where it is first defined and by its full name after that.
    """
    node, _ = normalize(schema)
    return json.dumps(_canon(node), separators=(",", ":"), ensure_ascii=False)


def _canon(node: Any) -> Any:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return [_canon(branch) for branch in node]
    if node["type"] in PRIMITIVES:
        return node["type"]
    out: dict[str, Any] = {}
    for key in _ORDER:
        if key not in node:
            continue
        value = node[key]
        if key == "fields":
            value = [{"name": f["name"], "type": _canon(f["type"])} for f in value]
        elif key in ("items", "values"):
            value = _canon(value)
        out[key] = value
    return out


@cache
def _table() -> tuple[int, ...]:
    # Built on first use, not at import time.
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp & _MASK)
    return tuple(table)


def crc64_avro(data: bytes) -> int:
    """The CRC-64-AVRO fingerprint of ``data`` as an unsigned 64-bit integer (Java prints it as a signed long)."""
    table = _table()
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def fingerprint(schema: Any) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of a schema, as it appears in single-object encoding."""
    return crc64_avro(parsing_canonical_form(schema).encode("utf-8")).to_bytes(8, "little")
