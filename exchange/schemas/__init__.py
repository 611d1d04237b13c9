"""The schema catalogue: record types, revisions, fingerprints, Avro single-object encoding, compatibility.

The data lives in the top-level ``schemas/`` tree (``<domain>/<event>/<NNNN>.avsc``); this package loads and
validates it and encodes and decodes records with it. It is pure: no Kafka, and file reads only in
:meth:`Catalogue.load`.

Typical use::

    catalogue = Catalogue.load(Path("schemas"))
    message = catalogue.encode("population.address-changed", record)     # C3 01 + fingerprint + datum
    schema, record = catalogue.decode(message)                            # the writer's revision and the record
    schema, record = catalogue.decode(message, reader=catalogue.revision("population.address-changed", 1))
    commitment_input = catalogue.encode_field(schema, "postal_code", record["postal_code"])

Public API:

- :class:`Catalogue` — ``load(root)``, ``of(schemas)``, ``types()``, ``revisions(type)``, ``schemas()``,
  ``current(type)``, ``revision(type, n)``, ``by_fingerprint(fp)``, ``schema_of(message)``,
  ``encode(type_or_schema, record)``, ``encode_parts(type_or_schema, record)``,
  ``encode_field(type_or_schema, field, value)``, ``decode(message, reader=None)``, ``check()``.
- :class:`RecordSchema` — one revision: ``type_name``, ``revision``, ``path``, ``schema``, ``parsed``,
  ``canonical_form``, ``fingerprint``, ``key_field``, ``key_kind``, ``compatibility``, ``fields``,
  ``field_names``, ``label``, ``header``, ``classification(field)``, ``field(name)``, ``encode``,
  ``encode_datum``, ``encode_parts``, ``encode_field``, ``decode_datum``.
- :class:`Field`, :class:`Classification`, :class:`KeyKind`, :class:`Compatibility`, :class:`Problem`.
- :func:`check_tree` (validation and compatibility of a whole tree, for ``exchange schemas check``),
  :func:`chain_problems`, :func:`resolution_problems`, :func:`parse_record_schema`, :func:`load_file`,
  :func:`avro_names`.
- :func:`parsing_canonical_form`, :func:`crc64_avro`, :func:`fingerprint` (Avro specification algorithms).
- Errors: see :mod:`exchange.schemas.errors`. Sample records: :mod:`exchange.schemas.samples`.
"""

from __future__ import annotations

from exchange.schemas._canonical import crc64_avro, fingerprint, parsing_canonical_form
from exchange.schemas._compat import resolution_problems
from exchange.schemas._loader import avro_names, load_file, parse_record_schema
from exchange.schemas._model import (
    DEFAULT_COMPATIBILITY,
    MAGIC,
    Classification,
    Compatibility,
    Field,
    KeyKind,
    Problem,
    RecordSchema,
)
from exchange.schemas._strict import StrictReader
from exchange.schemas.catalogue import Catalogue, chain_problems, check_tree
from exchange.schemas.errors import (
    CompatibilityError,
    DatumError,
    RecordValidationError,
    SchemaError,
    SchemaFileError,
    UnknownFieldError,
    UnknownSchemaError,
)

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "MAGIC",
    "Catalogue",
    "Classification",
    "Compatibility",
    "CompatibilityError",
    "DatumError",
    "Field",
    "KeyKind",
    "Problem",
    "RecordSchema",
    "RecordValidationError",
    "SchemaError",
    "SchemaFileError",
    "StrictReader",
    "UnknownFieldError",
    "UnknownSchemaError",
    "avro_names",
    "chain_problems",
    "check_tree",
    "crc64_avro",
    "fingerprint",
    "load_file",
    "parse_record_schema",
    "parsing_canonical_form",
    "resolution_problems",
]
