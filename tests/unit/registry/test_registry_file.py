"""Loading the registry file: the shipped file, and every problem reported with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exchange.crypto.keys import Signer, encode_public_key
from exchange.registry import Registry, RegistryFileError
from exchange.registry.models import Identity, RegistryDocument
from tests.unit.registry._builders import T0, signing_entry, small_registry

SHIPPED = Path(__file__).resolve().parents[3] / "policies" / "registry.yaml"

# The contract's agencies and their authoritative record types.
CONTRACT_AUTHORITY = {
    "population-registry": {
        "population.person-registered",
        "population.address-changed",
        "population.death-registered",
    },
    "business-register": {"business.company-registered"},
    "tax-board": {"tax.income-assessed"},
    "health-insurance": {"health.coverage-changed"},
    "vehicle-registry": {"vehicle.vehicle-registered"},
    "social-insurance": {"social.benefit-granted"},
    "statistics-office": set(),
    "municipal-services": set(),
    "police-board": set(),
}


def test_shipped_registry_lists_the_contract_identities_without_keys() -> None:
    """policies/registry.yaml loads, lists every contract agency and service with its types, and ships no keys."""
    registry = Registry.load(SHIPPED)
    assert {a.id: set(a.authoritative_for) for a in registry.agencies} == CONTRACT_AUTHORITY
    assert {a.code for a in registry.agencies} == {"PRC", "BRG", "TCB", "HIF", "TRA", "SIB", "STO", "AOM", "PBB"}
    assert [s.id for s in registry.services] == ["exchange-router", "exchange-consent", "exchange-audit"]
    identities: list[Identity] = [*registry.agencies, *registry.services]
    for identity in identities:
        assert identity.signing_keys == ()
        assert identity.encryption_key is None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _load_error(path: Path) -> RegistryFileError:
    with pytest.raises(RegistryFileError) as err:
        Registry.load(path)
    return err.value


HEAD = """\
agencies:
  - id: population-registry
    legal_name: Population Register Centre
    code: PRC
    authoritative_for: [population.address-changed]
    signing_keys: []
"""


def test_invalid_datetime_is_reported_with_file_and_line(tmp_path: Path) -> None:
    """A bad valid_from is reported as <file>:<line>: agencies[i].signing_keys[j].valid_from: <message>."""
    signer = Signer.generate("tax-board")
    path = _write(
        tmp_path,
        HEAD
        + f"""\
  - id: tax-board
    legal_name: Tax and Customs Board
    code: TCB
    authoritative_for: [tax.income-assessed]
    signing_keys:
      - key_id: '{signer.key_id}'
        public_key: {signer.verifier_key()}
        valid_from: the first of January
""",
    )
    err = _load_error(path)
    assert (err.path, err.line) == (str(path), 14)
    assert str(err).startswith(f"{path}:14: agencies[1].signing_keys[0].valid_from: ")
    assert "datetime" in str(err)


def test_missing_field_points_at_its_mapping(tmp_path: Path) -> None:
    """A missing required field is reported on the line where its entry starts."""
    path = _write(tmp_path, HEAD + "  - id: tax-board\n    code: TCB\n")
    err = _load_error(path)
    assert err.line == 7
    assert "agencies[1].legal_name" in str(err)


def test_unknown_field_points_at_its_line(tmp_path: Path) -> None:
    """A misspelt field is refused on its own line."""
    path = _write(tmp_path, HEAD.replace("    signing_keys: []\n", "    signing_key: []\n"))
    err = _load_error(path)
    assert err.line == 6
    assert "agencies[0].signing_key" in str(err)


def test_naive_time_is_refused(tmp_path: Path) -> None:
    """A key time without a time zone is refused: validity comparisons need one."""
    signer = Signer.generate("population-registry")
    text = HEAD.replace(
        "signing_keys: []",
        f"signing_keys:\n      - {{key_id: '{signer.key_id}', public_key: {signer.verifier_key()}, "
        "valid_from: 2025-01-01T00:00:00}",
    )
    err = _load_error(_write(tmp_path, text))
    assert err.line == 7
    assert "timezone" in str(err)


def test_unquoted_numeric_key_id_says_how_to_fix_it(tmp_path: Path) -> None:
    """A key id YAML reads as a number is refused with a hint to quote it."""
    text = HEAD.replace(
        "signing_keys: []",
        "signing_keys:\n      - key_id: 12345678\n        public_key: x\n        valid_from: 2025-01-01T00:00:00Z",
    )
    err = _load_error(_write(tmp_path, text))
    assert err.line == 7
    assert "quote" in str(err)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    """A YAML syntax error is reported with its line."""
    err = _load_error(_write(tmp_path, HEAD + "  - id: [unclosed\n"))
    assert err.line is not None
    assert err.line >= 7
    assert "invalid YAML" in str(err)


def test_duplicate_yaml_key_is_reported(tmp_path: Path) -> None:
    """A key repeated in one mapping (which YAML would silently overwrite) is an error on its line."""
    err = _load_error(_write(tmp_path, HEAD + "    code: XYZ\n"))
    assert err.line == 7
    assert "duplicate key" in str(err)


def test_duplicate_agency_ids_are_refused(tmp_path: Path) -> None:
    """Two entries with one id are refused at the second one's line."""
    second = HEAD.split("\n", 1)[1].replace("population.address-changed", "population.death-registered")
    err = _load_error(_write(tmp_path, HEAD + second))
    assert err.line == 7
    assert "duplicate identity id 'population-registry'" in str(err)


def test_two_authoritative_agencies_for_one_type_are_refused(tmp_path: Path) -> None:
    """Once-only needs one source: a second agency authoritative for the same type is refused at its line."""
    text = HEAD + (
        "  - id: tax-board\n    legal_name: Tax\n    code: TCB\n"
        "    authoritative_for:\n      - tax.income-assessed\n      - population.address-changed\n"
    )
    err = _load_error(_write(tmp_path, text))
    assert err.line == 12
    assert "agencies[1].authoritative_for[1]" in str(err)
    assert "'population-registry'" in str(err)


def test_key_id_that_does_not_match_the_public_key_is_refused(tmp_path: Path) -> None:
    """A key id that is not the C2SP id of the identity and public key is refused at the public key's line."""
    a, b = Signer.generate("population-registry"), Signer.generate("population-registry")
    text = HEAD.replace(
        "signing_keys: []",
        f"signing_keys:\n      - key_id: '{a.key_id}'\n        public_key: {b.verifier_key()}\n"
        "        valid_from: 2025-01-01T00:00:00Z",
    )
    err = _load_error(_write(tmp_path, text))
    assert err.line == 8
    assert "signing_keys[0].public_key" in str(err)


def test_verifier_key_of_another_identity_is_refused() -> None:
    """A verifier key string naming another identity cannot be registered as this identity's key."""
    doc = small_registry()
    doc["agencies"][1]["signing_keys"] = [signing_entry(Signer.generate("population-registry"))]
    with pytest.raises(RegistryFileError, match="not 'tax-board'"):
        Registry.from_yaml(yaml.safe_dump(doc))


def test_raw_base64_public_key_is_accepted() -> None:
    """A signing key may be given as base64 of its 32 raw bytes instead of a verifier key string."""
    signer = Signer.generate("tax-board")
    doc = small_registry()
    doc["agencies"][1]["signing_keys"] = [signing_entry(signer) | {"public_key": encode_public_key(signer.public_key)}]
    registry = Registry.from_yaml(yaml.safe_dump(doc))
    assert registry.verifier("tax-board", signer.key_id, T0) == signer.verifier()


def test_valid_until_before_valid_from_is_refused(tmp_path: Path) -> None:
    """A key whose validity ends before it starts is refused at valid_until's line."""
    signer = Signer.generate("population-registry")
    text = HEAD.replace(
        "signing_keys: []",
        f"signing_keys:\n      - key_id: '{signer.key_id}'\n        public_key: {signer.verifier_key()}\n"
        "        valid_from: 2025-01-01T00:00:00Z\n        valid_until: 2024-01-01T00:00:00Z",
    )
    err = _load_error(_write(tmp_path, text))
    assert err.line == 10
    assert "valid_until" in str(err)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    """Several problems in one file are all listed, each with its own line."""
    text = HEAD.replace("code: PRC", "code: prc") + "  - id: Tax Board\n    legal_name: x\n    code: TCB\n"
    err = _load_error(_write(tmp_path, text))
    assert sorted(p.line for p in err.problems if p.line is not None) == [4, 7]


def test_missing_file_is_a_registry_error(tmp_path: Path) -> None:
    """A registry file that cannot be read raises RegistryFileError naming it."""
    err = _load_error(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err)


def test_document_with_problems_cannot_build_a_registry() -> None:
    """Building a Registry from a document directly runs the same checks across entries."""
    doc = small_registry()
    doc["agencies"][1]["authoritative_for"] = ["population.address-changed"]
    with pytest.raises(RegistryFileError, match="once-only"):
        Registry(RegistryDocument.model_validate(doc))
