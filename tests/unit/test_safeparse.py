"""The shared reader of configuration files: bounded reads, typed errors, limits that hold on hostile input."""

from __future__ import annotations

import contextlib
import os
import time
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml import Mark
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from exchange.errors import ExchangeError
from exchange.safeparse import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    SafeParseError,
    duplicate_keys,
    iter_nodes,
    parse_json,
    parse_yaml,
    read_json,
    read_text,
    read_yaml,
)
from tests.unit.policy.hostile import REPO, billion_laughs, mutations, refused

# -- reading -----------------------------------------------------------------------------------------------


def test_the_error_is_an_exchange_error_naming_file_and_line() -> None:
    """Untranslated, the error still reaches a CLI user as a message: ``file:line: reason``."""
    assert isinstance(SafeParseError("a.yaml", 3, "why"), ExchangeError)
    assert str(SafeParseError("a.yaml", 3, "why")) == "a.yaml:3: why"
    assert str(SafeParseError("a.yaml", None, "why")) == "a.yaml: why"
    assert str(SafeParseError(None, None, "why")) == "why"


def test_a_file_at_the_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    """The limit is inclusive; the read stops at limit + 1 bytes."""
    path = tmp_path / "f.yaml"
    path.write_bytes(b"a" * 100)
    assert read_text(path, limit=100) == "a" * 100
    err = refused(lambda: read_text(path, limit=99), SafeParseError)
    assert str(err) == f"{path}: larger than the limit of 99 bytes"


def test_a_huge_sparse_file_is_refused_at_once(tmp_path: Path) -> None:
    """A 1 GiB file costs the same as a 1 MiB + 1 byte one."""
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(1 << 30)
    assert "larger than the limit of 1 MiB" in str(refused(lambda: read_text(path), SafeParseError))


@pytest.mark.parametrize(("kind", "what"), [("/dev/zero", "a device"), ("/dev/urandom", "a device"),
                                            ("/dev/null", "a device"), ("fifo", "a FIFO"), ("dir", "a directory")])
def test_special_files_are_refused_after_resolving_symlinks(tmp_path: Path, kind: str, what: str) -> None:
    """A symlink is followed; what it points to must be a regular file. Opening a FIFO does not block."""
    path = tmp_path / "x.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    else:
        path.symlink_to(kind)
    err = refused(lambda: read_text(path), SafeParseError)
    assert str(err) == f"{path}: cannot read: it is {what}, not a regular file"
    link = tmp_path / "link.yaml"
    link.symlink_to(path)
    assert "not a regular file" in str(refused(lambda: read_text(link), SafeParseError))


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    """Symlinked configuration (as deployments do) stays readable."""
    (tmp_path / "real.yaml").write_text("a: 1\n", encoding="utf-8")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "real.yaml")
    assert read_yaml(tmp_path / "link.yaml").data == {"a": 1}


def test_a_missing_file_is_a_typed_error(tmp_path: Path) -> None:
    """The OS reason, with the path."""
    assert str(refused(lambda: read_text(tmp_path / "no.yaml"), SafeParseError)) == (
        f"{tmp_path / 'no.yaml'}: cannot read: No such file or directory")


def test_invalid_utf8_is_refused_at_its_line(tmp_path: Path) -> None:
    """The line of the first bad byte is reported."""
    path = tmp_path / "x.yaml"
    path.write_bytes(b"a: 1\nb: 2\nc: \xc3\x28\n")
    err = refused(lambda: read_text(path), SafeParseError)
    assert (err.line, err.reason) == (3, "not UTF-8: byte 0xc3 cannot start or continue a character")


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x80", "\x9f", "\ufffe"])
def test_non_printable_characters_are_refused_with_line_and_column(char: str) -> None:
    """What YAML forbids in a stream is refused up front, with its position."""
    err = refused(lambda: parse_yaml(f"a: 1\nb: x{char}y\n", "x.yaml"), SafeParseError)
    assert (err.path, err.line) == ("x.yaml", 2)
    assert err.reason == f"character U+{ord(char):04X} at column 5 is not allowed in a configuration file"


def test_printable_text_is_accepted() -> None:
    """Tabs, CRLF, a BOM, accents and emoji are all fine."""
    text = "\ufeffname: 'Tax\tand Customs Board é 🏛'\r\nother: 1\r\n"
    assert parse_yaml(text).data == {"name": "Tax\tand Customs Board é 🏛", "other": 1}


def test_text_is_bounded_like_files() -> None:
    """parse_yaml and parse_json apply the byte limit to text too (counted in UTF-8)."""
    assert "larger than" in str(refused(lambda: parse_yaml("é" * (MAX_BYTES // 2 + 1)), SafeParseError))
    assert "larger than" in str(refused(lambda: parse_json('"' + "x" * MAX_BYTES + '"'), SafeParseError))


# -- YAML --------------------------------------------------------------------------------------------------


def _nested(depth: int, style: str) -> str:
    if style == "flow":
        return "[" * depth + "]" * depth
    if style == "block-map":
        return "".join("  " * level + "k:\n" for level in range(depth - 1)) + "  " * (depth - 1) + "k: v\n"
    return "- " * depth + "x\n"


@pytest.mark.parametrize("style", ["flow", "block-map", "block-seq"])
def test_nesting_up_to_the_limit_loads_and_one_more_is_refused(style: str) -> None:
    """64 nested collections load; 65 are refused at the line of the 65th."""
    assert parse_yaml(_nested(MAX_DEPTH, style)).root is not None
    err = refused(lambda: parse_yaml(_nested(MAX_DEPTH + 1, style), "x.yaml"), SafeParseError)
    assert err.reason == f"nested more than {MAX_DEPTH} levels deep"
    assert err.line == (MAX_DEPTH + 1 if style == "block-map" else 1)


@pytest.mark.parametrize("depth", [2000, 100_000])
def test_very_deep_nesting_is_refused_fast(depth: int) -> None:
    """Far beyond the limit (where PyYAML recursed into a RecursionError) the refusal is immediate."""
    for style in ("flow", "block-seq"):
        text = _nested(depth, style)
        if len(text) <= MAX_BYTES:
            err = refused(lambda text=text: parse_yaml(text), SafeParseError)
            assert err.reason == f"nested more than {MAX_DEPTH} levels deep"


def test_the_node_limit_holds_and_bounds_the_time() -> None:
    """A document of exactly MAX_NODES values loads; one more is refused; both well within a second."""
    at_limit = "[" + ",".join(["a"] * (MAX_NODES - 1)) + "]"
    start = time.monotonic()
    assert len(parse_yaml(at_limit).data) == MAX_NODES - 1
    assert time.monotonic() - start < 1.0
    err = refused(lambda: parse_yaml(at_limit.replace("[", "[a,", 1), "x.yaml"), SafeParseError)
    assert err.reason == f"more than {MAX_NODES} values in one document"


@pytest.mark.parametrize(("text", "refusal"), [
    ("- a\n" * (MAX_BYTES // 4), "more than 50000 values"),
    ("".join(f"k{i}: {i}\n" for i in range(MAX_NODES // 2 - 1)), None),
    ("- [[[[[[[[]]]]]]]]\n" * (MAX_BYTES // 19), "more than 50000 values"),
    ("x: '" + "y" * (MAX_BYTES - 10) + "'\n", None),
], ids=["many-items", "many-keys", "many-small-lists", "one-long-string"])
def test_a_file_at_the_size_limit_is_handled_within_a_second(text: str, refusal: str | None) -> None:
    """Whatever 1 MiB holds, loading or refusing it takes less than a second."""
    start = time.monotonic()
    if refusal is None:
        parse_yaml(text)
    else:
        with pytest.raises(SafeParseError, match=refusal):
            parse_yaml(text)
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(("text", "line"), [
    ("loop: &l [*l]\n", 1),
    ("a: &x 1\nb: *x\n", 2),
    ("base: &b {k: 1}\nmerged:\n  <<: *b\n", 3),
    (billion_laughs(), 2),
])
def test_aliases_are_refused_at_their_line(text: str, line: int) -> None:
    """Recursive aliases, plain ones, merges of aliases and the billion laughs: refused before any expansion."""
    err = refused(lambda: parse_yaml(text, "x.yaml"), SafeParseError)
    assert err.line == line
    assert err.reason.startswith("YAML aliases are not allowed (*")


def test_anchors_alone_and_inline_merges_load() -> None:
    """An anchor no alias uses, and a merge of an inline mapping, are harmless."""
    assert parse_yaml("a: &x 1\nb: {<<: {k: 1}, j: 2}\n").data == {"a": 1, "b": {"k": 1, "j": 2}}


@pytest.mark.parametrize(("value", "reason"), [
    ("2024-02-30", "day is out of range for month"),
    ("2024-01-01 00:00:00 +25:00", "offset must be a timedelta"),
    ("1" * 5000, "Exceeds the limit (4300 digits)"),
])
def test_values_the_constructor_cannot_build_are_typed_errors(value: str, reason: str) -> None:
    """ValueError from PyYAML's constructors becomes a SafeParseError at the value's line."""
    err = refused(lambda: parse_yaml(f"a: 1\nb: {value}\n", "x.yaml"), SafeParseError)
    assert err.line == 2
    assert err.reason.startswith("cannot read the value ")
    assert reason in err.reason


@pytest.mark.parametrize(("value", "tag"), [
    ("!!timestamp x", "timestamp"),  # found by the fuzzer: an AttributeError inside PyYAML
    ("!!bool x", "bool"),  # a KeyError
    ("!!bool ''", "bool"),
    ("!!int ''", "int"),  # an IndexError
    ("!!float ''", "float"),
])
def test_a_scalar_tagged_with_a_type_it_has_not_is_a_typed_error(value: str, tag: str) -> None:
    """PyYAML's constructors assume a scalar has its tag's form; one tagged by hand need not."""
    err = refused(lambda: parse_yaml(f"a: 1\nb: {value}\n", "x.yaml"), SafeParseError)
    assert (err.path, err.line) == ("x.yaml", 2)
    assert err.reason.startswith("cannot read the value ")
    assert err.reason.endswith(f": not a valid !!{tag}")
    assert parse_yaml("a: !!timestamp 2024-01-01\nb: !!bool yes\n").data == {"a": date(2024, 1, 1), "b": True}


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("a: 1\n---\nb: 2\n", 2, "invalid YAML: expected a single document in the stream but found another document"),
    ("a: [1, 2\nb: 3\n", 2, "invalid YAML: while parsing a flow sequence"),
    ("a: !!python/object:os.system x\n", 1, "invalid YAML: could not determine a constructor"),
    ("? [a]\n: 1\n", 1, "invalid YAML: while constructing a mapping found unhashable key"),
])
def test_syntax_errors_are_typed_with_a_line(text: str, line: int, reason: str) -> None:
    """PyYAML's marked errors keep their line; unsafe tags are refused."""
    err = refused(lambda: parse_yaml(text, "x.yaml"), SafeParseError)
    assert err.line == line
    assert err.reason.startswith(reason)


def test_an_empty_document_has_no_root() -> None:
    """Empty and comment-only texts are for the loaders to judge: no root, no data."""
    for text in ("", "\n", "# only a comment\n"):
        document = parse_yaml(text)
        assert (document.root, document.data, document.line_of(("a",))) == (None, None, None)


def test_lines_of_keys_items_and_missing_paths() -> None:
    """A mapping entry is at its key's line, a list item at its start, a missing path at its nearest parent."""
    document = parse_yaml("# c\ntop:\n  list:\n    - a\n    -\n      k: v\n  other: 1\n")
    assert document.line_of(()) == 2
    assert document.line_of(("top",)) == 2
    assert document.line_of(("top", "list")) == 3
    assert document.line_of(("top", "list", 1)) == 6
    assert document.line_of(("top", "list", 1, "k")) == 6
    assert document.line_of(("top", "list", 7)) == 3
    assert document.line_of(("top", "missing", "deeper")) == 2
    assert document.line_of(("top", "other")) == 7


def test_duplicate_keys_are_listed_with_their_lines() -> None:
    """Every repeated key of each mapping, in line order; the document still loads (the loader decides)."""
    document = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert document.duplicates == ((4, "c"), (5, "a"))
    assert document.line_of(("a",)) == 1  # the first definition


def test_the_node_walker_terminates_on_cycles() -> None:
    """iter_nodes and duplicate_keys keep a visited set: a cyclic node graph is walked once."""
    mark = Mark("x.yaml", 0, 0, 0, None, None)
    key = ScalarNode("tag:yaml.org,2002:str", "k", mark)
    mapping = MappingNode("tag:yaml.org,2002:map", [], mark)
    sequence = SequenceNode("tag:yaml.org,2002:seq", [mapping], mark)
    mapping.value.extend([(key, sequence), (key, sequence)])
    start = time.monotonic()
    assert len(list(iter_nodes(mapping))) == 3
    assert duplicate_keys(sequence) == ((1, "k"),)
    assert time.monotonic() - start < 1.0


# -- JSON --------------------------------------------------------------------------------------------------


def test_json_nesting_limit() -> None:
    """64 nested arrays load; 65 or a million are refused (json would raise RecursionError)."""
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    for depth in (MAX_DEPTH + 1, 5000, 400_000):
        err = refused(lambda depth=depth: parse_json("[" * depth + "]" * depth, "s.avsc"), SafeParseError)
        assert str(err) == f"s.avsc: nested more than {MAX_DEPTH} levels deep"


def test_json_errors_are_typed(tmp_path: Path) -> None:
    """Syntax errors keep their line; an oversized integer is a typed error too."""
    err = refused(lambda: parse_json('{\n  "a": 1,\n}', "s.avsc"), SafeParseError)
    assert (err.line, err.reason) == (3, "invalid JSON: Expecting property name enclosed in double quotes at column 1")
    assert "4300 digits" in str(refused(lambda: parse_json("1" * 5000), SafeParseError))
    path = tmp_path / "s.avsc"
    path.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_json(path) == {"a": [1, 2]}


# -- fuzzing -----------------------------------------------------------------------------------------------

_REAL = sorted([*(REPO / "policies").rglob("*.yaml"), REPO / "deploy" / "topics.yaml"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_real_files_parse_or_raise_the_typed_error(data: st.DataObject) -> None:
    """Any mutation of any shipped YAML file parses or raises SafeParseError, within a second."""
    path = data.draw(st.sampled_from(_REAL))
    mutated = data.draw(mutations(path.read_bytes()))
    text = mutated.decode("utf-8", "replace")
    start = time.monotonic()
    try:
        parse_yaml(text, str(path))
    except SafeParseError as exc:
        named = exc.path
    else:
        named = str(path)
    assert time.monotonic() - start < 1.0
    assert named == str(path)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_arbitrary_text_parses_or_raises_the_typed_error(text: str) -> None:
    """Any text at all, as YAML and as JSON: a value or SafeParseError, nothing else."""
    for parse in (parse_yaml, parse_json):
        with contextlib.suppress(SafeParseError):
            parse(text)
