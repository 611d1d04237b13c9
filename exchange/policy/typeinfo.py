"""What the policy core needs to know about a record type, as plain data.

The caller builds these from the schema catalogue (the router) or straight from the ``.avsc`` files (the CLI),
so the engine never depends on how schemas are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["CLASSIFICATIONS", "Classification", "KeyKind", "TypeInfo"]

Classification = Literal["public", "personal", "special"]
KeyKind = Literal["person", "record"]

CLASSIFICATIONS: frozenset[str] = frozenset({"public", "personal", "special"})


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """One record type: its fields in schema order with their classification, and what its key is.

    ``fields`` should be those of the newest schema revision; ``key_kind`` is ``person`` when the key field
    holds a person id (pseudonymised on the wire), ``record`` when the record is public and keyed as is.
    """

    record_type: str
    fields: Mapping[str, str]
    key_field: str
    key_kind: str

    def __post_init__(self) -> None:
        # A read-only copy: the caller's dict may change later, a compiled index must not.
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    @property
    def all_public(self) -> bool:
        """True when every field is ``public`` (the condition for open data)."""
        return all(classification == "public" for classification in self.fields.values())
