"""A CSV cell converted to its schema field's Python value (the table in :mod:`connectors.files.parse`); each
problem says what was expected, never what came."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from exchange.schemas._avro import describe, kind, logical_type, resolve

__all__ = ["Bad", "Convert", "cell_converter", "printable"]

Names = Mapping[str, dict[str, Any]]
Convert = Callable[[str], Any]

_INT = re.compile(r"[+-]?\d{1,20}\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,4})?\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z")
_BASE64 = re.compile(r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_FLOAT32_MAX = 3.4028234663852886e38


class Bad(Exception):  # noqa: N818 - a signal carrying one value's problem, turned into ParseError by the parser
    """One value does not fit: ``problem`` says what was expected."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def cell_converter(node: Any, names: Names) -> Convert:
    """A CSV cell to ``node``'s Python value; Bad (at once) for a type a cell cannot hold."""
    node = resolve(node, names)
    k = kind(node)
    if k == "union":
        return _union(node, names)
    if k == "string":
        return _text
    lt = logical_type(node)
    if lt == "date":
        return _shaped(_DATE, "date (YYYY-MM-DD)", date.fromisoformat)
    if lt == "timestamp-micros":
        return _shaped(_TIMESTAMP, "timestamp (RFC 3339 with a zone, 2026-11-02T08:30:00Z)", datetime.fromisoformat)
    if k == "enum":
        return _enum(node)
    if k in ("int", "long"):
        return _integer(k)
    if k in ("float", "double"):
        return _number(k)
    if k == "boolean":
        return _boolean
    if k in ("bytes", "fixed"):
        return _base64(node.get("size") if k == "fixed" else None)
    raise Bad(f"a field of type {describe(node, names)} cannot be read from a CSV cell; use format: jsonl")


def _union(branches: Sequence[Any], names: Names) -> Convert:
    others = [cell_converter(b, names) for b in branches if b != "null"]
    nullable = "null" in branches
    suffix = " (or empty for null)" if nullable else ""
    label = " or ".join(describe(b, names) for b in branches if b != "null")

    def convert(cell: str) -> Any:
        if cell == "" and nullable:
            return None
        if len(others) == 1:  # the common optional field: say what is wrong inside it
            try:
                return others[0](cell)
            except Bad as bad:
                raise Bad(bad.problem + suffix) from None
        for other in others:
            try:
                return other(cell)
            except Bad:
                continue
        raise Bad(f"expected {label}{suffix}")

    return convert


def _text(cell: str) -> Any:
    try:
        cell.encode()
    except UnicodeEncodeError:
        raise Bad("expected string: not valid Unicode") from None
    return cell


def _shaped(pattern: re.Pattern[str], label: str, make: Callable[[str], Any]) -> Convert:
    def convert(cell: str) -> Any:
        if pattern.match(cell) is None:
            raise Bad(f"expected {label}")
        try:
            return make(cell)
        except ValueError:
            raise Bad(f"expected {label}: not a valid calendar date or time") from None

    return convert


def _enum(node: Mapping[str, Any]) -> Convert:
    symbols = frozenset(node["symbols"])
    label = "one of " + ", ".join(node["symbols"])

    def convert(cell: str) -> Any:
        if cell not in symbols:
            raise Bad(f"expected {label}")
        return cell

    return convert


def _integer(k: str) -> Convert:
    low, high = _RANGES[k]

    def convert(cell: str) -> Any:
        if _INT.match(cell) is None:
            raise Bad(f"expected {k}")
        value = int(cell)
        if not low <= value <= high:
            raise Bad(f"expected {k}: out of range")
        return value

    return convert


def _number(k: str) -> Convert:
    def convert(cell: str) -> Any:
        if _FLOAT.match(cell) is None:
            raise Bad(f"expected {k} (a decimal number)")
        value = float(cell)
        if not math.isfinite(value) or (k == "float" and abs(value) > _FLOAT32_MAX):
            raise Bad(f"expected {k}: out of range")
        return value

    return convert


def _boolean(cell: str) -> Any:
    found = _BOOLEANS.get(cell.lower())
    if found is None:
        raise Bad("expected boolean (true or false)")
    return found


def _base64(size: int | None) -> Convert:
    label = "base64" if size is None else f"base64 of exactly {size} bytes"

    def convert(cell: str) -> Any:
        if _BASE64.match(cell) is None:
            raise Bad(f"expected {label}")
        try:
            data = base64.b64decode(cell, validate=True)
        except (binascii.Error, ValueError):
            raise Bad(f"expected {label}") from None
        if size is not None and len(data) != size:
            raise Bad(f"expected {label}, got {len(data)}")
        return data

    return convert


def printable(name: str) -> str:
    """A column or key the file chose, bounded and escaped: shown back so the sender finds the typo."""
    shown = name.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 64 else shown[:61] + "..."
