"""YAML with positions: load a document and keep its node tree, so a field path maps back to a line.

pydantic reports a failed field as a path (``("agencies", 3, "signing_keys", 0, "valid_from")``); PyYAML's
composed nodes carry the line each value starts on. Together they give ``registry.yaml:42: agencies[3]...``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import yaml

from exchange.registry.errors import Problem, RegistryFileError

__all__ = ["compose", "duplicate_keys", "format_location", "line_of"]


def compose(text: str, source: str | None) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree of a single-document YAML text (safe types only).

    Raises :class:`RegistryFileError` naming ``source`` and the line of a syntax error.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise RegistryFileError([Problem(source, line, "", f"not valid YAML: {message}")]) from exc
    except yaml.YAMLError as exc:
        raise RegistryFileError([Problem(source, None, "", f"not valid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, location: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node on ``location`` that exists (the parent, for a missing field)."""
    if node is None:
        return None
    current = node
    for part in location:
        child = _child(current, part)
        if child is None:
            break
        current = child
    return current.start_mark.line + 1


def format_location(location: Sequence[str | int]) -> str:
    """``("agencies", 3, "signing_keys", 0, "valid_from")`` as ``agencies[3].signing_keys[0].valid_from``."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def duplicate_keys(node: yaml.Node | None) -> Iterator[tuple[int, str]]:
    """``(line, key)`` for every mapping key that repeats an earlier key of the same mapping.

    PyYAML keeps the last value silently; in a trust registry a repeated key is a mistake worth reporting.
    """
    if node is None:
        return
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        yield key.start_mark.line + 1, key.value
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return value  # type: ignore[no-any-return]  # types-PyYAML types node.value as Any
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]  # types-PyYAML types node.value as Any
    return None
