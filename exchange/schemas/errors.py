"""Errors of the schema catalogue: loading, encoding, decoding and compatibility.

::

    ExchangeError
    └── SchemaError                  anything the catalogue refuses
        ├── SchemaFileError          a schema file cannot be used (.path, .reason)
        ├── UnknownSchemaError       a type, revision or fingerprint the catalogue does not hold
        ├── UnknownFieldError        a field name the record type does not have
        ├── RecordValidationError    a record does not match its schema (.problems: one line per bad field)
        ├── DatumError               bytes that are not a well-formed single-object datum
        └── CompatibilityError       a reader schema cannot read a writer schema (.problems)

Messages name fields, types and revisions but never echo a field's value: records carry personal data and error
messages end up in logs and quarantine entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from exchange.errors import ExchangeError

__all__ = [
    "CompatibilityError",
    "DatumError",
    "RecordValidationError",
    "SchemaError",
    "SchemaFileError",
    "UnknownFieldError",
    "UnknownSchemaError",
]


class SchemaError(ExchangeError):
    """Base class of every error the schema catalogue raises."""


class SchemaFileError(SchemaError):
    """A schema file (or the layout of the schema tree) cannot be used; ``path`` and ``reason`` say why."""

    def __init__(self, path: Path | None, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path is not None else reason)


class UnknownSchemaError(SchemaError):
    """A record type, revision or fingerprint is not in the catalogue (fail closed: nothing unknown is read)."""


class UnknownFieldError(SchemaError):
    """A field name is not part of the record type it was looked up in."""


class RecordValidationError(SchemaError):
    """A record does not match its schema; ``problems`` has one line per bad field, all of them at once."""

    def __init__(self, schema_label: str, problems: Sequence[str]) -> None:
        self.schema_label = schema_label
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{schema_label}: {count} {noun}: " + "; ".join(self.problems))


class DatumError(SchemaError):
    """Bytes are not a well-formed single-object datum: bad marker, truncated, trailing or malformed data."""


class CompatibilityError(SchemaError):
    """A reader schema cannot read data of a writer schema; ``problems`` lists every reason."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        super().__init__(message + (": " + "; ".join(self.problems) if self.problems else ""))
