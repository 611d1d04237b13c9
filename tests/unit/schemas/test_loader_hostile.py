"""Hostile schema files: refused with the file (and line, where there is one) within a second, never a crash."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from exchange.cli._app import main
from exchange.schemas import Catalogue, SchemaFileError, check_tree
from tests.unit.schemas.conftest import SCHEMAS_ROOT

_TYPE_DIR = "tax/income-assessed"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of the shipped schema tree."""
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_ROOT, root)
    return root


def _target(tree: Path) -> Path:
    path = tree / _TYPE_DIR / "0001.avsc"
    assert path.is_file()
    return path


def _problems(tree: Path) -> list[str]:
    start = time.monotonic()
    problems = [str(problem) for problem in check_tree(tree)]
    assert time.monotonic() - start < 1.0
    return problems


def _only_problem_of(tree: Path, path: Path) -> str:
    mine = [problem for problem in _problems(tree) if problem.startswith(f"{path}: ")]
    assert mine, "the file is not reported"
    return mine[0].removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested more than 64 levels deep"),  # json raised RecursionError
        (b"[" * 100 + b"]" * 100, "nested more than 64 levels deep"),  # within the interpreter's limit
        (b'{"a": ' + b"1" * 5000 + b"}", "invalid JSON: Exceeds the limit (4300 digits)"),
        (b'{\n  "doc": "a\x00b"\n}', "line 2: character U+0000 at column 12 is not allowed"),
        (b'{\n\n  "doc": "caf\xe9"\n}', "line 3: not UTF-8"),
        (b'{\n  "type": "record",\n  "fields": [,]\n}', "line 3: invalid JSON: Expecting value at column 14"),
    ],
    ids=["deep", "deep-100", "long-int", "nul", "latin-1", "syntax"],
)
def test_broken_json_is_a_problem_of_its_file(tree: Path, content: bytes, reason: str) -> None:
    """Deep nesting, huge numbers, control characters, bad UTF-8 and syntax errors are problems, not crashes."""
    path = _target(tree)
    path.write_bytes(content)
    assert _only_problem_of(tree, path).startswith(reason)


def test_a_huge_schema_file_is_refused_unread(tree: Path) -> None:
    """A 50 MB .avsc is refused after at most 1 MiB + 1 byte."""
    path = _target(tree)
    with path.open("wb") as file:
        file.truncate(50 * 1024 * 1024)
    assert _only_problem_of(tree, path) == "larger than the limit of 1 MiB"


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "fifo"])
def test_an_endless_schema_file_is_refused(tree: Path, kind: str) -> None:
    """A symlink to a device, or a FIFO, named like a schema is refused by its type."""
    path = _target(tree)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(kind)
    assert _only_problem_of(tree, path).startswith("cannot read: it is a ")


def test_catalogue_load_raises_the_typed_error(tree: Path) -> None:
    """Catalogue.load refuses a tree with a hostile file with SchemaFileError (an ExchangeError)."""
    _target(tree).write_bytes(b"[" * 100_000)
    start = time.monotonic()
    with pytest.raises(SchemaFileError, match="nested more than 64 levels deep"):
        Catalogue.load(tree)
    assert time.monotonic() - start < 1.0


def test_schemas_check_prints_the_file_and_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``exchange schemas check`` reports the file and line and exits 1, no traceback."""
    path = _target(tree)
    path.write_bytes(b'{\n  "doc": "\x1b[31m"\n}')
    assert main(["schemas", "check", "--root", str(tree)]) == 1
    out = capsys.readouterr()
    assert f"{path}: line 2: character U+001B at column 11 is not allowed in a configuration file" in out.out
    assert "Traceback" not in out.err


def test_schemas_list_refuses_a_hostile_registry(tree: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The registry ``schemas list`` reads for owners is read within the same limits: file:line, exit 2."""
    registry = tmp_path / "registry.yaml"
    registry.write_text("agencies:\n  - id: tax-board\n    authoritative_for: &a [*a]\n", encoding="utf-8")
    assert main(["schemas", "list", "--root", str(tree), "--registry", str(registry)]) == 2
    assert capsys.readouterr().err == (f"exchange schemas: error: {registry}:3: YAML aliases are not allowed (*a): "
                                       "write the value out\n")
