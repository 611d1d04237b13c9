"""`exchange keys new | show | demo`: what they write and print."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from exchange.cli._app import main
from exchange.registry import Keystore, Registry
from exchange.settings import get_settings

SHIPPED = Path(__file__).resolve().parents[3] / "policies" / "registry.yaml"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_keys_new_writes_keys_and_prints_the_snippet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys new` writes the key pair and prints YAML with the signing and encryption entries."""
    code = main(["keys", "new", "tax-board", "--keystore", str(tmp_path), "--valid-from", "2025-01-01T00:00:00Z"])
    assert code == 0
    out = capsys.readouterr().out
    snippet = yaml.safe_load(out)
    signer = Keystore(tmp_path).signer("tax-board")
    assert snippet["signing_keys"][0]["key_id"] == signer.key_id
    assert snippet["signing_keys"][0]["public_key"] == signer.verifier_key()
    assert snippet["encryption_key"]["valid_from"] == "2025-01-01T00:00:00Z"
    assert "PRIVATE" not in out


def test_keys_new_uses_the_keystore_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --keystore the keys go to EXCHANGE_KEYSTORE."""
    monkeypatch.setenv("EXCHANGE_KEYSTORE", str(tmp_path / "from-env"))
    assert main(["keys", "new", "police-board"]) == 0
    assert Keystore(tmp_path / "from-env").identities() == ["police-board"]
    capsys.readouterr()


def test_keys_new_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second `keys new` for the same identity fails with exit code 2 and says how to rotate."""
    assert main(["keys", "new", "tax-board", "--keystore", str(tmp_path)]) == 0
    assert main(["keys", "new", "tax-board", "--keystore", str(tmp_path)]) == 2
    assert "--rotate" in capsys.readouterr().err


def test_keys_new_rotate_replaces_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys new --rotate` prints a new key id and retires the old key."""
    main(["keys", "new", "tax-board", "--keystore", str(tmp_path)])
    old = yaml.safe_load(capsys.readouterr().out)["signing_keys"][0]["key_id"]
    assert main(["keys", "new", "tax-board", "--keystore", str(tmp_path), "--rotate"]) == 0
    new = yaml.safe_load(capsys.readouterr().out)["signing_keys"][0]["key_id"]
    assert new != old
    assert (tmp_path / "retired" / f"tax-board.{old}.ed25519.key").exists()


def test_keys_new_rejects_a_time_without_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--valid-from without a time zone is a usage error."""
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "new", "tax-board", "--keystore", str(tmp_path), "--valid-from", "2025-01-01"])
    assert exit_info.value.code == 2
    assert "time zone" in capsys.readouterr().err


def test_keys_show_prints_the_public_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys show` prints the same entry `keys new` printed."""
    main(["keys", "new", "tax-board", "--keystore", str(tmp_path)])
    printed = capsys.readouterr().out
    assert main(["keys", "show", "tax-board", "--keystore", str(tmp_path)]) == 0
    assert capsys.readouterr().out == printed


def test_keys_show_refuses_an_open_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys show` fails (exit 2) when a private key file is readable by others."""
    main(["keys", "new", "tax-board", "--keystore", str(tmp_path)])
    (tmp_path / "tax-board.ed25519.key").chmod(0o644)
    assert main(["keys", "show", "tax-board", "--keystore", str(tmp_path)]) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_keys_demo_writes_a_registry_with_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys demo` reports what it created, then what it reused, and writes a loadable registry."""
    out = tmp_path / "registry.yaml"
    args = ["keys", "demo", "--keystore", str(tmp_path / "ks"), "--registry", str(SHIPPED), "--out", str(out)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "created keys of population-registry" in first
    assert "created keys of exchange-audit" in first
    assert all(a.signing_keys for a in Registry.load(out).agencies)
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "created" not in second
    assert "reused keys of exchange-audit" in second
