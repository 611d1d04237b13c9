"""Hostile policy files: each is refused with a PolicyFileError naming the file and line, within a second."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.cli._app import main
from exchange.policy import PolicyFileError, load_policies, scan_policies

from .hostile import (
    DEEP_BLOCK_NESTING,
    DEEP_NESTING,
    ENDLESS,
    RECURSIVE_ALIAS,
    REPO,
    billion_laughs,
    endless,
    mutations,
    refused,
    write_huge,
)
from .support import Writer

AGREEMENT = (REPO / "policies/agreements/tcb-person-registered-tax.yaml").read_text(encoding="utf-8")
RESTRICTIONS = (REPO / "policies/restrictions.yaml").read_text(encoding="utf-8")


def _policies(tmp_path: Path, write: Writer, agreement: str | bytes = AGREEMENT) -> Path:
    path = tmp_path / "agreements" / "a.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(agreement, bytes):
        path.write_bytes(agreement)
    else:
        path.write_text(agreement, encoding="utf-8")
    write("restrictions.yaml", RESTRICTIONS)
    return path


def _refused(tmp_path: Path) -> PolicyFileError:
    return refused(lambda: load_policies(tmp_path), PolicyFileError)


def test_a_nul_character_is_refused_with_its_line(tmp_path: Path, write: Writer) -> None:
    """A NUL is a PolicyFileError at its line, not PyYAML's untyped ReaderError."""
    path = _policies(tmp_path, write, AGREEMENT.replace("purpose:", "purpose:\x00", 1))
    err = _refused(tmp_path)
    line = AGREEMENT.split("\n").index(next(x for x in AGREEMENT.split("\n") if x.startswith("purpose:"))) + 1
    assert (err.path, err.line) == (str(path), line)
    assert "U+0000" in err.reason
    assert str(err).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("char", ["\x07", "\x1b", "\x7f", "\x9f", "\ufffe"])
def test_other_non_printable_characters_are_refused(tmp_path: Path, write: Writer, char: str) -> None:
    """Control characters anywhere (here in the third line) are refused at their line."""
    lines = AGREEMENT.split("\n")
    lines[2] += char
    path = _policies(tmp_path, write, "\n".join(lines))
    err = _refused(tmp_path)
    assert (err.path, err.line) == (str(path), 3)
    assert "not allowed" in err.reason


def test_bytes_that_are_not_utf8_are_refused_with_their_line(tmp_path: Path, write: Writer) -> None:
    """Invalid UTF-8 is a typed error at the line of the bad byte."""
    path = _policies(tmp_path, write, AGREEMENT.encode().replace(b"\n", b"\n\xff", 1))
    err = _refused(tmp_path)
    assert (err.path, err.line) == (str(path), 2)
    assert "not UTF-8" in err.reason


@pytest.mark.parametrize("nesting", [DEEP_NESTING, DEEP_BLOCK_NESTING], ids=["flow", "block"])
def test_deep_nesting_is_refused(tmp_path: Path, write: Writer, nesting: str) -> None:
    """Nesting 2,000 deep is refused at the first level past the limit, not a RecursionError after seconds."""
    path = _policies(tmp_path, write, nesting)
    err = _refused(tmp_path)
    assert err.path == str(path)
    assert err.line >= 1
    assert err.reason == "nested more than 64 levels deep"


def test_a_recursive_alias_is_refused(tmp_path: Path, write: Writer) -> None:
    """``loop: &l [*l]`` is refused at the alias."""
    path = _policies(tmp_path, write, AGREEMENT + RECURSIVE_ALIAS)
    err = _refused(tmp_path)
    assert (err.path, err.line) == (str(path), AGREEMENT.count("\n") + 1)
    assert "aliases are not allowed" in err.reason


def test_billion_laughs_is_refused(tmp_path: Path, write: Writer) -> None:
    """An exponential alias expansion is refused at its first alias, before anything is expanded."""
    path = _policies(tmp_path, write, billion_laughs())
    err = _refused(tmp_path)
    assert (err.path, err.line) == (str(path), 2)


def test_a_huge_file_is_refused_without_reading_it(tmp_path: Path, write: Writer) -> None:
    """A 50 MB file is refused at once: at most the limit plus one byte is read."""
    path = _policies(tmp_path, write)
    write_huge(path)
    err = _refused(tmp_path)
    assert err.path == str(path)
    assert "larger than the limit of 1 MiB" in err.reason


@pytest.mark.parametrize("kind", ENDLESS)
def test_an_endless_file_is_refused(tmp_path: Path, write: Writer, kind: str) -> None:
    """A symlink to /dev/zero or /dev/urandom, or a FIFO, is refused by its type instead of read forever."""
    path = _policies(tmp_path, write)
    path.unlink()
    endless(path, kind)
    err = _refused(tmp_path)
    assert err.path == str(path)
    assert "not a regular file" in err.reason


def test_an_invalid_date_is_a_typed_error(tmp_path: Path, write: Writer) -> None:
    """A value YAML recognises but cannot build (February 30th) is a PolicyFileError at its line."""
    path = _policies(tmp_path, write, AGREEMENT.replace("valid_from: 2024-01-01", "valid_from: 2024-02-30"))
    err = _refused(tmp_path)
    assert err.path == str(path)
    assert err.line > 1
    assert "day is out of range" in err.reason


def test_a_version_beyond_32_bits_is_refused_at_its_line(tmp_path: Path, write: Writer) -> None:
    """What a delivery cannot encode (``>I``) is refused when the file is read, not at the first delivery."""
    path = _policies(tmp_path, write, AGREEMENT.replace("version: 1\n", f"version: {2**32}\n"))
    err = _refused(tmp_path)
    assert (err.path, err.line) == (str(path), 3)
    assert err.reason == "version: Input should be less than or equal to 4294967295"


# -- through `exchange policies check` ---------------------------------------------------------------------


def _check(repo: Path, capsys: pytest.CaptureFixture[str], registry: Path | None = None) -> tuple[int, str]:
    registry = registry or repo / "policies" / "registry.yaml"
    code = main(["policies", "check", "--policies", str(repo / "policies"), "--schemas", str(repo / "schemas"),
                 "--registry", str(registry)])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the shipped policies and schemas."""
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    return tmp_path


def test_check_passes_on_the_copy(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The baseline: the shipped policies are clean."""
    assert _check(repo, capsys)[0] == 0


def test_check_reports_a_version_beyond_32_bits(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``version: 4294967296`` is reported as file:line by ``policies check`` (and 2**32 - 1 passes)."""
    path = repo / "policies/agreements/tcb-person-registered-tax.yaml"
    path.write_text(AGREEMENT.replace("version: 1\n", "version: 4294967295\n"), encoding="utf-8")
    assert _check(repo, capsys)[0] == 0
    path.write_text(AGREEMENT.replace("version: 1\n", "version: 4294967296\n"), encoding="utf-8")
    code, out = _check(repo, capsys)
    assert code == 1
    assert out == f"{path}:3: version: Input should be less than or equal to 4294967295\n"


def test_check_prints_file_and_line_for_a_nul(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints ``file:line: reason`` and exits 1; no traceback."""
    path = repo / "policies/agreements/tcb-person-registered-tax.yaml"
    path.write_text(AGREEMENT.replace("\n", "\n\x00", 1), encoding="utf-8")
    code, out = _check(repo, capsys)
    assert code == 1
    assert out.startswith(f"{path}:2: character U+0000 at column 1 is not allowed")


def test_check_blames_the_registry_for_a_malformed_agency_id(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed id is reported at its line in registry.yaml, not as unknown agencies in the agreements."""
    registry = repo / "policies/registry.yaml"
    text = registry.read_text(encoding="utf-8")
    registry.write_text(text.replace("  - id: tax-board\n", "  - id: Tax Board!\n"), encoding="utf-8")
    line = text.split("\n").index("  - id: tax-board") + 1
    start = time.monotonic()
    code, out = _check(repo, capsys)
    assert time.monotonic() - start < 5  # the whole check, with every schema
    assert code == 1
    assert out == f"{registry}:{line}: agency id 'Tax Board!' is not an id (lower-case words joined by '-')\n"


@pytest.mark.parametrize(("content", "reason"), [
    (b"[" * 100_000, "nested more than 64 levels deep"),
    (b'{\n  "doc": "\x00"\n}', "character U+0000 at column 11 is not allowed in a configuration file"),
])
def test_check_reports_a_hostile_schema_at_its_file(
    repo: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    """The record types ``policies check`` reads from the .avsc files are read within the same limits."""
    path = repo / "schemas/tax/income-assessed/0001.avsc"
    path.write_bytes(content)
    start = time.monotonic()
    code, out = _check(repo, capsys)
    assert time.monotonic() - start < 5  # the whole check
    assert code == 1
    line = "" if content.startswith(b"[") else ":2"
    assert f"{path}{line}: {reason}" in out.splitlines()


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n"], ids=["empty", "comment-only"])
def test_check_refuses_an_empty_registry(repo: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    """An empty registry is a problem of registry.yaml, reported first."""
    registry = repo / "policies/registry.yaml"
    registry.write_text(text, encoding="utf-8")
    code, out = _check(repo, capsys)
    assert code == 1
    assert f"{registry}:1: the file is empty" in out.splitlines()


@pytest.mark.parametrize("kind", ENDLESS)
def test_check_refuses_an_endless_registry(repo: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """A registry that is a FIFO or a device is reported, not read forever."""
    registry = repo / "policies/registry.yaml"
    registry.unlink()
    endless(registry, kind)
    code, out = _check(repo, capsys)
    assert code == 1
    assert f"{registry}: cannot read: it is a " in out.splitlines()[0]


# -- fuzzing the shipped files -----------------------------------------------------------------------------

# registry.yaml is fuzzed by the registry tests: the policy loader does not read it.
_FILES = sorted(p.relative_to(REPO / "policies") for p in (REPO / "policies").rglob("*.yaml")
                if p.name != "registry.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_policy_files_load_or_raise_a_policy_file_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Byte flips, control characters, truncation, duplicated lines, deep nesting and aliases in any shipped
    policy file: the loader either loads or raises PolicyFileError (never anything else), within a second."""
    root = tmp_path_factory.getbasetemp() / "fuzz-policies"
    if not root.exists():
        shutil.copytree(REPO / "policies", root)
    relative = data.draw(st.sampled_from(_FILES))
    original = (REPO / "policies" / relative).read_bytes()
    (root / relative).write_bytes(data.draw(mutations(original)))
    try:
        start = time.monotonic()
        scan = scan_policies(root)
        assert all(isinstance(p, PolicyFileError) and p.path.startswith(str(root)) for p in scan.problems)
        if scan.problems:
            with pytest.raises(PolicyFileError):
                load_policies(root)
        else:
            assert load_policies(root) == scan.policy_set
        assert time.monotonic() - start < 2  # two loads of every file
    finally:
        (root / relative).write_bytes(original)
