"""Reading agreements and restrictions from YAML, with every problem reported as ``file:line: reason``.

This module is the policy core's file edge; the engine never touches files. Layout of a policy directory::

    <dir>/agreements/*.yaml    one agreement per file
    <dir>/restrictions.yaml    {restrictions: [ ... ]} (required: a missing file would silently lift them)

Files are read through :mod:`exchange.safeparse` (at most 1 MiB, nesting at most 64 deep, no YAML aliases,
regular files only), whose composed nodes keep the line of every key and item; pydantic reports where
validation failed as a path (``("fields", 2)``); :class:`SourceMap` joins the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from exchange import safeparse
from exchange.policy.checks import ItemKind, PolicyIssue
from exchange.policy.errors import PolicyFileError
from exchange.policy.models import Agreement, PolicySet, Restriction
from exchange.safeparse import SafeParseError, YamlDocument

__all__ = [
    "AGREEMENTS_DIR",
    "RESTRICTIONS_FILE",
    "Loc",
    "PolicyScan",
    "SourceMap",
    "load_policies",
    "parse_yaml",
    "read_yaml",
    "scan_policies",
    "validation_problems",
]

AGREEMENTS_DIR = "agreements"
RESTRICTIONS_FILE = "restrictions.yaml"

Loc = tuple[str | int, ...]
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class SourceMap:
    """Where the nodes of one item's document are: the lines of ``document``, for paths under ``prefix``."""

    path: str
    document: YamlDocument
    prefix: Loc = ()

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of ``loc``, or of its nearest enclosing node that has one (e.g. the mapping that misses a
        key); 0 if nothing is known."""
        return self.document.line_of((*self.prefix, *loc)) or 0

    def error(self, loc: Sequence[str | int], reason: str) -> PolicyFileError:
        """A :class:`PolicyFileError` at the line of ``loc``."""
        return PolicyFileError(self.path, self.line_of(loc), reason)


_Sources = dict[tuple[ItemKind, str, int | None], SourceMap]


def _checked(document: YamlDocument, path: str) -> tuple[Any, SourceMap]:
    if document.root is None:
        raise PolicyFileError(path, 1, "the file is empty")
    if document.duplicates:
        line, key = document.duplicates[0]
        raise PolicyFileError(path, line, f"duplicate key {key!r}")
    return document.data, SourceMap(path, document)


def _file_error(exc: SafeParseError, path: str) -> PolicyFileError:
    return PolicyFileError(exc.path or path, exc.line or 0, exc.reason)


def parse_yaml(text: str, path: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document within the limits of :mod:`exchange.safeparse` and map its nodes to lines; raise
    :class:`PolicyFileError` on a syntax error, an empty document or a duplicate key (which PyYAML would
    otherwise resolve silently to the last one)."""
    try:
        document = safeparse.parse_yaml(text, path)
    except SafeParseError as exc:
        raise _file_error(exc, path) from None
    return _checked(document, path)


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """:func:`parse_yaml` of the file at ``path``, read with a bounded read (regular files only)."""
    try:
        document = safeparse.read_yaml(path)
    except SafeParseError as exc:
        raise _file_error(exc, str(path)) from None
    return _checked(document, str(path))


def validation_problems(exc: ValidationError, source: SourceMap) -> list[PolicyFileError]:
    """One :class:`PolicyFileError` per pydantic error, at the line its location points to."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in loc if not (isinstance(part, str) and "[" in part))
        problems.append(source.error(loc, f"{where}: {message}" if where else message))
    return problems


@dataclass(frozen=True)
class PolicyScan:
    """What :func:`scan_policies` found: the valid items, where each came from, and every problem."""

    policy_set: PolicySet
    sources: Mapping[tuple[ItemKind, str, int | None], SourceMap] = field(default_factory=dict)
    problems: tuple[PolicyFileError, ...] = ()

    def locate(self, issue: PolicyIssue) -> PolicyFileError:
        """The cross-reference ``issue`` as a :class:`PolicyFileError` pointing into the file it came from."""
        source = self.sources.get((issue.kind, issue.item_id, issue.version))
        if source is None:
            return PolicyFileError("<policies>", 0, str(issue))
        return source.error(issue.loc, issue.message)


def _validate(model: type[_M], data: object, source: SourceMap) -> _M | list[PolicyFileError]:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return validation_problems(exc, source)


def scan_policies(directory: Path) -> PolicyScan:
    """Read every agreement and the restrictions under ``directory``, collecting problems instead of raising."""
    problems: list[PolicyFileError] = []
    sources: _Sources = {}
    agreements: list[Agreement] = []
    restrictions: list[Restriction] = []
    folder = directory / AGREEMENTS_DIR
    if not folder.is_dir():
        problems.append(PolicyFileError(str(folder), 0, "agreements directory not found"))
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            data, source = read_yaml(path)
        except PolicyFileError as exc:
            problems.append(exc)
            continue
        result = _validate(Agreement, data, source)
        if isinstance(result, list):
            problems.extend(result)
            continue
        if _claim(sources, ("agreement", result.id, result.version), source, problems):
            agreements.append(result)
    restrictions_path = directory / RESTRICTIONS_FILE
    try:
        data, source = read_yaml(restrictions_path)
    except PolicyFileError as exc:
        problems.append(exc)
    else:
        restrictions.extend(_restrictions(data, source, sources, problems))
    return PolicyScan(PolicySet(agreements=tuple(agreements), restrictions=tuple(restrictions)), sources,
                      tuple(problems))


def _restrictions(
    data: object,
    source: SourceMap,
    sources: _Sources,
    problems: list[PolicyFileError],
) -> list[Restriction]:
    if not isinstance(data, dict) or set(data) != {"restrictions"} or not isinstance(data["restrictions"], list):
        problems.append(source.error((), "expected a mapping with one key, 'restrictions', holding a list"))
        return []
    found = []
    for index, item in enumerate(data["restrictions"]):
        item_source = SourceMap(source.path, source.document, ("restrictions", index))
        result = _validate(Restriction, item, item_source)
        if isinstance(result, list):
            problems.extend(result)
            continue
        if _claim(sources, ("restriction", result.id, None), item_source, problems):
            found.append(result)
    return found


def _claim(
    sources: _Sources, key: tuple[ItemKind, str, int | None], source: SourceMap, problems: list[PolicyFileError]
) -> bool:
    # Reported here rather than by the cross-reference checks, so the error points at the second definition.
    first = sources.get(key)
    if first is None:
        sources[key] = source
        return True
    kind, item_id, version = key
    name = f"{kind} {item_id}" + ("" if version is None else f" v{version}")
    problems.append(source.error(("id",), f"{name} is already defined at {first.path}:{first.line_of(('id',))}"))
    return False


def load_policies(directory: Path) -> PolicySet:
    """The policy set under ``directory``; raises the first :class:`PolicyFileError` if anything is wrong, since
    a partial set could lack a restriction (fail closed)."""
    scan = scan_policies(directory)
    if scan.problems:
        raise scan.problems[0]
    return scan.policy_set
