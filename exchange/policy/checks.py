"""Cross-reference checks: do the agreements and restrictions fit the record types and agencies they name?

:func:`find_issues` lists every problem instead of stopping at the first, so ``exchange policies check`` can
report them all, each pointing into the document (``loc``) that the file loader maps to a line.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from exchange.policy.errors import PolicyError
from exchange.policy.models import Agreement, PolicySet, Restriction
from exchange.policy.typeinfo import CLASSIFICATIONS, TypeInfo

__all__ = ["IssueCode", "ItemKind", "PolicyIssue", "check_types", "find_issues", "windows_overlap"]

ItemKind = Literal["agreement", "restriction"]
IssueCode = Literal[
    "DUPLICATE_ID",
    "UNKNOWN_TYPE",
    "UNKNOWN_FIELD",
    "UNKNOWN_AGENCY",
    "OPEN_DATA_NOT_PUBLIC",
    "NO_SUBJECT",
    "CONFLICT",
]


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem with one agreement (``version`` set) or restriction (``version`` None).

    ``loc`` is the path inside that item's document (``("fields", 2)``), as pydantic reports locations.
    """

    kind: ItemKind
    item_id: str
    version: int | None
    loc: tuple[str | int, ...]
    code: IssueCode
    message: str

    def __str__(self) -> str:
        version = "" if self.version is None else f" v{self.version}"
        return f"{self.kind} {self.item_id}{version}: {self.message}"


def check_types(types: Mapping[str, TypeInfo]) -> None:
    """Return None if every :class:`TypeInfo` is well formed; raise :class:`PolicyError` naming the first flaw.

    These come from the schema catalogue, not from policy authors, so a flaw is the caller's bug.
    """
    for name, info in types.items():
        if info.record_type != name:
            raise PolicyError(f"type info for {name!r} describes {info.record_type!r}")
        if not info.fields:
            raise PolicyError(f"type {name}: no fields")
        for field, classification in info.fields.items():
            if classification not in CLASSIFICATIONS:
                raise PolicyError(f"type {name}: field {field!r} has unknown classification {classification!r}")
        if info.key_field not in info.fields:
            raise PolicyError(f"type {name}: key field {info.key_field!r} is not a field")
        if info.key_kind not in ("person", "record"):
            raise PolicyError(f"type {name}: unknown key kind {info.key_kind!r}")


def windows_overlap(first: Agreement, second: Agreement) -> bool:
    """True when the validity windows ``[valid_from, valid_until)`` of two agreements share an instant."""
    first_ends_after = first.valid_until is None or second.valid_from < first.valid_until
    second_ends_after = second.valid_until is None or first.valid_from < second.valid_until
    return first_ends_after and second_ends_after


def find_issues(
    policy_set: PolicySet, types: Mapping[str, TypeInfo], agencies: Collection[str]
) -> tuple[PolicyIssue, ...]:
    """Every cross-reference problem of ``policy_set`` against ``types`` and the known ``agencies``, in a stable
    order (agreements by id and version, then restrictions by id)."""
    check_types(types)
    known = frozenset(agencies)
    agreements = sorted(policy_set.agreements, key=lambda a: (a.id, a.version))
    restrictions = sorted(policy_set.restrictions, key=lambda r: r.id)
    issues: list[PolicyIssue] = []
    for agreement in agreements:
        issues.extend(_agreement_issues(agreement, types, known))
    issues.extend(_duplicate_agreements(agreements))
    issues.extend(_conflicts(agreements))
    seen: set[str] = set()
    for restriction in restrictions:
        if restriction.id in seen:
            issues.append(_on(restriction, (), "DUPLICATE_ID", f"restriction id {restriction.id!r} is used twice"))
        seen.add(restriction.id)
        issues.extend(_restriction_issues(restriction, types, known))
    return tuple(issues)


def _on(item: Agreement | Restriction, loc: tuple[str | int, ...], code: IssueCode, message: str) -> PolicyIssue:
    if isinstance(item, Agreement):
        return PolicyIssue("agreement", item.id, item.version, loc, code, message)
    return PolicyIssue("restriction", item.id, None, loc, code, message)


def _unknown_fields(
    item: Agreement | Restriction, loc: str, names: tuple[str, ...], info: TypeInfo
) -> Iterator[PolicyIssue]:
    for index, name in enumerate(names):
        if name not in info.fields:
            yield _on(item, (loc, index), "UNKNOWN_FIELD", f"{info.record_type} has no field {name!r}")


def _agreement_issues(agreement: Agreement, types: Mapping[str, TypeInfo], known: frozenset[str]) -> Iterator[
    PolicyIssue
]:
    if agreement.delivery == "agency" and agreement.recipient not in known:
        yield _on(agreement, ("recipient",), "UNKNOWN_AGENCY", f"unknown agency {agreement.recipient!r}")
    info = types.get(agreement.record_type)
    if info is None:
        yield _on(agreement, ("record_type",), "UNKNOWN_TYPE", f"unknown record type {agreement.record_type!r}")
        return
    yield from _unknown_fields(agreement, "fields", agreement.fields, info)
    if agreement.delivery == "opendata" and not info.all_public:
        private = ", ".join(name for name, c in info.fields.items() if c != "public")
        yield _on(
            agreement, ("delivery",), "OPEN_DATA_NOT_PUBLIC",
            f"open data of {info.record_type} is not allowed: not every field is public ({private})",
        )
    if info.key_kind != "person":
        if agreement.legal_basis.is_consent:
            yield _on(
                agreement, ("legal_basis",), "NO_SUBJECT",
                f"{info.record_type} records have no person who could consent",
            )
        if agreement.pseudonymise:
            yield _on(
                agreement, ("pseudonymise",), "NO_SUBJECT",
                f"{info.record_type} records have no person id to pseudonymise",
            )


def _duplicate_agreements(agreements: list[Agreement]) -> Iterator[PolicyIssue]:
    seen: set[tuple[str, int]] = set()
    for agreement in agreements:
        key = (agreement.id, agreement.version)
        if key in seen:
            yield _on(agreement, ("version",), "DUPLICATE_ID", f"agreement {agreement.id} v{agreement.version} twice")
        seen.add(key)


def _conflicts(agreements: list[Agreement]) -> Iterator[PolicyIssue]:
    groups: dict[tuple[str, str, str], list[Agreement]] = {}
    for agreement in agreements:
        groups.setdefault((agreement.recipient, agreement.record_type, agreement.purpose), []).append(agreement)
    for group in groups.values():
        for first, second in combinations(group, 2):
            if windows_overlap(first, second):
                yield _on(
                    second, ("valid_from",), "CONFLICT",
                    f"overlaps agreement {first.id} v{first.version}: same recipient {second.recipient}, type "
                    f"{second.record_type} and purpose {second.purpose} in overlapping validity windows",
                )


def _restriction_issues(
    restriction: Restriction, types: Mapping[str, TypeInfo], known: frozenset[str]
) -> Iterator[PolicyIssue]:
    for index, recipient in enumerate(restriction.except_recipients):
        if recipient not in known:
            yield _on(restriction, ("except_recipients", index), "UNKNOWN_AGENCY", f"unknown agency {recipient!r}")
    info = types.get(restriction.record_type)
    if info is None:
        yield _on(
            restriction, ("record_type",), "UNKNOWN_TYPE", f"unknown record type {restriction.record_type!r}"
        )
        return
    yield from _unknown_fields(restriction, "fields", restriction.fields, info)
    if restriction.condition.field not in info.fields:
        yield _on(
            restriction, ("condition", "field"), "UNKNOWN_FIELD",
            f"{info.record_type} has no field {restriction.condition.field!r}",
        )
