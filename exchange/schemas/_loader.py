"""Reading and validating the schema tree: ``<root>/<domain>/<event>/<NNNN>.avsc``.

Every rule a schema file must follow lives here, and every violation is reported with the file it is in. Files
are read through :mod:`exchange.safeparse`: a regular file of at most 1 MiB of UTF-8 JSON nested at most 64 deep.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro._schema_common import SchemaParseException

from exchange.safeparse import SafeParseError, read_json
from exchange.schemas._avro import PRIMITIVES, AvroDefinitionError, Names, default_value, kind, normalize, resolve
from exchange.schemas._canonical import crc64_avro, parsing_canonical_form
from exchange.schemas._decode import compile_reader
from exchange.schemas._encode import BadValueError, RecordWriter, compile_writer
from exchange.schemas._model import (
    DEFAULT_COMPATIBILITY,
    Classification,
    Compatibility,
    Field,
    KeyKind,
    Problem,
    RecordSchema,
)
from exchange.schemas.errors import SchemaFileError

_SEGMENT = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
_REVISION = re.compile(r"(\d{4})\.avsc\Z")
_KEY_TYPES = {
    KeyKind.PERSON: frozenset({"string"}),
    KeyKind.RECORD: frozenset({"string", "bytes", "int", "long", "fixed"}),
}
# fastavro raises these (and its own SchemaParseException) for schemas it cannot parse.
_FASTAVRO_ERRORS = (SchemaParseException, ValueError, TypeError, KeyError, AttributeError)


def avro_names(type_name: str) -> tuple[str, str]:
    """The Avro namespace and name a record type must use: ``gov.exchange.population``, ``AddressChanged``."""
    domain, _, event = type_name.partition(".")
    return f"gov.exchange.{domain.replace('-', '_')}", "".join(part.capitalize() for part in event.split("-"))


def parse_record_schema(schema: Any, type_name: str, revision: int, path: Path | None = None) -> RecordSchema:
    """Validate schema JSON as revision ``revision`` of ``type_name``; SchemaFileError lists every reason."""
    built, reasons = _build(schema, type_name, revision, path)
    if built is None:
        raise SchemaFileError(path, "; ".join(reasons))
    return built


def load_file(path: Path, type_name: str, revision: int) -> RecordSchema:
    """Read and validate one ``.avsc`` file."""
    built, reasons = _load(path, type_name, revision)
    if built is None:
        raise SchemaFileError(path, "; ".join(reasons))
    return built


def scan(root: Path) -> tuple[dict[str, list[RecordSchema]], list[Problem]]:
    """Every type's revisions (only for types whose files are all valid and contiguous) and every problem."""
    if not root.is_dir():
        return {}, [Problem(root, "schema root is not a directory")]
    problems: list[Problem] = []
    files: dict[str, dict[int, Path]] = {}
    for path in sorted(root.rglob("*.avsc")):
        placed = _place(root, path)
        if isinstance(placed, str):
            problems.append(Problem(path, placed))
        else:
            files.setdefault(placed[0], {})[placed[1]] = path
    if not files and not problems:
        problems.append(Problem(root, "no schema files (<domain>/<event>/<NNNN>.avsc) found"))
    types: dict[str, list[RecordSchema]] = {}
    for type_name, revisions in sorted(files.items()):
        chain, type_problems = _load_chain(type_name, revisions)
        problems += type_problems
        if chain is not None:
            types[type_name] = chain
    problems += _duplicate_fingerprints(types)
    return types, problems


def _place(root: Path, path: Path) -> tuple[str, int] | str:
    parts = path.relative_to(root).parts
    if len(parts) != 3:
        return "a schema file must be at <domain>/<event>/<NNNN>.avsc"
    domain, event, name = parts
    for segment in (domain, event):
        if not _SEGMENT.match(segment):
            return f"{segment!r} is not a valid domain or event name (lower-case words joined by '-')"
    match = _REVISION.match(name)
    if match is None or int(match.group(1)) == 0:
        return "a revision file is named with four digits from 0001, like 0001.avsc"
    return f"{domain}.{event}", int(match.group(1))


def _load_chain(type_name: str, revisions: Mapping[int, Path]) -> tuple[list[RecordSchema] | None, list[Problem]]:
    problems: list[Problem] = []
    chain: list[RecordSchema] = []
    for expected, number in enumerate(sorted(revisions), start=1):
        path = revisions[number]
        if number != expected:
            problems.append(Problem(path, f"revision {expected:04d} of {type_name} is missing (revisions must be "
                                          "contiguous from 0001)", type_name, number))
            return None, problems
        built, reasons = _load(path, type_name, number)
        problems += [Problem(path, reason, type_name, number) for reason in reasons]
        if built is not None:
            chain.append(built)
    return (chain if not problems else None), problems


def _duplicate_fingerprints(types: Mapping[str, list[RecordSchema]]) -> list[Problem]:
    seen: dict[bytes, RecordSchema] = {}
    problems: list[Problem] = []
    for chain in types.values():
        for schema in chain:
            other = seen.setdefault(schema.fingerprint, schema)
            if other is not schema:
                problems.append(Problem(schema.path, f"has the same canonical form as {other.label}: a revision must "
                                        "change the data, doc and classification changes go into the existing file",
                                        schema.type_name, schema.revision))
    return problems


def _load(path: Path, type_name: str, revision: int) -> tuple[RecordSchema | None, list[str]]:
    try:
        schema = read_json(path)
    except SafeParseError as exc:
        return None, [exc.reason if exc.line is None else f"line {exc.line}: {exc.reason}"]
    return _build(schema, type_name, revision, path)


def _build(schema: Any, type_name: str, revision: int, path: Path | None) -> tuple[RecordSchema | None, list[str]]:
    try:
        parsed = cast(dict[str, Any], fastavro.parse_schema(schema))
    except _FASTAVRO_ERRORS as exc:
        return None, [f"not valid Avro: {exc}"]
    try:
        node, names = normalize(schema)
    except AvroDefinitionError as exc:
        return None, [f"not valid Avro: {exc}"]
    if not isinstance(node, dict) or node.get("type") != "record":
        return None, ["the top-level schema must be a record"]
    reasons = _record_reasons(schema, node, names, type_name)
    fields: list[Field] = []
    for raw, normal in zip(schema["fields"], node["fields"], strict=True):
        field_reasons, built = _field(raw, normal, names)
        reasons += field_reasons
        if built is not None:
            fields.append(built)
    key_field, key_kind = _key(schema, node, names, reasons)
    compatibility = _compatibility(schema, reasons)
    if reasons or key_kind is None:
        return None, reasons
    label = f"{type_name} {revision:04d}"
    canonical = parsing_canonical_form(schema)
    return RecordSchema(
        type_name=type_name,
        revision=revision,
        path=path,
        schema=schema,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little"),
        key_field=key_field,
        key_kind=key_kind,
        compatibility=compatibility,
        fields=tuple(fields),
        field_names=tuple(f.name for f in fields),
        node=node,
        names=names,
        _classes={f.name: f.classification for f in fields},
        _writer=RecordWriter(node, names, label=label),
        _reader=compile_reader(node, names),
    ), []


def _record_reasons(schema: Mapping[str, Any], node: Mapping[str, Any], names: Names, type_name: str) -> list[str]:
    reasons: list[str] = []
    if not _text(schema.get("doc")):
        reasons.append("the record needs a non-empty 'doc'")
    namespace, name = avro_names(type_name)
    if node["name"] != f"{namespace}.{name}":
        reasons.append(f"the record of {type_name} must be named {name!r} in namespace {namespace!r}, "
                       f"not {node['name']!r}")
    if not node["fields"]:
        reasons.append("the record has no fields")
    return reasons


def _field(raw: Mapping[str, Any], normal: Mapping[str, Any], names: Names) -> tuple[list[str], Field | None]:
    name = str(raw["name"])
    reasons: list[str] = []
    if not _text(raw.get("doc")):
        reasons.append(f"field {name!r} needs a non-empty 'doc'")
    classification = raw.get("classification")
    if classification not in {c.value for c in Classification}:
        reasons.append(f"field {name!r} needs a 'classification' of public, personal or special")
    if "default" in raw:
        try:
            compile_writer(normal["type"], names)(default_value(normal["type"], names, raw["default"]))
        except (AvroDefinitionError, BadValueError) as exc:
            reasons.append(f"field {name!r}: invalid default: {exc}")
    if reasons:
        return reasons, None
    return [], Field(name=name, classification=Classification(str(classification)), doc=str(raw["doc"]),
                     type=raw["type"], has_default="default" in raw, default=raw.get("default"))


def _key(schema: Mapping[str, Any], node: Mapping[str, Any], names: Names,
         reasons: list[str]) -> tuple[str, KeyKind | None]:
    key_field = schema.get("key_field")
    raw_kind = schema.get("key_kind")
    if raw_kind not in {k.value for k in KeyKind}:
        reasons.append("the record needs a 'key_kind' of person or record")
        key_kind = None
    else:
        key_kind = KeyKind(raw_kind)
    types = {f["name"]: f["type"] for f in node["fields"]}
    if not isinstance(key_field, str) or key_field not in types:
        reasons.append("the record needs a 'key_field' naming one of its fields")
        return "", key_kind
    if key_kind is not None:
        key_type = resolve(types[key_field], names)
        if isinstance(key_type, list) and len(key_type) == 2 and key_type[0] == "null" and key_kind is KeyKind.RECORD:
            key_type = resolve(key_type[1], names)  # a record key may be absent (a Kafka null key)
        key_base = kind(key_type)
        if key_base not in _KEY_TYPES[key_kind] or (key_base in PRIMITIVES and not isinstance(key_type, str)):
            allowed = ", ".join(sorted(_KEY_TYPES[key_kind]))
            reasons.append(f"key_field {key_field!r} of a {key_kind.value} key must be one of: {allowed}")
    return key_field, key_kind


def _compatibility(schema: Mapping[str, Any], reasons: list[str]) -> Compatibility:
    raw = schema.get("compatibility", DEFAULT_COMPATIBILITY.value)
    if raw not in {c.value for c in Compatibility}:
        reasons.append(f"'compatibility' must be one of {', '.join(c.value for c in Compatibility)}")
        return DEFAULT_COMPATIBILITY
    return Compatibility(raw)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
