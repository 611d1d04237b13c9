"""The registry's YAML edge: :mod:`exchange.safeparse` documents, with its errors as :class:`RegistryFileError`.

pydantic reports a failed field as a path (``("agencies", 3, "signing_keys", 0, "valid_from")``); the document
keeps the line each key and item starts on. Together they give ``registry.yaml:42: agencies[3]...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from exchange import safeparse
from exchange.registry.errors import Problem, RegistryFileError
from exchange.safeparse import SafeParseError, YamlDocument

__all__ = ["format_location", "parse", "read"]


def parse(text: str, source: str | None) -> YamlDocument:
    """The document of a single-document YAML text (safe types only, within the safeparse limits).

    Raises :class:`RegistryFileError` naming ``source`` and the line of the problem.
    """
    try:
        return safeparse.parse_yaml(text, source)
    except SafeParseError as exc:
        raise _file_error(exc, source) from None


def read(path: Path) -> YamlDocument:
    """:func:`parse` of the file at ``path``, read with a bounded read (regular files only)."""
    try:
        return safeparse.read_yaml(path)
    except SafeParseError as exc:
        raise _file_error(exc, str(path)) from None


def _file_error(exc: SafeParseError, source: str | None) -> RegistryFileError:
    return RegistryFileError([Problem(exc.path or source, exc.line, "", exc.reason)])


def format_location(location: Sequence[str | int]) -> str:
    """``("agencies", 3, "signing_keys", 0, "valid_from")`` as ``agencies[3].signing_keys[0].valid_from``."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
