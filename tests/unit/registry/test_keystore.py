"""The keystore: file modes, refusals, rotation, and the demo keystore."""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from exchange.crypto.note import open_note, sign_note
from exchange.registry import Keystore, KeystoreError, Registry, make_demo_keystore
from tests.unit.registry._builders import T0, small_registry

SHIPPED = Path(__file__).resolve().parents[3] / "policies" / "registry.yaml"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_identity_writes_private_files_0600_in_a_0700_directory(tmp_path: Path) -> None:
    """Key files are 0600, the public entry 0644, a new keystore directory 0700."""
    keystore = Keystore(tmp_path / "ks")
    keystore.create_identity("tax-board", valid_from=T0)
    assert _mode(tmp_path / "ks") == 0o700
    assert _mode(tmp_path / "ks" / "tax-board.ed25519.key") == 0o600
    assert _mode(tmp_path / "ks" / "tax-board.x25519.key") == 0o600
    assert _mode(tmp_path / "ks" / "tax-board.public.yaml") == 0o644


def test_private_files_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    """A permissive umask does not widen the mode of a new key file."""
    old = os.umask(0)
    try:
        Keystore(tmp_path).create_identity("tax-board", valid_from=T0)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "tax-board.ed25519.key") == 0o600


def test_created_keys_sign_and_match_the_public_entry(tmp_path: Path) -> None:
    """The signer read back signs notes that verify with the returned entry; the encryption key matches too."""
    keystore = Keystore(tmp_path)
    entry = keystore.create_identity("tax-board", valid_from=T0)
    signer = keystore.signer("tax-board")
    assert signer.key_id == entry.signing_key.key_id
    assert signer.verifier_key() == entry.signing_key.public_key
    doc = small_registry()
    doc["agencies"][1]["signing_keys"] = [entry.signing_key.model_dump(mode="json", exclude_none=True)]
    doc["agencies"][1]["encryption_key"] = entry.encryption_key.model_dump(mode="json", exclude_none=True)
    registry = Registry.from_yaml(yaml.safe_dump(doc))
    open_note(sign_note("hello\n", [signer]), registry.note_verifiers(T0))
    enc = keystore.encryption_private_key("tax-board")
    assert enc.public_key.public_bytes_raw() == registry.encryption_key("tax-board").public_bytes_raw()
    assert keystore.public_entry("tax-board") == entry
    assert keystore.identities() == ["tax-board"]


def test_public_entry_snippet_is_registry_yaml(tmp_path: Path) -> None:
    """The printed snippet parses as YAML holding exactly the signing_keys and encryption_key entries."""
    entry = Keystore(tmp_path).create_identity("tax-board", valid_from=T0)
    snippet = yaml.safe_load(entry.to_yaml())
    assert snippet["signing_keys"][0]["key_id"] == entry.signing_key.key_id
    assert snippet["encryption_key"]["key_id"] == entry.encryption_key.key_id
    assert snippet["signing_keys"][0]["valid_from"] == "2025-01-01T00:00:00Z"


def test_existing_keys_are_never_overwritten(tmp_path: Path) -> None:
    """Creating keys for an identity that has them is refused and leaves the old key in place."""
    keystore = Keystore(tmp_path)
    keystore.create_identity("tax-board", valid_from=T0)
    before = (tmp_path / "tax-board.ed25519.key").read_bytes()
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        keystore.create_identity("tax-board")
    assert (tmp_path / "tax-board.ed25519.key").read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    """A private key file group or others can access is refused with the chmod fix, and no key bytes."""
    keystore = Keystore(tmp_path)
    keystore.create_identity("tax-board", valid_from=T0)
    secret = (tmp_path / "tax-board.ed25519.key").read_text().strip()
    (tmp_path / "tax-board.ed25519.key").chmod(mode)
    with pytest.raises(KeystoreError, match="chmod 600") as err:
        keystore.signer("tax-board")
    assert secret.split("+", 4)[4] not in str(err.value)
    (tmp_path / "tax-board.x25519.key").chmod(mode)
    with pytest.raises(KeystoreError, match="chmod 600"):
        keystore.encryption_private_key("tax-board")


def test_missing_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    """Asking for an identity without keys names the command that makes them."""
    with pytest.raises(KeystoreError, match="exchange keys new tax-board"):
        Keystore(tmp_path).signer("tax-board")
    with pytest.raises(KeystoreError, match="exchange keys new tax-board"):
        Keystore(tmp_path).encryption_private_key("tax-board")


def test_corrupt_or_misplaced_key_files_are_refused(tmp_path: Path) -> None:
    """A key file that is not a key, or holds another identity's key, is refused without echoing it."""
    keystore = Keystore(tmp_path)
    keystore.create_identity("tax-board", valid_from=T0)
    keystore.create_identity("police-board", valid_from=T0)
    os.replace(tmp_path / "police-board.ed25519.key", tmp_path / "tax-board.ed25519.key")
    with pytest.raises(KeystoreError, match="'police-board', not 'tax-board'"):
        keystore.signer("tax-board")
    (tmp_path / "tax-board.x25519.key").write_text("PRIVATE+X25519+KEY+tax-board+00000000+c2VjcmV0")
    with pytest.raises(KeystoreError, match="not an encryption key") as err:
        keystore.encryption_private_key("tax-board")
    assert "c2VjcmV0" not in str(err.value)


@pytest.mark.parametrize("bad", ["../escape", "Tax-Board", "a/b", "", "tax board"])
def test_identity_ids_must_be_slugs(tmp_path: Path, bad: str) -> None:
    """Only slugs become file names, so no identity id can point outside the keystore."""
    with pytest.raises(KeystoreError, match="not a slug"):
        Keystore(tmp_path).create_identity(bad)
    assert list(tmp_path.iterdir()) == []


def test_naive_valid_from_is_refused(tmp_path: Path) -> None:
    """A valid_from without a time zone is refused before any file is written."""
    with pytest.raises(KeystoreError, match="time zone"):
        Keystore(tmp_path / "ks").create_identity("tax-board", valid_from=datetime(2025, 1, 1))
    assert not (tmp_path / "ks").exists()


def test_rotation_retires_the_old_keys(tmp_path: Path) -> None:
    """Rotating makes new keys and keeps the old ones, mode 0600, under retired/ named by key id."""
    keystore = Keystore(tmp_path)
    old = keystore.create_identity("tax-board", valid_from=T0)
    new = keystore.rotate_identity("tax-board", valid_from=datetime(2025, 6, 1, tzinfo=UTC))
    assert new.signing_key.key_id != old.signing_key.key_id
    assert keystore.signer("tax-board").key_id == new.signing_key.key_id
    retired = tmp_path / "retired" / f"tax-board.{old.signing_key.key_id}.ed25519.key"
    assert _mode(retired) == 0o600
    assert _mode(tmp_path / "retired") == 0o700
    assert keystore.identities() == ["tax-board"]


def test_tampered_public_entry_is_detected(tmp_path: Path) -> None:
    """A public entry that no longer matches the private keys beside it is refused."""
    keystore = Keystore(tmp_path)
    keystore.create_identity("tax-board", valid_from=T0)
    keystore.create_identity("police-board", valid_from=T0)
    os.replace(tmp_path / "police-board.public.yaml", tmp_path / "tax-board.public.yaml")
    with pytest.raises(KeystoreError, match="does not describe"):
        keystore.public_entry("tax-board")


def test_keystore_repr_holds_no_key_material(tmp_path: Path) -> None:
    """The keystore and the keys it returns print without private bytes."""
    keystore = Keystore(tmp_path)
    keystore.create_identity("tax-board", valid_from=T0)
    secret_b64 = (tmp_path / "tax-board.ed25519.key").read_text().strip().split("+", 4)[4]
    seed = base64.b64decode(secret_b64)[1:]
    signer, enc = keystore.signer("tax-board"), keystore.encryption_private_key("tax-board")
    for shown in (repr(keystore), repr(signer), str(signer), repr(enc), str(enc)):
        assert secret_b64 not in shown
        assert seed.hex() not in shown


def test_demo_keystore_fills_every_identity(tmp_path: Path) -> None:
    """The demo gives every agency and service of the shipped registry keys and writes a loadable registry."""
    out = tmp_path / "demo" / "registry.yaml"
    result = make_demo_keystore(tmp_path / "ks", SHIPPED, out, valid_from=T0)
    shipped = Registry.load(SHIPPED)
    ids = [a.id for a in shipped.agencies] + [s.id for s in shipped.services]
    assert list(result.created) == ids
    assert result.reused == ()
    registry = Registry.load(out)
    keystore = Keystore(tmp_path / "ks")
    for identity in ids:
        signer = keystore.signer(identity)
        registry.verification_key(identity, signer.key_id, T0)
    for agency in registry.agencies:
        enc = keystore.encryption_private_key(agency.id)
        assert registry.encryption_key(agency.id).public_bytes_raw() == enc.public_key.public_bytes_raw()
    assert all(s.encryption_key is None for s in registry.services)
    assert registry.canonical()["agencies"][0]["authoritative_for"] == ["business.company-registered"]


def test_demo_keystore_is_idempotent(tmp_path: Path) -> None:
    """A second run reuses every key and writes the same registry, leaving the key files untouched."""
    out = tmp_path / "registry.yaml"
    make_demo_keystore(tmp_path / "ks", SHIPPED, out, valid_from=T0)
    first_registry = out.read_bytes()
    first_keys = {p.name: p.read_bytes() for p in (tmp_path / "ks").iterdir()}
    again = make_demo_keystore(tmp_path / "ks", SHIPPED, out)
    assert again.created == ()
    assert len(again.reused) == 12
    assert out.read_bytes() == first_registry
    assert {p.name: p.read_bytes() for p in (tmp_path / "ks").iterdir()} == first_keys


def test_demo_keystore_reuses_keys_made_earlier(tmp_path: Path) -> None:
    """An identity that already has keys keeps them; the others get new ones."""
    existing = Keystore(tmp_path / "ks").create_identity("tax-board", valid_from=T0)
    result = make_demo_keystore(tmp_path / "ks", SHIPPED, tmp_path / "out.yaml", valid_from=T0)
    assert result.reused == ("tax-board",)
    assert "tax-board" not in result.created
    tax = Registry.load(tmp_path / "out.yaml").agency("tax-board")
    assert [k.key_id for k in tax.signing_keys] == [existing.signing_key.key_id]
