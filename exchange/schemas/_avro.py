"""Avro schema JSON, normalised: full names everywhere, references as strings, strict structural checks.

Every other module (canonical form, codecs, compatibility) works on the *normalised* form produced here:

- a primitive is its name (``"int"``); a primitive with a ``logicalType`` stays a dict;
- a named type (record, enum, fixed) is a dict whose ``name`` is the full name and whose ``aliases`` are full
  names; it appears in full once, where it is defined, and as its full name (a string) everywhere after;
- a union is a list, arrays and maps are dicts with normalised ``items`` / ``values``.

fastavro's parser is lenient (records without fields, duplicate union branches, invalid names), so this module
is the one that decides whether a schema is well-formed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from exchange.schemas.errors import SchemaError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
# Logical types the codecs implement; any other is refused rather than silently read as its base type.
LOGICAL_TYPES = {"date": "int", "timestamp-micros": "long"}

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Names = dict[str, dict[str, Any]]


class AvroDefinitionError(SchemaError):
    """A schema is not well-formed Avro (internal; the loader adds the file name)."""


def kind(node: Any) -> str:
    """The Avro type of a normalised node: a primitive name, ``union``, or the dict's ``type``."""
    if isinstance(node, str):
        return node if node in PRIMITIVES else "reference"
    if isinstance(node, list):
        return "union"
    return str(node["type"])


def resolve(node: Any, names: Mapping[str, dict[str, Any]]) -> Any:
    """Follow a reference to its named definition; any other node is returned as is."""
    if isinstance(node, str) and node not in PRIMITIVES:
        return names[node]
    return node


def logical_type(node: Any) -> str | None:
    """The logical type of a normalised primitive, if it has one."""
    if isinstance(node, dict) and node.get("type") in PRIMITIVES:
        value = node.get("logicalType")
        return str(value) if value is not None else None
    return None


def describe(node: Any, names: Mapping[str, dict[str, Any]]) -> str:
    """A short human name for a type: ``int``, ``date``, ``enum Sex``, ``union [null, string]``."""
    node = resolve(node, names) if isinstance(node, str) else node
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "union [" + ", ".join(describe(branch, names) for branch in node) + "]"
    lt = logical_type(node)
    if lt is not None:
        return lt
    t = node["type"]
    if t in NAMED:
        return f"{t} {str(node['name']).rsplit('.', 1)[-1]}"
    if t == "array":
        return f"array of {describe(node['items'], names)}"
    if t == "map":
        return f"map of {describe(node['values'], names)}"
    return str(t)


def normalize(schema: Any) -> tuple[Any, Names]:
    """Normalise Avro schema JSON and collect its named types; raise AvroDefinitionError if malformed."""
    names: Names = {}
    return _normalize(schema, "", names), names


def _normalize(schema: Any, namespace: str, names: Names) -> Any:
    if isinstance(schema, str):
        return _reference(schema, namespace, names)
    if isinstance(schema, list):
        return _union(schema, namespace, names)
    if not isinstance(schema, dict):
        raise AvroDefinitionError(f"a schema must be a string, a list or an object, not {type(schema).__name__}")
    t = schema.get("type")
    if isinstance(t, (dict, list)):
        return _normalize(t, namespace, names)
    if not isinstance(t, str):
        raise AvroDefinitionError("a schema object needs a 'type'")
    if t in PRIMITIVES:
        return _primitive(schema, t)
    if t in NAMED:
        return _named(schema, t, namespace, names)
    if t in ("array", "map"):
        part = "items" if t == "array" else "values"
        if part not in schema:
            raise AvroDefinitionError(f"{t} needs '{part}'")
        return {**schema, part: _normalize(schema[part], namespace, names)}
    return _reference(t, namespace, names)


def _primitive(schema: Mapping[str, Any], t: str) -> Any:
    lt = schema.get("logicalType")
    if lt is None:
        return t
    if LOGICAL_TYPES.get(str(lt)) != t:
        raise AvroDefinitionError(
            f"logicalType {lt!r} on {t} is not supported (supported: date on int, timestamp-micros on long)"
        )
    return {"type": t, "logicalType": lt}


def _reference(name: str, namespace: str, names: Names) -> str:
    if name in PRIMITIVES:
        return name
    candidates = [name] if "." in name else ([f"{namespace}.{name}"] if namespace else []) + [name]
    for candidate in candidates:
        if candidate in names:
            return candidate
    raise AvroDefinitionError(f"unknown type {name!r}")


def _union(branches: list[Any], namespace: str, names: Names) -> list[Any]:
    out = [_normalize(branch, namespace, names) for branch in branches]
    seen: set[str] = set()
    for branch in out:
        k = kind(branch)
        if k == "union":
            raise AvroDefinitionError("a union may not directly contain another union")
        key = branch if k == "reference" else branch["name"] if k in NAMED else k
        if key in seen:
            raise AvroDefinitionError(f"a union may not contain {key!r} twice")
        seen.add(key)
    return out


def _fullname(schema: Mapping[str, Any], namespace: str) -> tuple[str, str]:
    name = schema.get("name")
    if not isinstance(name, str) or not name:
        raise AvroDefinitionError(f"a {schema.get('type')} needs a 'name'")
    if "." in name:
        full = name
    else:
        ns = schema.get("namespace", namespace)
        if not isinstance(ns, str):
            raise AvroDefinitionError(f"the namespace of {name!r} must be a string")
        full = f"{ns}.{name}" if ns else name
    for part in full.split("."):
        if not _NAME.match(part):
            raise AvroDefinitionError(f"{full!r} is not a valid Avro name")
    if full.rsplit(".", 1)[-1] in PRIMITIVES:
        raise AvroDefinitionError(f"{full!r} may not be named like a primitive type")
    return full, full.rpartition(".")[0]


def _named(schema: Mapping[str, Any], t: str, namespace: str, names: Names) -> dict[str, Any]:
    full, ns = _fullname(schema, namespace)
    if full in names:
        raise AvroDefinitionError(f"type {full!r} is defined twice")
    node = {key: value for key, value in schema.items() if key != "namespace"}
    node["name"] = full
    aliases = schema.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise AvroDefinitionError(f"the aliases of {full!r} must be a list of names")
    node["aliases"] = [a if "." in a or not ns else f"{ns}.{a}" for a in aliases]
    names[full] = node  # registered before the fields, so a record may refer to itself
    if t == "enum":
        _check_enum(node, full)
    elif t == "fixed":
        size = schema.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise AvroDefinitionError(f"fixed {full!r} needs a non-negative integer 'size'")
    else:
        node["fields"] = _fields(schema, full, ns, names)
    return node


def _check_enum(node: Mapping[str, Any], full: str) -> None:
    symbols = node.get("symbols")
    if not isinstance(symbols, list) or not all(isinstance(s, str) and _NAME.match(s) for s in symbols):
        raise AvroDefinitionError(f"enum {full!r} needs 'symbols', a list of valid names")
    if len(set(symbols)) != len(symbols):
        raise AvroDefinitionError(f"enum {full!r} has duplicate symbols")
    if "default" in node and node["default"] not in symbols:
        raise AvroDefinitionError(f"the default of enum {full!r} is not one of its symbols")


def _fields(schema: Mapping[str, Any], full: str, ns: str, names: Names) -> list[dict[str, Any]]:
    fields = schema.get("fields")
    if not isinstance(fields, list):
        raise AvroDefinitionError(f"record {full!r} needs 'fields', a list")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for field in fields:
        if not isinstance(field, dict):
            raise AvroDefinitionError(f"a field of {full!r} is not an object")
        name = field.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise AvroDefinitionError(f"record {full!r} has a field without a valid 'name'")
        if name in seen:
            raise AvroDefinitionError(f"record {full!r} has field {name!r} twice")
        seen.add(name)
        if "type" not in field:
            raise AvroDefinitionError(f"field {name!r} of {full!r} needs a 'type'")
        out.append({**field, "type": _normalize(field["type"], ns, names)})
    return out


def default_value(node: Any, names: Mapping[str, dict[str, Any]], value: Any) -> Any:
    """Convert a field's JSON default to the Python value a decoder returns; raise AvroDefinitionError if invalid.

    Avro spec: a union's default belongs to its first branch; bytes and fixed defaults are strings whose code
    points are the byte values.
    """
    node = resolve(node, names)
    k = kind(node)
    converter = _DEFAULTS.get(k)
    if converter is not None:
        return converter(node, names, value)
    raise AvroDefinitionError(f"no default conversion for {k}")


def _bad_default(node: Any, names: Mapping[str, dict[str, Any]]) -> AvroDefinitionError:
    return AvroDefinitionError(f"default does not match {describe(node, names)}")


def _default_scalar(node: Any, names: Mapping[str, dict[str, Any]], value: Any) -> Any:
    t = kind(node)
    lt = logical_type(node)
    ok = {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31,
        "long": isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63,
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "double": isinstance(value, (int, float)) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "bytes": isinstance(value, str) and all(ord(c) < 256 for c in value),
    }[t]
    if not ok:
        raise _bad_default(node, names)
    if t in ("float", "double"):
        return float(value)
    if t == "bytes":
        return value.encode("latin-1")
    if lt == "date":
        return date.fromordinal(value + EPOCH_ORDINAL)
    if lt == "timestamp-micros":
        return EPOCH + timedelta(microseconds=value)
    return value


def _default_enum(node: Any, names: Mapping[str, dict[str, Any]], value: Any) -> Any:
    if value not in node["symbols"]:
        raise _bad_default(node, names)
    return value


def _default_fixed(node: Any, names: Mapping[str, dict[str, Any]], value: Any) -> Any:
    if not isinstance(value, str) or len(value) != node["size"] or any(ord(c) > 255 for c in value):
        raise _bad_default(node, names)
    return value.encode("latin-1")


def _default_array(node: Any, names: Mapping[str, dict[str, Any]], value: Any) -> Any:
    if not isinstance(value, list):
        raise _bad_default(node, names)
    return [default_value(node["items"], names, item) for item in value]


def _default_map(node: Any, names: Mapping[str, dict[str, Any]], value: Any) -> Any:
    if not isinstance(value, dict):
        raise _bad_default(node, names)
    return {str(k): default_value(node["values"], names, v) for k, v in value.items()}


def _default_record(node: Any, names: Mapping[str, dict[str, Any]], value: Any) -> Any:
    if not isinstance(value, dict):
        raise _bad_default(node, names)
    out: dict[str, Any] = {}
    for field in node["fields"]:
        if field["name"] in value:
            out[field["name"]] = default_value(field["type"], names, value[field["name"]])
        elif "default" in field:
            out[field["name"]] = default_value(field["type"], names, field["default"])
        else:
            raise _bad_default(node, names)
    return out


def _default_union(node: Any, names: Mapping[str, dict[str, Any]], value: Any) -> Any:
    if not node:
        raise _bad_default(node, names)
    return default_value(node[0], names, value)


_DefaultConverter = Callable[[Any, Mapping[str, dict[str, Any]], Any], Any]
_DEFAULTS: dict[str, _DefaultConverter] = {
    **dict.fromkeys(PRIMITIVES, _default_scalar),
    "enum": _default_enum,
    "fixed": _default_fixed,
    "array": _default_array,
    "map": _default_map,
    "record": _default_record,
    "error": _default_record,
    "union": _default_union,
}
