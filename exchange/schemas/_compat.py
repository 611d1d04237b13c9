"""Avro schema resolution as a static check: can a reader schema read every datum of a writer schema?

The rules are those of the Avro specification ("Schema Resolution") as the Java ``SchemaCompatibility`` and the
Confluent Schema Registry apply them:

- primitives match themselves and the promotions int → long → float → double, string ↔ bytes;
- named types match by unqualified name or by a reader alias of the writer's full name;
- enums: a writer symbol missing from the reader is an error unless the reader enum has a default;
- fixed: the sizes must be equal;
- records: every reader field must be written by the writer (by name or reader alias) or have a default;
  writer fields the reader does not know are skipped;
- arrays and maps: items and values must match;
- a writer union matches if every branch matches the reader; a writer non-union matches a reader union if any
  branch matches it.

Logical types do not take part: a ``date`` is read wherever its ``int`` is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exchange.schemas._avro import NAMED, PRIMITIVES, Names, describe, kind, normalize, resolve

__all__ = ["node_problems", "resolution_problems"]

_PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def resolution_problems(reader: Any, writer: Any) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (both Avro schema JSON); empty if it can."""
    reader_node, reader_names = normalize(reader)
    writer_node, writer_names = normalize(writer)
    return node_problems(reader_node, writer_node, reader_names, writer_names)


def node_problems(reader: Any, writer: Any, reader_names: Names, writer_names: Names) -> list[str]:
    """:func:`resolution_problems` on normalised nodes."""
    return _Checker(reader_names, writer_names).check(reader, writer, "")


def short_name(full: str) -> str:
    """The unqualified part of an Avro full name."""
    return full.rsplit(".", 1)[-1]


def names_match(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
    """Named types match by unqualified name, or by a reader alias equal to the writer's full name."""
    return short_name(reader["name"]) == short_name(writer["name"]) or writer["name"] in reader.get("aliases", [])


def writer_field(reader_field: Mapping[str, Any], writer_fields: Mapping[str, Mapping[str, Any]]) -> Any:
    """The writer field a reader field reads: same name first, then the reader field's aliases; None if none."""
    found = writer_fields.get(reader_field["name"])
    if found is not None:
        return found
    for alias in reader_field.get("aliases", []):
        found = writer_fields.get(alias)
        if found is not None:
            return found
    return None


class _Checker:
    def __init__(self, reader_names: Names, writer_names: Names) -> None:
        self._rn = reader_names
        self._wn = writer_names
        self._seen: set[tuple[str, str]] = set()

    def check(self, reader: Any, writer: Any, where: str) -> list[str]:
        reader = resolve(reader, self._rn)
        writer = resolve(writer, self._wn)
        rk, wk = kind(reader), kind(writer)
        if wk == "union":
            return [problem for branch in writer for problem in self.check(reader, branch, where)]
        if rk == "union":
            if any(not self.check(branch, writer, where) for branch in reader):
                return []
            return [f"{where}{self._w(writer)} is not readable by any branch of the reader's {self._r(reader)}"]
        if wk in PRIMITIVES and rk in PRIMITIVES:
            if wk == rk or rk in _PROMOTIONS.get(wk, ()):
                return []
            return [f"{where}writer type {self._w(writer)} cannot be read as {self._r(reader)}"]
        if rk != wk and not (rk in ("record", "error") and wk in ("record", "error")):
            return [f"{where}writer type {self._w(writer)} cannot be read as {self._r(reader)}"]
        if rk in NAMED and not names_match(reader, writer):
            return [f"{where}writer's {self._w(writer)} does not match the reader's {self._r(reader)} by name or alias"]
        if rk == "enum":
            return self._enum(reader, writer, where)
        if rk == "fixed":
            if reader["size"] != writer["size"]:
                return [f"{where}fixed size {writer['size']} cannot be read as size {reader['size']}"]
            return []
        if rk == "array":
            return self.check(reader["items"], writer["items"], f"{where}array items: ")
        if rk == "map":
            return self.check(reader["values"], writer["values"], f"{where}map values: ")
        return self._record(reader, writer, where)

    def _enum(self, reader: Mapping[str, Any], writer: Mapping[str, Any], where: str) -> list[str]:
        missing = [symbol for symbol in writer["symbols"] if symbol not in reader["symbols"]]
        if not missing or "default" in reader:
            return []
        listed = ", ".join(missing)
        return [f"{where}symbol(s) {listed} of enum {short_name(writer['name'])} are missing in the reader's enum, "
                "which has no default"]

    def _record(self, reader: Mapping[str, Any], writer: Mapping[str, Any], where: str) -> list[str]:
        pair = (reader["name"], writer["name"])
        if pair in self._seen:  # a recursive record: assume compatible while checking it (as Java does)
            return []
        self._seen.add(pair)
        written = {f["name"]: f for f in writer["fields"]}
        problems: list[str] = []
        for field in reader["fields"]:
            source = writer_field(field, written)
            if source is not None:
                problems += self.check(field["type"], source["type"], f"{where}field {field['name']!r}: ")
            elif "default" not in field:
                problems.append(f"{where}field {field['name']!r} has no default and the writer does not write it")
        return problems

    def _r(self, node: Any) -> str:
        return describe(node, self._rn)

    def _w(self, node: Any) -> str:
        return describe(node, self._wn)
