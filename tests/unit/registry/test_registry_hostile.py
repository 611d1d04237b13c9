"""Hostile registry files: each is a RegistryFileError naming the file and line, within a second."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.cli._app import main
from exchange.crypto.keys import EncryptionKey, Signer
from exchange.policy import PolicyFileError
from exchange.policy.files import read_yaml
from exchange.registry import Registry, RegistryFileError
from exchange.topics import TopicSpecError, discover_inputs
from tests.unit.policy.hostile import (
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
from tests.unit.registry._builders import encryption_entry, signing_entry, small_registry

SHIPPED = REPO / "policies" / "registry.yaml"
TEXT = SHIPPED.read_text(encoding="utf-8")
_TAX_LINE = TEXT.split("\n").index("  - id: tax-board") + 1


def _load_refused(tmp_path: Path, content: str | bytes) -> tuple[Path, RegistryFileError]:
    path = tmp_path / "registry.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path, refused(lambda: Registry.load(path), RegistryFileError)


def test_a_nul_character_is_refused_with_its_line(tmp_path: Path) -> None:
    """A NUL is a RegistryFileError at its line, not PyYAML's untyped ReaderError."""
    path, err = _load_refused(tmp_path, TEXT.replace("  - id: tax-board\n", "  - id: tax-\x00board\n"))
    assert (err.path, err.line) == (str(path), _TAX_LINE)
    assert str(err).startswith(f"{path}:{_TAX_LINE}: character U+0000 at column 13 is not allowed")


@pytest.mark.parametrize("char", ["\x01", "\x1b", "\x7f", "\x85\x00"])
def test_other_non_printable_characters_are_refused(tmp_path: Path, char: str) -> None:
    """Other control characters are refused the same way (NEL alone is a YAML line break, allowed)."""
    path, err = _load_refused(tmp_path, TEXT.replace("  - id: tax-board\n", f"  - id: tax-board{char}\n"))
    assert (err.path, err.line) == (str(path), _TAX_LINE)


def test_bytes_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    """Latin-1 in a legal name is a typed error at its line."""
    text = TEXT.encode().replace(b"legal_name: Tax and Customs Board", b"legal_name: Tax and Cust\xf6ms Board")
    path, err = _load_refused(tmp_path, text)
    assert (err.path, err.line) == (str(path), _TAX_LINE + 1)
    assert "not UTF-8" in str(err)


@pytest.mark.parametrize("nesting", [DEEP_NESTING, DEEP_BLOCK_NESTING], ids=["flow", "block"])
def test_deep_nesting_is_refused(tmp_path: Path, nesting: str) -> None:
    """2,000 levels of nesting: a typed error with a line, not a RecursionError."""
    path, err = _load_refused(tmp_path, nesting)
    assert err.path == str(path)
    assert err.line is not None


def test_a_recursive_alias_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    """``loop: &l [*l]`` used to hang Registry.load (the duplicate-key walk had no visited set)."""
    path, err = _load_refused(tmp_path, TEXT + RECURSIVE_ALIAS)
    assert (err.path, err.line) == (str(path), TEXT.count("\n") + 1)
    assert "aliases are not allowed" in str(err)


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    """The exponential expansion is refused at its first alias."""
    path, err = _load_refused(tmp_path, billion_laughs())
    assert (err.path, err.line) == (str(path), 2)


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    """A 50 MB registry is refused after reading at most 1 MiB + 1 byte."""
    path = write_huge(tmp_path / "registry.yaml")
    err = refused(lambda: Registry.load(path), RegistryFileError)
    assert err.path == str(path)
    assert "larger than the limit of 1 MiB" in str(err)


@pytest.mark.parametrize("kind", ENDLESS)
def test_an_endless_file_is_refused(tmp_path: Path, kind: str) -> None:
    """A symlink to a device, or a FIFO, is refused by its type."""
    path = endless(tmp_path / "registry.yaml", kind)
    err = refused(lambda: Registry.load(path), RegistryFileError)
    assert err.path == str(path)
    assert "not a regular file" in str(err)


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n# here\n"], ids=["empty", "blank", "comments"])
def test_an_empty_registry_is_refused(tmp_path: Path, text: str) -> None:
    """An empty or comment-only registry is refused instead of loading as a registry with no one in it."""
    path, err = _load_refused(tmp_path, text)
    assert (err.path, err.line) == (str(path), 1)
    assert "the registry is empty" in str(err)


def test_a_registry_without_agencies_is_refused(tmp_path: Path) -> None:
    """``agencies: []`` is refused at the line of the key."""
    path, err = _load_refused(tmp_path, "# registry\nagencies: []\n")
    assert (err.path, err.line) == (str(path), 2)
    assert "lists no agencies" in str(err)


def test_a_malformed_agency_id_is_reported_at_its_line(tmp_path: Path) -> None:
    """The registry names its own line for a malformed id."""
    path, err = _load_refused(tmp_path, TEXT.replace("  - id: tax-board\n", "  - id: Tax Board!\n"))
    assert (err.path, err.line) == (str(path), _TAX_LINE)
    assert "agencies[2].id" in str(err)


def test_text_is_bounded_like_files() -> None:
    """Registry.from_yaml applies the same limits to text it is given."""
    err = refused(lambda: Registry.from_yaml("a: " + "x" * (1 << 20), source="big.yaml"), RegistryFileError)
    assert str(err) == "big.yaml: larger than the limit of 1 MiB"


# -- fuzzing the shipped registry --------------------------------------------------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_registry_loads_or_raises_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Every reader of registry.yaml (the trust registry, ``policies check``'s agency list, the topic planner)
    either reads a mutated registry or raises its own typed error, within a second each."""
    root = tmp_path_factory.getbasetemp() / "fuzz-registry"
    if not root.exists():
        shutil.copytree(REPO / "policies", root / "policies")
        (root / "schemas").mkdir()
    path = root / "policies" / "registry.yaml"
    path.write_bytes(data.draw(mutations(SHIPPED.read_bytes())))
    readers = [
        (lambda: Registry.load(path), RegistryFileError),
        (lambda: read_yaml(path), PolicyFileError),
        (lambda: discover_inputs(root / "schemas", path, root / "nowhere"), TopicSpecError),
    ]
    for read, error in readers:
        start = time.monotonic()
        try:
            read()
        except error as exc:
            message = str(exc)
        else:
            message = str(path)
        assert str(path) in message
        assert time.monotonic() - start < 1.0


def _keyed_registry() -> bytes:
    document = small_registry()
    for index, agency in enumerate(document["agencies"]):
        agency["signing_keys"] = [signing_entry(Signer.generate(agency["id"]))]
        if index == 2:
            agency["encryption_key"] = encryption_entry(EncryptionKey.generate(agency["id"]))
    return yaml.safe_dump(document, sort_keys=False).encode()


KEYED = _keyed_registry()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated=mutations(KEYED))
def test_mutated_keyed_registry_loads_or_raises_a_registry_file_error(mutated: bytes) -> None:
    """With keys in it, a mutated registry also reaches key decoding: still only RegistryFileError."""
    assert Registry.from_yaml(KEYED.decode(), source="r.yaml").agencies
    start = time.monotonic()
    with contextlib.suppress(RegistryFileError):
        Registry.from_yaml(mutated.decode("utf-8", "replace"), source="r.yaml")
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(("content", "line", "reason"), [
    (TEXT + RECURSIVE_ALIAS, TEXT.count("\n") + 1, "YAML aliases are not allowed (*l): write the value out"),
    ("# nothing here\n", 1, "the registry is empty: it must list the agencies (agencies: [...])"),
    (TEXT.replace("  - id: tax-board\n", "  - id: tax\x00board\n"), _TAX_LINE,
     "character U+0000 at column 12 is not allowed in a configuration file"),
], ids=["alias", "empty", "nul"])
def test_cli_reading_the_registry_prints_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, line: int, reason: str
) -> None:
    """``exchange keys demo`` loads the registry: a hostile one is ``file:line: reason`` and exit 2."""
    path = tmp_path / "registry.yaml"
    path.write_text(content, encoding="utf-8")
    start = time.monotonic()
    code = main(["keys", "demo", "--keystore", str(tmp_path / "ks"), "--registry", str(path),
                 "--out", str(tmp_path / "out.yaml")])
    assert time.monotonic() - start < 1.0
    assert code == 2
    assert capsys.readouterr().err == f"exchange keys: error: {path}:{line}: {reason}\n"
