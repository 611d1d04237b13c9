"""``exchange policies check|explain`` on small fixture repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.cli._app import main

from .support import Writer

_ADDRESS = [
    ("person_id", "personal"), ("street_address", "personal"), ("postal_code", "personal"),
    ("municipality_code", "public"), ("moved_on", "public"), ("address_protected", "personal"),
]
_COMPANY = [("company_id", "public"), ("name", "public")]

_TAX = """\
id: tcb-address
version: 1
recipient: tax-board
record_type: population.address-changed
purpose: tax-assessment
legal_basis:
  statute: "Taxation Act §24"
fields: [person_id, street_address, postal_code, municipality_code, dwelling_type]
valid_from: 2024-01-01
retention: "7 years"
"""

_RESTRICTIONS = """\
restrictions:
  - id: protected-address
    record_type: population.address-changed
    condition: {field: address_protected, equals: true}
    fields: [street_address, postal_code]
    except_recipients: [police-board]
    reason: protected-address
"""


def _schema(name: str, fields: list[tuple[str, str]], key: str, kind: str) -> str:
    document = {
        "type": "record", "name": name, "key_field": key, "key_kind": kind,
        "fields": [{"name": n, "type": "string", "doc": n, "classification": c} for n, c in fields],
    }
    return json.dumps(document, indent=2)


@pytest.fixture
def repo(tmp_path: Path, write: Writer) -> Path:
    """A repository with two revisions of address-changed, one public type, a registry and one agreement."""
    write("schemas/population/address-changed/0001.avsc", _schema("AddressChanged", _ADDRESS, "person_id", "person"))
    write("schemas/population/address-changed/0002.avsc",
          _schema("AddressChanged", [*_ADDRESS, ("dwelling_type", "personal")], "person_id", "person"))
    write("schemas/business/company-registered/0001.avsc", _schema("Company", _COMPANY, "company_id", "record"))
    write("schemas/exchange/decision/0001.avsc", '{"type": "record", "name": "Decision", "fields": []}')
    write("policies/registry.yaml", "agencies:\n  - id: tax-board\n  - id: police-board\n    name: Police\n")
    write("policies/agreements/tcb-address.yaml", _TAX)
    write("policies/restrictions.yaml", _RESTRICTIONS)
    return tmp_path


def _run(repo: Path, *argv: str) -> int:
    paths = ["--policies", str(repo / "policies"), "--schemas", str(repo / "schemas"),
             "--registry", str(repo / "policies/registry.yaml")]
    return main(["policies", *argv, *paths])


def test_check_passes_on_consistent_policies(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Consistent policies: exit 0 and a summary (the newest schema revision supplies dwelling_type)."""
    assert _run(repo, "check") == 0
    assert capsys.readouterr().out == "ok: 1 agreement(s), 1 restriction(s), 2 record type(s), 2 agencies\n"


def test_check_reports_problems_with_file_and_line(
    repo: Path, write: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown fields and agencies and conflicts are reported as FILE:LINE: REASON, exit 1."""
    tax = write("policies/agreements/tcb-address.yaml", _TAX.replace("dwelling_type", "shoe_size"))
    other = write("policies/agreements/tcb-other.yaml",
                  _TAX.replace("id: tcb-address", "id: tcb-other").replace("tax-board", "customs-board"))
    third = write("policies/agreements/tcb-third.yaml", _TAX.replace("id: tcb-address", "id: tcb-third"))
    assert _run(repo, "check") == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{tax}:8: population.address-changed has no field 'shoe_size'",
        f"{other}:3: unknown agency 'customs-board'",
        f"{third}:9: overlaps agreement tcb-address v1: same recipient tax-board, type population.address-changed "
        "and purpose tax-assessment in overlapping validity windows",
    ]


def test_check_reports_open_data_of_a_personal_type(
    repo: Path, write: Writer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Open data of a type with personal fields is a problem at the delivery line."""
    path = write("policies/agreements/open.yaml", _TAX.replace("id: tcb-address", "id: open").replace(
        "recipient: tax-board", "recipient: public") + "delivery: opendata\n")
    assert _run(repo, "check") == 1
    assert capsys.readouterr().out.startswith(f"{path}:11: open data of population.address-changed is not allowed")


def test_check_reports_broken_schemas(repo: Path, write: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """A schema that is not JSON, or lacks a classification, is reported at its line."""
    bad = write("schemas/business/company-registered/0002.avsc", '{\n  "type": "record",\n  "fields": [,]\n}')
    assert _run(repo, "check") == 1
    assert capsys.readouterr().out.startswith(f"{bad}:3: invalid JSON")
    write("schemas/business/company-registered/0002.avsc",
          '{"type": "record", "key_field": "company_id", "key_kind": "record",\n "fields": [{"name": "company_id"}]}')
    assert _run(repo, "check") == 1
    assert f"{bad}:2: every field needs a name and a classification" in capsys.readouterr().out


def test_missing_inputs_are_usage_errors(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing registry or schema directory cannot be checked: exit 2."""
    (repo / "policies/registry.yaml").unlink()
    assert _run(repo, "check") == 2
    assert "registry" in capsys.readouterr().err


def test_paths_come_from_the_environment(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXCHANGE_POLICIES, EXCHANGE_SCHEMAS and EXCHANGE_REGISTRY replace the defaults."""
    monkeypatch.chdir(repo / "schemas")
    monkeypatch.setenv("EXCHANGE_POLICIES", str(repo / "policies"))
    monkeypatch.setenv("EXCHANGE_SCHEMAS", str(repo / "schemas"))
    monkeypatch.setenv("EXCHANGE_REGISTRY", str(repo / "policies/registry.yaml"))
    assert main(["policies", "check"]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_explain_shows_fields_restrictions_and_delivery(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """explain prints each agreement's purpose, basis, window, fields, conditional withholding and topic."""
    code = _run(repo, "explain", "--recipient", "tax-board", "--type", "population.address-changed",
                "--at", "2025-06-01T12:00:00Z")
    out = capsys.readouterr().out
    assert code == 0
    assert "agreement tcb-address v1: in force" in out
    assert "  legal basis   Taxation Act §24" in out
    assert "  validity      2024-01-01 to open-ended" in out
    assert "  fields        person_id, street_address, postal_code, municipality_code, dwelling_type" in out
    assert ("  withheld      street_address, postal_code when address_protected = true "
            "(restriction protected-address, reason protected-address)") in out
    assert "  delivery      delivery.tax-board" in out
    assert "  pseudonymised no" in out
    assert out.rstrip().endswith("1 of 1 agreement(s) in force")


def test_explain_without_agreement_denies(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recipient without any agreement on the type gets nothing: exit 1, 'no agreement: denied'."""
    assert _run(repo, "explain", "--recipient", "police-board", "--type", "population.address-changed") == 1
    assert capsys.readouterr().out.rstrip().endswith("no agreement: denied")


def test_explain_before_the_window_denies(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """At a time outside every window the agreement is listed as denied and the command exits 1."""
    code = _run(repo, "explain", "--recipient", "tax-board", "--type", "population.address-changed",
                "--at", "2023-06-01")
    out = capsys.readouterr().out
    assert code == 1
    assert "agreement tcb-address v1: denied (AGREEMENT_NOT_YET_VALID)" in out
    assert out.rstrip().endswith("no agreement in force at 2023-06-01: denied")


def test_explain_refuses_a_bad_time(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--at must be an ISO time."""
    assert _run(repo, "explain", "--recipient", "tax-board", "--type", "population.address-changed",
                "--at", "yesterday") == 2
    assert "not an ISO time" in capsys.readouterr().err


def test_explain_refuses_inconsistent_policies(repo: Path, write: Writer, capsys: pytest.CaptureFixture[str]) -> None:
    """explain works only on policies that pass check."""
    write("policies/agreements/tcb-address.yaml", _TAX.replace("dwelling_type", "shoe_size"))
    assert _run(repo, "explain", "--recipient", "tax-board", "--type", "population.address-changed") == 2
    assert "run 'exchange policies check'" in capsys.readouterr().err
