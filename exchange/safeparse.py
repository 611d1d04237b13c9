"""Reading configuration files that may be hostile: bounded, typed, and never a crash or a hang.

Every YAML file the exchange reads (agreements, restrictions, the trust registry, the topic spec) and every
schema file (``.avsc`` JSON) goes through this module. It refuses, with :class:`SafeParseError` naming the file
and (where there is one) the line:

- a path that is not a regular file once symlinks are resolved (a FIFO, a device such as ``/dev/zero``, a
  directory), and a file larger than :data:`MAX_BYTES` (it is read with a bounded read, never in full);
- bytes that are not UTF-8, and characters YAML does not allow (NUL and other control characters);
- YAML nested deeper than :data:`MAX_DEPTH` collections, or with more than :data:`MAX_NODES` values;
- YAML aliases (``*name``): configuration reads literally, and without aliases neither a recursive alias
  (``loop: &l [*l]``) nor a "billion laughs" expansion can exist;
- a scalar the YAML constructor cannot build (``2024-02-30``, an integer of thousands of digits);
- JSON nested deeper than :data:`MAX_DEPTH` or otherwise not valid.

The error is neutral: each loader turns it into its own typed error (``PolicyFileError``, ``RegistryFileError``,
the topic spec's error). It derives from :class:`~exchange.errors.ExchangeError` all the same, so one that is
not translated still reaches the user as a message, not a traceback.

With libyaml present (PyYAML's wheels ship it) events come from its C parser and only the composing is done
here, in Python, so a file at the limits loads in well under a second.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from exchange.errors import ExchangeError
from exchange.gcpause import collector_paused

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "SafeParseError",
    "YamlDocument",
    "duplicate_keys",
    "iter_nodes",
    "parse_json",
    "parse_yaml",
    "read_json",
    "read_text",
    "read_yaml",
]

MAX_BYTES = 1 << 20
"""Largest file read (1 MiB): the shipped files are a few KiB; a registry of hundreds of agencies with rotated
keys stays well below it."""

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings (YAML) or arrays and objects (JSON); the shipped files use at most 8."""

MAX_NODES = 50_000
"""Most values (scalars, lists, mappings) in one YAML document: what bounds the time to load one at the limits."""

# What YAML 1.1 allows in a stream (PyYAML's reader refuses the rest, but with an untyped error).
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Raised by the YAML constructors (and json) for values they recognise but cannot build.
_BUILD_ERRORS = (ValueError, OverflowError, TypeError)
# Raised by them for a scalar explicitly tagged with a type its text does not have.
_MISSHAPEN_ERRORS = (LookupError, AttributeError)


class SafeParseError(ExchangeError):
    """A file or text was refused: ``path`` (None for text), ``line`` (1-based, None if unknown) and ``reason``."""

    def __init__(self, path: str | None, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = ":".join(str(part) for part in (path, line) if part is not None)
        super().__init__(f"{where}: {reason}" if where else reason)


def _describe(limit: int) -> str:
    return f"{limit // (1 << 20)} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.read(fd, min(size, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_text(path: Path | str, *, limit: int = MAX_BYTES) -> str:
    """The text of the regular file at ``path`` (symlinks followed), at most ``limit`` bytes of UTF-8 holding
    only characters YAML allows; anything else is a :class:`SafeParseError`."""
    name = str(path)
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below by its type.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise SafeParseError(name, None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SafeParseError(name, None, f"cannot read: it is {_kind(mode)}, not a regular file")
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise SafeParseError(name, None, f"cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SafeParseError(name, None, f"larger than the limit of {_describe(limit)}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SafeParseError(name, line, f"not UTF-8: byte 0x{data[exc.start]:02x} cannot start or continue a "
                                         "character") from None
    _check_characters(text, name)
    return text


def _check_text(text: str, source: str | None, limit: int) -> None:
    if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise SafeParseError(source, None, f"larger than the limit of {_describe(limit)}")
    _check_characters(text, source)


def _check_characters(text: str, source: str | None) -> None:
    found = _NON_PRINTABLE.search(text)
    if found is not None:
        start = found.start()
        line = text.count("\n", 0, start) + 1
        column = start - text.rfind("\n", 0, start)
        raise SafeParseError(source, line, f"character U+{ord(found.group()):04X} at column {column} is not allowed "
                                           "in a configuration file")


# -- YAML ----------------------------------------------------------------------------------------------------


class _Refused(Exception):  # noqa: N818 - internal signal, turned into SafeParseError with the source below
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _Bounded(Composer, SafeConstructor, Resolver):
    """Composing with a depth and a node limit and no aliases; constructing with typed errors."""

    def __init__(self) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]  # from the parser this class is mixed with
        line = 0 if event.start_mark is None else event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            raise _Refused(line, f"YAML aliases are not allowed (*{event.anchor}): write the value out")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(line, f"more than {MAX_NODES} values in one document")
        nested = isinstance(event, SequenceStartEvent | MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(line, f"nested more than {MAX_DEPTH} levels deep")
        node = super().compose_node(parent, index)
        if nested:
            self._depth -= 1
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except _BUILD_ERRORS as exc:
            raise _Refused(node.start_mark.line + 1, f"cannot read the value {_excerpt(node)}: {exc}") from None
        except _MISSHAPEN_ERRORS:
            # PyYAML's constructors trust a scalar to have its tag's form: true of a resolved tag, not of one
            # written out (``!!bool x``, ``!!int ''``, ``!!timestamp x`` fail with a KeyError, IndexError, ...).
            if not isinstance(node, ScalarNode):
                raise
            raise _Refused(node.start_mark.line + 1, f"cannot read the value {_excerpt(node)}: not a valid "
                                                     f"!!{node.tag.rsplit(':', 1)[-1]}") from None


def _excerpt(node: Node) -> str:
    if isinstance(node, ScalarNode):
        value = str(node.value)
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return f"at column {node.start_mark.column + 1}"


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Loader(_Bounded, CParser):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _Bounded.__init__(self)

else:  # pragma: no cover - PyYAML without libyaml: the same limits, slower
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(_Bounded, Reader, Scanner, Parser):  # type: ignore[no-redef]  # one of two definitions
        def __init__(self, text: str) -> None:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
            _Bounded.__init__(self)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One parsed YAML document: its ``data``, its ``root`` node (None if the text holds no document) and the
    ``(line, key)`` of every key that repeats an earlier key of its mapping (YAML would keep the last silently)."""

    data: Any
    root: Node | None
    duplicates: tuple[tuple[int, str], ...]
    _keys: dict[int, dict[str, tuple[Node, int]]] = field(default_factory=dict, init=False, repr=False,
                                                          compare=False)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The 1-based line of ``loc`` (the key of a mapping entry, the start of a list item), or of its nearest
        enclosing node that exists (e.g. the mapping that misses a key); None for an empty document."""
        if self.root is None:
            return None
        node, line = self.root, self.root.start_mark.line + 1
        for part in loc:
            found = self._child(node, part)
            if found is None:
                break
            node, line = found
        return line

    def _child(self, node: Node, part: str | int) -> tuple[Node, int] | None:
        if isinstance(node, MappingNode):
            keys = self._keys.get(id(node))
            if keys is None:  # indexed on first use: a file with thousands of errors is still mapped in linear time
                keys = {}
                for key, value in node.value:
                    if isinstance(key, ScalarNode):
                        keys.setdefault(str(key.value), (value, key.start_mark.line + 1))
                self._keys[id(node)] = keys
            return keys.get(str(part))
        if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            item: Node = node.value[part]
            return item, item.start_mark.line + 1
        return None


def parse_yaml(text: str, source: str | None = None, *, limit: int = MAX_BYTES) -> YamlDocument:
    """Parse a single YAML document (safe types only) within the limits; ``source`` names it in errors."""
    _check_text(text, source, limit)
    loader = _Loader(text)
    try:
        with collector_paused():  # composing makes tens of thousands of acyclic objects
            root = loader.get_single_node()
            data = None if root is None else loader.construct_document(root)
            duplicates = duplicate_keys(root)
    except _Refused as exc:
        raise SafeParseError(source, exc.line, exc.reason) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own limit (1000), met first in flow style
            raise SafeParseError(source, line, f"nested more than {MAX_DEPTH} levels deep") from None
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise SafeParseError(source, line, f"invalid YAML: {message}") from None
    except yaml.YAMLError as exc:
        raise SafeParseError(source, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return YamlDocument(data, root, duplicates)


def read_yaml(path: Path | str, *, limit: int = MAX_BYTES) -> YamlDocument:
    """:func:`read_text` then :func:`parse_yaml`, errors naming ``path``."""
    return parse_yaml(read_text(path, limit=limit), str(path), limit=limit)


def iter_nodes(root: Node | None) -> Iterator[Node]:
    """Every node under ``root`` (keys included), each once even where nodes are shared or form a cycle."""
    seen: set[int] = set()
    stack = [] if root is None else [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, MappingNode):
            stack.extend(part for pair in reversed(node.value) for part in reversed(pair))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))


def duplicate_keys(root: Node | None) -> tuple[tuple[int, str], ...]:
    """``(line, key)`` of every scalar key that repeats an earlier key of the same mapping, in line order."""
    found: list[tuple[int, str]] = []
    for node in iter_nodes(root):
        if isinstance(node, MappingNode):
            keys: set[str] = set()
            for key, _ in node.value:
                if isinstance(key, ScalarNode):
                    if key.value in keys:
                        found.append((key.start_mark.line + 1, str(key.value)))
                    keys.add(key.value)
    return tuple(sorted(found))


# -- JSON ----------------------------------------------------------------------------------------------------


def parse_json(text: str, source: str | None = None, *, limit: int = MAX_BYTES) -> Any:
    """Parse JSON within the size and depth limits; ``source`` names it in errors."""
    _check_text(text, source, limit)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SafeParseError(source, exc.lineno, f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # json's C scanner unwinds cleanly at the interpreter's recursion limit
        raise SafeParseError(source, None, f"nested more than {MAX_DEPTH} levels deep") from None
    except _BUILD_ERRORS as exc:  # e.g. an integer beyond Python's digit limit for conversions
        raise SafeParseError(source, None, f"invalid JSON: {exc}") from None
    if _json_depth(data) > MAX_DEPTH:
        raise SafeParseError(source, None, f"nested more than {MAX_DEPTH} levels deep")
    return data


def read_json(path: Path | str, *, limit: int = MAX_BYTES) -> Any:
    """:func:`read_text` then :func:`parse_json`, errors naming ``path``."""
    return parse_json(read_text(path, limit=limit), str(path), limit=limit)


def _json_depth(data: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            depth += 1
            if depth > MAX_DEPTH:
                return depth
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (value.values() if isinstance(value, dict) else value))
    return deepest
