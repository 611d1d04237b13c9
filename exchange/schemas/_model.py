"""The catalogue's data: classifications, key kinds, compatibility levels, fields, problems and record schemas."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from exchange.schemas._avro import Names
from exchange.schemas._decode import MALFORMED, Reader, compile_reader
from exchange.schemas._encode import BadValueError, RecordWriter
from exchange.schemas.errors import DatumError, UnknownFieldError

MAGIC = b"\xc3\x01"
"""Avro single-object encoding marker; followed by the 8-byte fingerprint and the datum."""
HEADER_SIZE = 10


class Classification(StrEnum):
    """How sensitive a field is: ``special`` is GDPR art. 9 data (health, for instance)."""

    PUBLIC = "public"
    PERSONAL = "personal"
    SPECIAL = "special"


class KeyKind(StrEnum):
    """What the key field holds: a person id (keyed into a pseudonym) or a public record id (used as is)."""

    PERSON = "person"
    RECORD = "record"


class Compatibility(StrEnum):
    """Confluent Schema Registry compatibility levels, checked when a revision is added."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def backward(self) -> bool:
        """A new revision must read data written with earlier ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Earlier revisions must read data written with a new one."""
        return self.value.startswith(("FORWARD", "FULL"))

    @property
    def transitive(self) -> bool:
        """Checked against every earlier revision, not only the previous one."""
        return self.value.endswith("_TRANSITIVE")


DEFAULT_COMPATIBILITY = Compatibility.FULL_TRANSITIVE


@dataclass(frozen=True, slots=True)
class Field:
    """One top-level field of a record type, in declaration order."""

    name: str
    classification: Classification
    doc: str
    type: Any
    """The field's Avro type as written in the schema file."""
    has_default: bool = False
    default: Any = None
    """The JSON default as written (only meaningful when ``has_default``)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the schema tree: a file (or the tree) and the reason."""

    path: Path | None
    reason: str
    type_name: str | None = None
    revision: int | None = None

    def __str__(self) -> str:
        where = self.path if self.path is not None else (self.type_name or "schemas")
        return f"{where}: {self.reason}"


@dataclass(frozen=True, eq=False)
class RecordSchema:
    """One revision of one record type, validated, with its encoders and decoder compiled.

    Instances are made by the loader; two RecordSchema are equal only if they are the same object.
    """

    type_name: str
    revision: int
    path: Path | None
    schema: dict[str, Any]
    """The schema JSON as written in the file."""
    parsed: dict[str, Any]
    """The schema as ``fastavro.parse_schema`` returns it, for code that wants fastavro."""
    canonical_form: str
    fingerprint: bytes
    """8 bytes, little-endian CRC-64-AVRO of the canonical form, as in single-object encoding."""
    key_field: str
    key_kind: KeyKind
    compatibility: Compatibility
    fields: tuple[Field, ...]
    field_names: tuple[str, ...]
    node: Any = dataclasses.field(repr=False)
    """The normalised schema (full names, references as strings) the codecs and checks work on."""
    names: Names = dataclasses.field(repr=False)
    _classes: dict[str, Classification] = dataclasses.field(repr=False)
    _writer: RecordWriter = dataclasses.field(repr=False)
    _reader: Reader = dataclasses.field(repr=False)

    @property
    def label(self) -> str:
        """``<type> <revision>``, as error messages name a revision: ``population.address-changed 0002``."""
        return f"{self.type_name} {self.revision:04d}"

    @property
    def header(self) -> bytes:
        """The 10-byte single-object header: ``C3 01`` and the fingerprint."""
        return MAGIC + self.fingerprint

    def classification(self, name: str) -> Classification:
        """The classification of field ``name``; UnknownFieldError if the type has no such field."""
        try:
            return self._classes[name]
        except KeyError as exc:
            raise UnknownFieldError(f"{self.label} has no field {name!r}") from exc

    def field(self, name: str) -> Field:
        """The field called ``name``; UnknownFieldError if there is none."""
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise UnknownFieldError(f"{self.label} has no field {name!r}")

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Single-object encoding of ``record``; RecordValidationError lists every bad field."""
        return MAGIC + self.fingerprint + b"".join(self._writer.parts(record))

    def encode_datum(self, record: Mapping[str, Any]) -> bytes:
        """The plain Avro binary datum of ``record`` (no single-object header)."""
        return b"".join(self._writer.parts(record))

    def encode_parts(self, record: Mapping[str, Any]) -> tuple[bytes, list[bytes]]:
        """The single-object encoding and each field's own encoding, in field order, from one pass.

        A record's Avro encoding is the concatenation of its fields' encodings, so ``parts[i]`` is exactly
        ``encode_field(field_names[i], record[field_names[i]])``.
        """
        parts = self._writer.parts(record)
        return MAGIC + self.fingerprint + b"".join(parts), parts

    def encode_field(self, name: str, value: Any) -> bytes:
        """The Avro binary encoding of one field's value under that field's schema alone."""
        return self._writer.field(name, value)

    def decode_datum(self, datum: bytes, offset: int = 0) -> dict[str, Any]:
        """Decode a plain Avro datum written with this schema (from ``offset`` to the end of ``datum``)."""
        return read_all(self._reader, datum, offset, self.label)

    def decode_field(self, name: str, data: bytes) -> Any:
        """The value of field ``name`` from its own Avro encoding (the inverse of :meth:`encode_field`).

        ``data`` must be exactly one value; DatumError otherwise, UnknownFieldError for a name the type lacks.
        The per-field readers are compiled on first use and kept on the instance (recipients decode only the
        fields disclosed to them, one at a time).
        """
        readers: dict[str, Reader] | None = self.__dict__.get("_field_readers")
        if readers is None:
            readers = {str(f["name"]): compile_reader(f["type"], self.names) for f in self.node["fields"]}
            object.__setattr__(self, "_field_readers", readers)  # a cache, not state: the instance stays frozen
        try:
            reader = readers[name]
        except KeyError as exc:
            raise UnknownFieldError(f"{self.label} has no field {name!r}") from exc
        try:
            value, end = reader(data, 0)
        except MALFORMED as exc:
            raise DatumError(f"{self.label}: field {name!r}: malformed value: {_why(exc)}") from exc
        if end != len(data):
            raise DatumError(f"{self.label}: field {name!r}: {len(data) - end} trailing bytes after the value")
        return value


def read_all(reader: Reader, data: bytes, offset: int, label: str) -> dict[str, Any]:
    """Run a compiled reader over ``data[offset:]``, which it must consume exactly; DatumError otherwise."""
    try:
        value, end = reader(data, offset)
    except MALFORMED as exc:
        raise DatumError(f"{label}: malformed datum: {_why(exc)}") from exc
    if end != len(data):
        raise DatumError(f"{label}: {len(data) - end} trailing bytes after the datum")
    result: dict[str, Any] = value
    return result


def _why(exc: BaseException) -> str:
    if isinstance(exc, BadValueError):
        return exc.reason
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not UTF-8"
    if isinstance(exc, (IndexError, struct.error)):
        return "truncated"
    return "a value is out of range"
