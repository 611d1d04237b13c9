"""``exchange schemas check|list``: validate the schema tree and its revision chains; list the record types."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from exchange.errors import ConfigError
from exchange.safeparse import SafeParseError, read_yaml
from exchange.schemas import Catalogue, check_tree
from exchange.settings import get_settings

_DEFAULT_REGISTRY = Path("policies/registry.yaml")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("schemas", help="check and list the record schemas")
    actions = parser.add_subparsers(dest="schemas_action", metavar="ACTION", required=True)
    root_help = "schema tree (default: $EXCHANGE_SCHEMAS, else ./schemas)"

    check = actions.add_parser("check", help="validate every schema file and every revision chain")
    check.add_argument("--root", type=Path, default=None, help=root_help)
    check.set_defaults(func=_check)

    listing = actions.add_parser("list", help="list record types, revisions, fingerprints and owners")
    listing.add_argument("--root", type=Path, default=None, help=root_help)
    listing.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    listing.add_argument("--registry", type=Path, default=_DEFAULT_REGISTRY,
                         help=f"trust registry naming the authoritative agencies (default: {_DEFAULT_REGISTRY})")
    listing.set_defaults(func=_list)


def _root(args: argparse.Namespace) -> Path:
    if args.root is not None:
        return Path(args.root)
    return get_settings().schemas


def _check(args: argparse.Namespace) -> int:
    root = _root(args)
    problems = check_tree(root)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    catalogue = Catalogue.load(root)
    revisions = len(catalogue.schemas())
    print(f"ok: {len(catalogue.types())} record types, {revisions} revisions in {root}: valid and compatible")
    return 0


def _list(args: argparse.Namespace) -> int:
    catalogue = Catalogue.load(_root(args))
    owners = _owners(Path(args.registry))
    rows: list[dict[str, Any]] = []
    for type_name in catalogue.types():
        current = catalogue.current(type_name)
        rows.append({
            "type": type_name,
            "revisions": current.revision,
            "fingerprint": current.fingerprint.hex(),
            "key_field": current.key_field,
            "key_kind": current.key_kind.value,
            "compatibility": current.compatibility.value,
            "owner": ",".join(owners.get(type_name, [])) or "-",
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ["type", "revisions", "fingerprint", "key_kind", "compatibility", "owner"]
    table = [[c.upper().replace("_", " ") for c in columns]] + [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0


def _owners(registry: Path) -> dict[str, list[str]]:
    """Record type → ids of the agencies the registry names authoritative for it (empty if no registry)."""
    if not registry.exists():
        return {}
    try:
        document = read_yaml(registry)
    except SafeParseError as exc:
        raise ConfigError(str(exc)) from None
    data = document.data
    agencies = data.get("agencies") if isinstance(data, dict) else None
    if not isinstance(agencies, list):
        line = document.line_of(("agencies",)) or 1
        raise ConfigError(f"{registry}:{line}: expected a mapping with an 'agencies' list")
    owners: dict[str, list[str]] = {}
    for index, agency in enumerate(agencies):
        if not isinstance(agency, dict) or not isinstance(agency.get("id"), str):
            raise ConfigError(f"{registry}:{document.line_of(('agencies', index))}: every agency needs an 'id'")
        types = agency.get("authoritative_for") or []
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            where = document.line_of(("agencies", index, "authoritative_for"))
            raise ConfigError(f"{registry}:{where}: 'authoritative_for' of {agency['id']} must be a list of "
                              "record types")
        for type_name in types:
            owners.setdefault(type_name, []).append(agency["id"])
    return owners
