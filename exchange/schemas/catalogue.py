"""The catalogue: every record type and revision, looked up by name or fingerprint; encode, decode, check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from exchange.schemas._compat import node_problems
from exchange.schemas._decode import Reader, compile_resolving_reader
from exchange.schemas._loader import scan
from exchange.schemas._model import HEADER_SIZE, MAGIC, Compatibility, Problem, RecordSchema, read_all
from exchange.schemas.errors import CompatibilityError, DatumError, SchemaError, SchemaFileError, UnknownSchemaError

__all__ = ["Catalogue", "chain_problems", "check_tree"]


class Catalogue:
    """An immutable set of record types, each a contiguous chain of revisions 0001, 0002, …

    Thread-safe for reading: the only mutable state is a cache of compiled resolving readers, and a lost race
    only compiles a reader twice.
    """

    def __init__(self, chains: Mapping[str, Sequence[RecordSchema]]) -> None:
        """Build from validated chains (see :meth:`load`); SchemaError if a chain or fingerprint is inconsistent."""
        self._chains: dict[str, tuple[RecordSchema, ...]] = {}
        self._by_fp: dict[bytes, RecordSchema] = {}
        for type_name, chain in sorted(chains.items()):
            if not chain or [s.revision for s in chain] != list(range(1, len(chain) + 1)):
                raise SchemaError(f"{type_name}: revisions must be contiguous from 0001")
            for schema in chain:
                if schema.type_name != type_name:
                    raise SchemaError(f"{schema.label} is listed under {type_name}")
                if self._by_fp.setdefault(schema.fingerprint, schema) is not schema:
                    raise SchemaError(f"{schema.label} has the fingerprint of {self._by_fp[schema.fingerprint].label}")
            self._chains[type_name] = tuple(chain)
        self._current = {name: chain[-1] for name, chain in self._chains.items()}
        self._resolvers: dict[tuple[bytes, bytes], Reader] = {}

    @classmethod
    def load(cls, root: Path | str) -> Catalogue:
        """Load and validate the schema tree under ``root``; SchemaFileError names the first bad file.

        Compatibility between revisions is not checked here (that is :meth:`check`, run in CI).
        """
        chains, problems = scan(Path(root))
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more; run 'exchange schemas check')" if len(problems) > 1 else ""
            raise SchemaFileError(first.path, first.reason + more)
        return cls(chains)

    @classmethod
    def of(cls, schemas: Iterable[RecordSchema]) -> Catalogue:
        """Build from any revisions (sorted into chains by type and revision)."""
        chains: dict[str, list[RecordSchema]] = {}
        for schema in schemas:
            chains.setdefault(schema.type_name, []).append(schema)
        return cls({name: sorted(chain, key=lambda s: s.revision) for name, chain in chains.items()})

    def types(self) -> list[str]:
        """Every record type name, sorted."""
        return list(self._chains)

    def revisions(self, type_name: str) -> list[RecordSchema]:
        """Every revision of ``type_name``, oldest first."""
        return list(self._chain(type_name))

    def schemas(self) -> list[RecordSchema]:
        """Every revision of every type."""
        return [schema for chain in self._chains.values() for schema in chain]

    def current(self, type_name: str) -> RecordSchema:
        """The latest revision of ``type_name``; UnknownSchemaError if the type is not in the catalogue."""
        try:
            return self._current[type_name]
        except KeyError as exc:
            raise UnknownSchemaError(f"unknown record type {type_name!r}") from exc

    def revision(self, type_name: str, revision: int) -> RecordSchema:
        """Revision ``revision`` (1-based) of ``type_name``; UnknownSchemaError if there is none."""
        chain = self._chain(type_name)
        if not 1 <= revision <= len(chain):
            raise UnknownSchemaError(f"{type_name} has no revision {revision:04d}")
        return chain[revision - 1]

    def by_fingerprint(self, fingerprint: bytes) -> RecordSchema:
        """The revision with this 8-byte fingerprint; UnknownSchemaError if none has it."""
        schema = self._by_fp.get(bytes(fingerprint))
        if schema is None:
            raise UnknownSchemaError(f"unknown schema fingerprint {bytes(fingerprint).hex()}")
        return schema

    def schema_of(self, data: bytes | bytearray | memoryview) -> RecordSchema:
        """The writer schema a single-object encoded message names, without decoding the datum."""
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise DatumError("not Avro single-object encoding (expected the C3 01 marker and a fingerprint)")
        return self.by_fingerprint(bytes(data[2:HEADER_SIZE]))

    def encode(self, schema: str | RecordSchema, record: Mapping[str, Any]) -> bytes:
        """Single-object encoding of ``record`` with ``schema`` (a revision, or a type name for its current one).

        RecordValidationError lists every bad field: missing, wrong type, unknown extra field, bad enum symbol.
        """
        return self._writer(schema).encode(record)

    def encode_parts(self, schema: str | RecordSchema, record: Mapping[str, Any]) -> tuple[bytes, list[bytes]]:
        """The single-object encoding and each field's encoding in field order (see RecordSchema.encode_parts)."""
        return self._writer(schema).encode_parts(record)

    def encode_field(self, schema: str | RecordSchema, field_name: str, value: Any) -> bytes:
        """The Avro binary encoding of one field's value under that field's schema alone."""
        return self._writer(schema).encode_field(field_name, value)

    def decode(
        self, data: bytes | bytearray | memoryview, reader: RecordSchema | str | None = None
    ) -> tuple[RecordSchema, dict[str, Any]]:
        """Decode a single-object message: the writer's schema and the record.

        With ``reader`` (a revision of the same type, or a type name for its current revision) the record is
        resolved to the reader's fields (Avro schema resolution). UnknownSchemaError for an unknown
        fingerprint, DatumError for malformed bytes, CompatibilityError if the reader cannot read the writer.
        """
        if type(data) is not bytes:
            data = bytes(data)
        writer = self.schema_of(data)
        if reader is None or reader is writer:
            return writer, writer.decode_datum(data, HEADER_SIZE)
        target = self._writer(reader)
        return writer, read_all(self._resolver(writer, target), data, HEADER_SIZE, writer.label)

    def check(self) -> list[Problem]:
        """Every compatibility problem of every chain (the files were validated when they were loaded)."""
        return [problem for chain in self._chains.values() for problem in chain_problems(chain)]

    def _chain(self, type_name: str) -> tuple[RecordSchema, ...]:
        try:
            return self._chains[type_name]
        except KeyError as exc:
            raise UnknownSchemaError(f"unknown record type {type_name!r}") from exc

    def _writer(self, schema: str | RecordSchema) -> RecordSchema:
        if isinstance(schema, str):
            return self.current(schema)
        if self._by_fp.get(schema.fingerprint) is not schema:
            raise UnknownSchemaError(f"{schema.label} is not part of this catalogue")
        return schema

    def _resolver(self, writer: RecordSchema, reader: RecordSchema) -> Reader:
        key = (writer.fingerprint, reader.fingerprint)
        resolver = self._resolvers.get(key)
        if resolver is None:
            if writer.type_name != reader.type_name:
                raise CompatibilityError(f"data of {writer.label} cannot be read as another type ({reader.label})")
            problems = node_problems(reader.node, writer.node, reader.names, writer.names)
            if problems:
                raise CompatibilityError(f"{reader.label} cannot read data of {writer.label}", problems)
            resolver = compile_resolving_reader(writer.node, writer.names, reader.node, reader.names)
            self._resolvers[key] = resolver
        return resolver


def chain_problems(chain: Sequence[RecordSchema]) -> list[Problem]:
    """Check each revision against earlier ones at the level it declares (Confluent semantics).

    BACKWARD: the new revision reads data of the earlier one; FORWARD: the earlier one reads data of the new
    one; FULL: both; ``_TRANSITIVE``: against every earlier revision, not only the previous; NONE: no check.
    """
    problems: list[Problem] = []
    for index in range(1, len(chain)):
        new = chain[index]
        level = new.compatibility
        if level is Compatibility.NONE:
            continue
        earlier = chain[:index] if level.transitive else chain[index - 1 : index]
        for old in reversed(earlier):
            directions = [("BACKWARD", new, old)] if level.backward else []
            directions += [("FORWARD", old, new)] if level.forward else []
            for direction, reader, writer in directions:
                for reason in node_problems(reader.node, writer.node, reader.names, writer.names):
                    problems.append(Problem(
                        new.path,
                        f"{new.label} is not {direction} compatible with {old.revision:04d}: {reason} "
                        f"({reader.revision:04d} reading data of {writer.revision:04d}; level {level.value})",
                        new.type_name,
                        new.revision,
                    ))
    return problems


def check_tree(root: Path) -> list[Problem]:
    """Every problem of the schema tree under ``root``: file validation, then compatibility of valid chains."""
    chains, problems = scan(root)
    for chain in chains.values():
        problems += chain_problems(chain)
    return problems
