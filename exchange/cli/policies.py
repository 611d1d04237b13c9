"""``exchange policies check|explain``: validate agreements and restrictions, and show what a recipient gets.

The loaders for the inputs the policy core takes as plain data live here, at the edge: record types are read
straight from the ``.avsc`` files (fields, classification, key field and kind, newest revision) and agency ids
from the registry YAML, so checking policies needs neither the schema catalogue nor the trust registry code.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from exchange.errors import ConfigError
from exchange.policy import (
    CompiledAgreement,
    ConsentDecision,
    EventFacts,
    PolicyError,
    PolicyFileError,
    PolicyScan,
    TypeInfo,
    compile_policies,
    decide,
    find_issues,
    scan_policies,
)
from exchange.policy.checks import check_types
from exchange.policy.files import read_yaml
from exchange.policy.models import Slug
from exchange.safeparse import SafeParseError, parse_json, read_text
from exchange.settings import get_settings

_EXCHANGE_DOMAIN = "exchange"  # the exchange's own types (decision, consent, quarantine) are never shared
_REVISION = re.compile(r"^\d{4}\.avsc$")
_AGENCY_ID: TypeAdapter[str] = TypeAdapter(Slug)  # the form of an agreement's recipient


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("policies", help="check agreements and restrictions, explain what a recipient gets")
    sub = parser.add_subparsers(dest="policies_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="report every problem in the policies as FILE:LINE: REASON")
    _add_paths(check)
    check.set_defaults(func=_check)
    explain = sub.add_parser("explain", help="print what a recipient receives of a record type, and why")
    _add_paths(explain)
    explain.add_argument("--recipient", required=True, help="agency id (or 'public' for open data)")
    explain.add_argument("--type", required=True, dest="record_type", help="record type, e.g. tax.income-assessed")
    explain.add_argument("--at", default=None, help="ISO time to evaluate validity windows at (default: now)")
    explain.set_defaults(func=_explain)


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policies", type=Path, default=None, help="policy directory (default: policies)")
    parser.add_argument("--schemas", type=Path, default=None, help="schema directory (default: schemas)")
    parser.add_argument("--registry", type=Path, default=None,
                        help="registry file (default: policies/registry.yaml)")


@dataclass(frozen=True)
class _Inputs:
    scan: PolicyScan
    types: dict[str, TypeInfo]
    agencies: frozenset[str]
    problems: list[PolicyFileError]


def _load(args: argparse.Namespace) -> _Inputs:
    paths = get_settings()
    policies: Path = args.policies or paths.policies
    schemas: Path = args.schemas or paths.schemas
    registry_path: Path = args.registry or paths.registry
    for path, what in ((policies, "policy directory"), (schemas, "schema directory")):
        if not path.is_dir():
            raise ConfigError(f"{what} {path} not found")
    if not registry_path.exists():  # anything else that is not a readable regular file is a problem in it
        raise ConfigError(f"registry {registry_path} not found")
    scan = scan_policies(policies)
    problems = list(scan.problems)
    types = _read_types(schemas, problems)
    before = len(problems)
    agencies = _read_agencies(registry_path, problems)
    registry_broken = len(problems) > before
    # With a problem in the registry, "unknown agency" in the agreements would blame the wrong files.
    problems.extend(scan.locate(issue) for issue in find_issues(scan.policy_set, types, agencies)
                    if not (registry_broken and issue.code == "UNKNOWN_AGENCY"))
    return _Inputs(scan, types, agencies, problems)


def _read_types(root: Path, problems: list[PolicyFileError]) -> dict[str, TypeInfo]:
    """One TypeInfo per ``<domain>/<event>/`` folder, from its newest ``NNNN.avsc``."""
    types: dict[str, TypeInfo] = {}
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir() and p.parent.name != _EXCHANGE_DOMAIN):
        revisions = sorted(p for p in folder.iterdir() if _REVISION.match(p.name))
        if revisions:
            record_type = f"{folder.parent.name}.{folder.name}"
            try:
                types[record_type] = _type_info(record_type, revisions[-1])
            except PolicyFileError as exc:
                problems.append(exc)
    return types


def _type_info(record_type: str, path: Path) -> TypeInfo:
    try:
        text = read_text(path)
        schema = parse_json(text, str(path))
    except SafeParseError as exc:
        raise PolicyFileError(str(path), exc.line or 0, exc.reason) from None
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        raise PolicyFileError(str(path), 1, "not an Avro record schema")
    fields: dict[str, str] = {}
    for entry in schema["fields"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        classification = entry.get("classification") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(classification, str):
            raise PolicyFileError(str(path), _line_of(text, name), "every field needs a name and a classification")
        fields[name] = classification
    info = TypeInfo(record_type, fields, str(schema.get("key_field")), str(schema.get("key_kind")))
    try:
        check_types({record_type: info})
    except PolicyError as exc:
        raise PolicyFileError(str(path), 1, str(exc)) from exc
    return info


def _line_of(text: str, name: object) -> int:
    # JSON keeps no positions after parsing; the field's `"name": ...` is where a reader would look.
    if isinstance(name, str):
        found = re.search(r'"name"\s*:\s*' + re.escape(json.dumps(name)), text)
        if found:
            return text.count("\n", 0, found.start()) + 1
    return 1


def _read_agencies(path: Path, problems: list[PolicyFileError]) -> frozenset[str]:
    # A problem in the registry is reported at its line in the registry, not as unknown agencies in the
    # agreements that name them.
    try:
        data, source = read_yaml(path)
    except PolicyFileError as exc:
        problems.append(exc)
        return frozenset()
    agencies = data.get("agencies") if isinstance(data, dict) else None
    if not isinstance(agencies, list) or not agencies:
        problems.append(source.error(("agencies",), "the registry needs a non-empty list 'agencies'"))
        return frozenset()
    ids = set()
    for index, agency in enumerate(agencies):
        agency_id = agency.get("id") if isinstance(agency, dict) else None
        if agency_id is None:
            problems.append(source.error(("agencies", index), "an agency without an id"))
        else:
            try:
                ids.add(_AGENCY_ID.validate_python(agency_id))
            except ValidationError:
                problems.append(source.error(("agencies", index, "id"), f"agency id {agency_id!r} is not an id "
                                                                         "(lower-case words joined by '-')"))
    return frozenset(ids)


def _check(args: argparse.Namespace) -> int:
    inputs = _load(args)
    for problem in sorted(inputs.problems, key=lambda p: (p.path, p.line, p.reason)):
        print(problem)
    if inputs.problems:
        print(f"policies check: {len(inputs.problems)} problem(s)", file=sys.stderr)
        return 1
    policy_set = inputs.scan.policy_set
    print(f"ok: {len(policy_set.agreements)} agreement(s), {len(policy_set.restrictions)} restriction(s), "
          f"{len(inputs.types)} record type(s), {len(inputs.agencies)} agencies")
    return 0


class _AssumeConsent:
    """Explain shows what a consent-based agreement releases once the subject has consented."""

    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        return ConsentDecision(granted=True, reason=None, reference=None)


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--at {text!r} is not an ISO time") from exc
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _when(at: datetime) -> str:
    at = at.astimezone(UTC)
    if (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0):
        return at.date().isoformat()
    return at.isoformat().replace("+00:00", "Z")


def _explain(args: argparse.Namespace) -> int:
    inputs = _load(args)
    if inputs.problems:
        for problem in inputs.problems:
            print(problem, file=sys.stderr)
        raise ConfigError("the policies have problems; run 'exchange policies check'")
    at = _parse_at(args.at)
    # No registry in the bundle: explain shows no bundle id, since the router's bundle holds the trust registry's
    # canonical form, which this command does not build (it reads only agency ids).
    index = compile_policies(inputs.scan.policy_set, inputs.types, inputs.agencies, {})
    compiled = [c for c in index.agreements_for(args.record_type) if c.agreement.recipient == args.recipient]
    print(f"{args.recipient} <- {args.record_type} at {_when(at)}")
    if not compiled:
        print("no agreement: denied")
        return 1
    entry = index.entries[args.record_type]
    # An event on which no restriction condition holds: present values that equal nothing.
    facts = EventFacts("explain", args.record_type, "explain", at, "explain-subject-pseudonym",
                       {field: object() for _, field, _, _ in entry.conditions})
    decisions = {(d.agreement_id, d.agreement_version): d for d in decide(index, facts, _AssumeConsent())}
    in_force = 0
    for agreement in compiled:
        decision = decisions[(agreement.agreement.id, agreement.agreement.version)]
        in_force += decision.permitted
        _print_agreement(agreement, entry.info.key_field, decision.permitted, decision.reasons)
    if not in_force:
        print(f"\nno agreement in force at {_when(at)}: denied")
        return 1
    print(f"\n{in_force} of {len(compiled)} agreement(s) in force")
    return 0


def _print_agreement(compiled: CompiledAgreement, key_field: str, permitted: bool, reasons: tuple[str, ...]) -> None:
    agreement = compiled.agreement
    status = "in force" if permitted else "denied (" + ", ".join(reasons) + ")"
    until = "open-ended" if agreement.valid_until is None else _when(agreement.valid_until)
    basis = agreement.legal_basis.statute or "consent of the subject (released only while it is ACTIVE)"
    rows = [
        ("purpose", agreement.purpose),
        ("legal basis", basis),
        ("validity", f"{_when(agreement.valid_from)} to {until}"),
        ("fields", ", ".join(compiled.fields)),
    ]
    for restriction in compiled.restrictions:
        withheld = ", ".join(name for name in compiled.fields if name in restriction.fields)
        rule = restriction.restriction
        rows.append(("withheld", f"{withheld} when {rule.condition.describe()} (restriction {rule.id}, "
                                 f"reason {rule.reason})"))
    pseudonym = f"yes: {key_field} is replaced by a recipient-specific pseudonym"
    rows += [
        ("pseudonymised", pseudonym if agreement.pseudonymise else "no"),
        ("delivery", agreement.topic),
        ("retention", agreement.retention),
    ]
    print(f"\nagreement {agreement.id} v{agreement.version}: {status}")
    for label, value in rows:
        print(f"  {label:<14}{value}")
