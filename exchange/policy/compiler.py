"""Compile a policy set into the index the engine decides with: per record type, every agreement with its
decisions already built for each combination of restrictions and each state of its validity window.

Decisions depend on an event only through which restriction conditions hold, where its time falls in each
agreement's window, and (for consent-based agreements) the subject's consent. The first two have few values,
so every outcome is built here once and the per-event path is a couple of comparisons and a dict lookup.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from exchange.policy import reasons
from exchange.policy.bundle import PolicyBundle, make_bundle
from exchange.policy.checks import find_issues
from exchange.policy.consent import ConsentRef
from exchange.policy.decision import RECIPIENT_PSEUDONYM, Decision, Outcome
from exchange.policy.errors import PolicyCompileError, PolicyConflictError, PolicyError
from exchange.policy.models import Agreement, PolicySet, Restriction
from exchange.policy.typeinfo import TypeInfo

__all__ = [
    "END_OF_TIME",
    "MAX_RESTRICTIONS_PER_AGREEMENT",
    "CompiledAgreement",
    "CompiledRestriction",
    "PolicyIndex",
    "TypeEntry",
    "compile_policies",
    "make_decision",
]

END_OF_TIME = datetime.max.replace(tzinfo=UTC)
"""Stands for an open ``valid_until`` where a datetime is needed (``CompiledAgreement.valid_until``); an open
window has no end at all, so the engine never compares an event's time with it (``CompiledAgreement.bounded``)."""

MAX_RESTRICTIONS_PER_AGREEMENT = 12
"""Decisions are prebuilt for every subset of the restrictions touching an agreement: 2**12 at most."""

# Where an event's time falls in an agreement's window, as the reason a decision then records.
_CURRENT: tuple[str, ...] = ()
_NOT_YET_VALID = (reasons.AGREEMENT_NOT_YET_VALID,)
_EXPIRED = (reasons.AGREEMENT_EXPIRED,)


@dataclass(frozen=True, slots=True)
class CompiledRestriction:
    """A restriction of one type; ``bit`` is its place in the type's mask of conditions that hold."""

    restriction: Restriction
    bit: int
    fields: frozenset[str]
    except_recipients: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledAgreement:
    """An agreement ready for the per-event path.

    ``current[fired & mask]`` is the decision for an event inside the window on which the restrictions in
    ``fired`` (a bit mask) hold; ``not_yet_valid`` and ``expired`` likewise outside it. For a consent-based
    agreement a PERMIT in ``current`` still waits for the consent lookup, and ``no_consent[fired & mask]`` is the
    decision when the subject has given none; ``released[fired & mask]`` are the agreed fields left after those
    restrictions (the key field included even when pseudonymising), which a consent's field scope narrows.

    The window is ``[valid_from, valid_until)`` when ``bounded``; an open-ended agreement (no ``valid_until``,
    ``bounded`` False) admits every time from ``valid_from`` on, ``valid_until`` then holding
    :data:`END_OF_TIME` only for readers that need a datetime.
    """

    agreement: Agreement
    fields: tuple[str, ...]
    key_field: str
    valid_from: datetime
    valid_until: datetime
    bounded: bool
    consent_based: bool
    mask: int
    restrictions: tuple[CompiledRestriction, ...]
    current: Mapping[int, Decision]
    not_yet_valid: Mapping[int, Decision]
    expired: Mapping[int, Decision]
    no_consent: Mapping[int, Decision]
    released: Mapping[int, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class TypeEntry:
    """Everything about one record type: its info, its restrictions' conditions and its agreements.

    ``conditions`` are ``(bit, field, expected value, expected type)``.
    """

    info: TypeInfo
    conditions: tuple[tuple[int, str, object, type], ...]
    restrictions: tuple[CompiledRestriction, ...]
    agreements: tuple[CompiledAgreement, ...]


@dataclass(frozen=True, slots=True)
class PolicyIndex:
    """Compiled policies: the engine's input. Immutable; build a new one when policies change."""

    bundle: PolicyBundle
    entries: Mapping[str, TypeEntry]

    @property
    def bundle_id(self) -> str:
        """The id of the bundle every decision from this index names."""
        return self.bundle.id

    def agreements_for(self, record_type: str) -> tuple[CompiledAgreement, ...]:
        """The compiled agreements on ``record_type`` (none for an unknown type)."""
        entry = self.entries.get(record_type)
        return () if entry is None else entry.agreements


def compile_policies(
    policy_set: PolicySet,
    types: Mapping[str, TypeInfo],
    agencies: Collection[str],
    registry: Mapping[str, Any],
) -> PolicyIndex:
    """Check ``policy_set`` against ``types`` and ``agencies`` and compile it, with its bundle over ``registry``.

    Raises :class:`PolicyConflictError` if two agreements conflict, :class:`PolicyCompileError` for any other
    cross-reference problem (all problems are listed in ``.issues``).
    """
    issues = find_issues(policy_set, types, agencies)
    if issues:
        if any(issue.code == "CONFLICT" for issue in issues):
            raise PolicyConflictError(issues)
        raise PolicyCompileError(issues)
    bundle = make_bundle(policy_set, registry)
    entries: dict[str, TypeEntry] = {}
    for record_type, info in types.items():
        agreements = sorted(
            (a for a in policy_set.agreements if a.record_type == record_type), key=lambda a: (a.id, a.version)
        )
        if not agreements:
            continue
        restrictions = tuple(
            _compile_restriction(r, 1 << bit)
            for bit, r in enumerate(sorted((r for r in policy_set.restrictions if r.record_type == record_type),
                                           key=lambda r: r.id))
        )
        compiled = tuple(_compile_agreement(a, info, restrictions, bundle.id) for a in agreements)
        conditions = tuple(
            (r.bit, r.restriction.condition.field, r.restriction.condition.equals, type(r.restriction.condition.equals))
            for r in restrictions
        )
        entries[record_type] = TypeEntry(info, conditions, restrictions, compiled)
    return PolicyIndex(bundle, MappingProxyType(entries))


def _compile_restriction(restriction: Restriction, bit: int) -> CompiledRestriction:
    return CompiledRestriction(
        restriction, bit, frozenset(restriction.fields), frozenset(restriction.except_recipients)
    )


def _submasks(mask: int) -> Iterator[int]:
    sub = mask
    while True:
        yield sub
        if sub == 0:
            return
        sub = (sub - 1) & mask


def _compile_agreement(
    agreement: Agreement, info: TypeInfo, restrictions: tuple[CompiledRestriction, ...], bundle_id: str
) -> CompiledAgreement:
    agreed = frozenset(agreement.fields)
    fields = tuple(name for name in info.fields if name in agreed)
    touching = tuple(
        r for r in restrictions if agreement.recipient not in r.except_recipients and r.fields & agreed
    )
    if len(touching) > MAX_RESTRICTIONS_PER_AGREEMENT:
        raise PolicyError(
            f"agreement {agreement.id} v{agreement.version}: {len(touching)} restrictions apply to it, "
            f"at most {MAX_RESTRICTIONS_PER_AGREEMENT} are supported"
        )
    mask = 0
    for restriction in touching:
        mask |= restriction.bit
    key_field = info.key_field
    current, not_yet_valid, expired = (
        {
            fired: _decision(agreement, fields, touching, key_field, fired=fired, window=window, bundle_id=bundle_id)
            for fired in _submasks(mask)
        }
        for window in (_CURRENT, _NOT_YET_VALID, _EXPIRED)
    )
    return CompiledAgreement(
        agreement=agreement,
        fields=fields,
        key_field=key_field,
        valid_from=agreement.valid_from,
        valid_until=END_OF_TIME if agreement.valid_until is None else agreement.valid_until,
        bounded=agreement.valid_until is not None,
        consent_based=agreement.legal_basis.is_consent,
        mask=mask,
        restrictions=touching,
        current=MappingProxyType(current),
        not_yet_valid=MappingProxyType(not_yet_valid),
        expired=MappingProxyType(expired),
        no_consent=MappingProxyType({fired: _no_consent(d, fields) for fired, d in current.items()}),
        released=MappingProxyType({fired: _released(fields, touching, fired) for fired in current}),
    )


def _released(fields: tuple[str, ...], touching: tuple[CompiledRestriction, ...], fired: int) -> tuple[str, ...]:
    withheld: set[str] = set()
    for restriction in touching:
        if restriction.bit & fired:
            withheld |= restriction.fields
    return tuple(name for name in fields if name not in withheld)


def _decision(
    agreement: Agreement,
    fields: tuple[str, ...],
    touching: tuple[CompiledRestriction, ...],
    key_field: str,
    *,
    fired: int,
    window: tuple[str, ...],
    bundle_id: str,
) -> Decision:
    codes: list[str] = []
    # Restrictions first: deny overrides permit, and their reasons lead the list.
    for restriction in touching:
        if restriction.bit & fired:
            code = reasons.restricted_field(restriction.restriction.reason)
            if code not in codes:
                codes.append(code)
    released = _released(fields, touching, fired)
    if not released:
        codes.append(reasons.ALL_FIELDS_WITHHELD)
    codes.extend(window)
    return make_decision(
        agreement, fields, () if window else released, key_field=key_field,
        codes=tuple(codes), consent_ref=None, bundle_id=bundle_id,
    )


def make_decision(
    agreement: Agreement,
    fields: tuple[str, ...],
    released: tuple[str, ...],
    *,
    key_field: str,
    codes: tuple[str, ...],
    consent_ref: ConsentRef | None,
    bundle_id: str,
) -> Decision:
    """The decision under ``agreement`` releasing ``released`` of its schema-ordered ``fields``: PERMIT when
    anything is released, DENY when nothing is.

    A pseudonymising PERMIT lists :data:`RECIPIENT_PSEUDONYM` first and never ``key_field``, which it counts as
    withheld: the delivery gives the recipient its own pseudonym of the subject, not the key field's value.
    """
    kept = frozenset(released)
    if agreement.pseudonymise and released:
        kept -= {key_field}
        released = (RECIPIENT_PSEUDONYM, *(name for name in released if name != key_field))
    return Decision(
        outcome=Outcome.PERMIT if released else Outcome.DENY,
        recipient=agreement.recipient,
        agreement_id=agreement.id,
        agreement_version=agreement.version,
        purpose=agreement.purpose,
        legal_basis=agreement.legal_basis.describe(),
        consent_ref=consent_ref,
        fields=released,
        withheld=tuple(name for name in fields if name not in kept),
        reasons=codes,
        pseudonymise=agreement.pseudonymise,
        topic=agreement.topic,
        bundle_id=bundle_id,
    )


def _no_consent(decision: Decision, fields: tuple[str, ...]) -> Decision:
    # The most common answer on a consent-based agreement, built once here rather than per event.
    if decision.outcome is Outcome.DENY:
        return decision
    return decision._replace(
        outcome=Outcome.DENY, fields=(), withheld=fields, reasons=(*decision.reasons, reasons.NO_CONSENT)
    )
