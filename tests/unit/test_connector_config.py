"""Connector configs and offsets: every bad config is a typed error at its file and line, within a second; an
offset is a small canonical JSON object and anything else is refused with the reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.kinds import KINDS, kind
from connectors.sdk import ConnectorConfig, ConnectorConfigError, OffsetError, load_config
from connectors.sdk.api import offset_bytes, parse_offset
from exchange.cli._app import main
from exchange.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("name: imports\nkind: test\n", None, None),
    ("name: imports\nkind: test\nmax_batch: 0\n", 3, "max_batch"),
    ("name: imports\nkind: test\nmax_bacth: 10\n", 3, "max_bacth: Extra inputs are not permitted"),
    ("name: Imports!\nkind: test\n", 1, "name: String should match pattern"),
    ("kind: test\n", 1, "name: Field required"),
    ("name: imports\nkind: test\nname: again\n", 3, "duplicate key 'name'"),
    ("name: imports\nkind: other\n", 2, "kind is 'other', this connector is 'test'"),
    ("name: [unclosed\n", 2, "invalid YAML"),
    ("- a list\n", 1, "must be a mapping"),
    ("", 1, "must be a mapping"),
    ("name: imports\nkind: test\nerrors_tolerance: some\n", 3, "errors_tolerance"),
])
def test_a_config_is_read_or_refused_at_its_line(tmp_path: Path, text: str, line: int | None,
                                                 reason: str | None) -> None:
    path = _write(tmp_path, text)
    if line is None:
        assert load_config(path, ConnectorConfig, kind="test").name == "imports"
        return
    with pytest.raises(ConnectorConfigError) as caught:
        load_config(path, ConnectorConfig, kind="test")
    assert caught.value.path == str(path)
    assert caught.value.line == line
    if reason is not None:
        assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}:{line}: ")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_a_config_or_a_typed_error_within_a_second(tmp_path_factory: pytest.TempPathFactory,
                                                                   data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "connector.yaml"
    path.write_bytes(b"name: imports\nkind: test\n" + data)
    started = time.monotonic()
    line = 0
    try:
        load_config(path, ConnectorConfig, kind="test")
    except ConnectorConfigError as exc:  # the only error it may raise: anything else fails the test
        line = exc.line
    assert line >= 0
    assert time.monotonic() - started < 1.0


def test_offsets_are_small_canonical_json_objects() -> None:
    assert offset_bytes({"line": 7, "file": "a.csv"}) == b'{"file":"a.csv","line":7}'
    assert parse_offset(b'{"file":"a.csv","line":7}') == {"file": "a.csv", "line": 7}
    for bad in ({}, {"x": 1.5}, {"x": None}, {"x": True}, {"x": "y" * 5000}):
        with pytest.raises(OffsetError):
            offset_bytes(bad)  # type: ignore[arg-type]  # bad values on purpose
    for stored in (b"", b"{", b"[]", b"\xff", b'{"line": 7}', b'{"x":1.5}', b'{"a":{"b":1}}'):
        with pytest.raises(OffsetError):
            parse_offset(stored)


def test_an_unknown_kind_names_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="known: feed, files, http-sink"):
        kind("ftp")
    assert main(["connector", "run", "ftp", "--config", str(_write(tmp_path, "name: a\nkind: ftp\n"))]) == 2
    assert "unknown connector kind 'ftp'" in capsys.readouterr().err
    assert main(["connector", "kinds"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in KINDS)
