"""Reading policy files: every problem is reported with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.policy import PolicyFileError, find_issues, load_policies, scan_policies
from exchange.policy.files import parse_yaml

from .support import AGENCIES, TYPES, Writer

AGREEMENT = """\
id: tcb-address
version: 1
recipient: tax-board
record_type: population.address-changed
purpose: tax-assessment
legal_basis:
  statute: "Taxation Act §24"
fields:
  - person_id
  - street_address
valid_from: 2024-01-01
retention: "7 years"
"""

RESTRICTIONS = """\
restrictions:
  - id: protected-address
    record_type: population.address-changed
    condition:
      field: address_protected
      equals: true
    fields:
      - street_address
    except_recipients:
      - police-board
    reason: protected-address
"""


def _problems(tmp_path: Path) -> list[tuple[str, int, str]]:
    return [(Path(p.path).name, p.line, p.reason) for p in scan_policies(tmp_path).problems]


def test_valid_files_load(tmp_path: Path, write: Writer) -> None:
    """An agreement file and a restrictions file load into a policy set."""
    write("agreements/tcb-address.yaml", AGREEMENT)
    write("restrictions.yaml", RESTRICTIONS)
    loaded = load_policies(tmp_path)
    assert [a.id for a in loaded.agreements] == ["tcb-address"]
    assert [r.id for r in loaded.restrictions] == ["protected-address"]


@pytest.mark.parametrize(
    "case",
    [
        ("  - street_address\n", "  - '*'\n", 8, "fields: '*' is not allowed"),
        ("  - street_address\n", "  - street address\n", 10, "fields.1: 'street address' is not a field name"),
        ("version: 1\n", "version: one\n", 2, "version: Input should be a valid integer"),
        ('  statute: "Taxation Act §24"\n', "  consent: false\n", 7, "legal_basis.consent"),
        ("retention: \"7 years\"\n", "retention: \"7 years\"\npseudonymize: true\n", 13, "pseudonymize: Extra inputs"),
        ("retention: \"7 years\"\n", "", 1, "retention: Field required"),
        ("valid_from: 2024-01-01\n", "valid_from: 2024-01-01\nvalid_until: 2023-01-01\n", 1, "valid_until must be"),
    ],
)
def test_validation_errors_carry_file_and_line(tmp_path: Path, write: Writer, case: tuple[str, str, int, str]) -> None:
    """A pydantic error is mapped back to the line of the offending key or item."""
    old, new, line, reason = case
    write("agreements/tcb-address.yaml", AGREEMENT.replace(old, new))
    write("restrictions.yaml", RESTRICTIONS)
    [(name, got_line, got_reason)] = _problems(tmp_path)
    assert (name, got_line) == ("tcb-address.yaml", line)
    assert reason in got_reason


def test_restriction_errors_point_into_the_list(tmp_path: Path, write: Writer) -> None:
    """A bad item in restrictions.yaml is reported at its own line."""
    write("agreements/tcb-address.yaml", AGREEMENT)
    write("restrictions.yaml", RESTRICTIONS.replace("      equals: true\n", "      equals: [true]\n"))
    [(name, line, reason)] = _problems(tmp_path)
    assert (name, line) == ("restrictions.yaml", 6)
    assert reason.startswith("condition.equals")


def test_yaml_syntax_errors_and_duplicate_keys_carry_lines(tmp_path: Path, write: Writer) -> None:
    """Broken YAML and a key given twice (which YAML would silently resolve) are errors with lines."""
    write("agreements/a.yaml", AGREEMENT.replace("fields:\n", "fields: [\n"))
    write("agreements/b.yaml", AGREEMENT + "version: 2\n")
    write("restrictions.yaml", RESTRICTIONS)
    problems = _problems(tmp_path)
    assert problems[0][0] == "a.yaml"
    assert problems[0][2].startswith("invalid YAML")
    assert problems[0][1] > 0
    assert problems[1] == ("b.yaml", 13, "duplicate key 'version'")


def test_the_same_agreement_twice_is_reported_at_the_second_file(tmp_path: Path, write: Writer) -> None:
    """A repeated (id, version) points at the second definition and names the first."""
    first = write("agreements/a.yaml", AGREEMENT)
    write("agreements/b.yaml", AGREEMENT)
    write("restrictions.yaml", RESTRICTIONS)
    assert _problems(tmp_path) == [("b.yaml", 1, f"agreement tcb-address v1 is already defined at {first}:1")]


def test_missing_restrictions_file_is_a_problem(tmp_path: Path, write: Writer) -> None:
    """Without restrictions.yaml, restrictions would silently vanish: that is an error."""
    write("agreements/tcb-address.yaml", AGREEMENT)
    [(name, _, reason)] = _problems(tmp_path)
    assert name == "restrictions.yaml"
    assert "cannot read" in reason
    with pytest.raises(PolicyFileError):
        load_policies(tmp_path)


def test_cross_reference_issues_are_located_in_their_file(tmp_path: Path, write: Writer) -> None:
    """An unknown field found by the checks is reported at its line in the agreement's file."""
    path = write("agreements/tcb-address.yaml", AGREEMENT.replace("  - street_address\n", "  - shoe_size\n"))
    write("restrictions.yaml", RESTRICTIONS.replace("      - police-board\n", "      - secret-service\n"))
    scan = scan_policies(tmp_path)
    located = [str(scan.locate(issue)) for issue in find_issues(scan.policy_set, TYPES, AGENCIES)]
    assert located == [
        f"{path}:10: population.address-changed has no field 'shoe_size'",
        f"{tmp_path / 'restrictions.yaml'}:10: unknown agency 'secret-service'",
    ]


def test_parse_yaml_maps_nested_paths_to_lines() -> None:
    """Every key and list item gets its line; unknown paths fall back to the nearest enclosing node."""
    _, source = parse_yaml(RESTRICTIONS, "r.yaml")
    assert source.line_of(("restrictions", 0, "condition", "equals")) == 6
    assert source.line_of(("restrictions", 0, "fields", 0)) == 8
    assert source.line_of(("restrictions", 0, "nothing", "here")) == 2
    assert source.line_of(()) == 1


def test_empty_file_is_a_problem() -> None:
    """An empty policy file is reported rather than read as nothing."""
    with pytest.raises(PolicyFileError, match="empty"):
        parse_yaml("", "x.yaml")
