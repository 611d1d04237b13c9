"""The decision engine: for one event, one decision per agreement on its type. Pure: no I/O, no clock.

For every agreement, in this order: restrictions (deny overrides permit: restricted fields are withheld and the
reason recorded), the validity window, the legal basis (a consent-based agreement asks the consent view), then
PERMIT with the fields left, or DENY with the reasons. Expired and not-yet-valid agreements decide too, so the
access log shows the denial. A type without agreements yields no decision at all, hence never a PERMIT.
The window is ``[valid_from, valid_until)``; an agreement without ``valid_until`` has no end. A pseudonymising
PERMIT names the recipient pseudonym (:data:`~exchange.policy.decision.RECIPIENT_PSEUDONYM`) among the released
fields in place of the key field, as the delivery does.
"""

from __future__ import annotations

from collections.abc import Iterable

from exchange.policy import reasons
from exchange.policy.compiler import CompiledAgreement, PolicyIndex, make_decision
from exchange.policy.consent import ConsentView
from exchange.policy.decision import Decision, EventFacts, Outcome
from exchange.policy.errors import PolicyError

__all__ = ["conditions_held", "decide", "held_mask", "held_restrictions"]

_MISSING = object()


def conditions_held(index: PolicyIndex, event: EventFacts) -> int:
    """The mask of the restrictions on the event's type whose conditions hold on its values."""
    entry = index.entries.get(event.record_type)
    fired = 0
    if entry is not None and entry.conditions:
        values = event.values
        for bit, name, expected, kind in entry.conditions:
            value = values.get(name, _MISSING)
            # A condition that cannot be evaluated (field absent) holds: withholding is the safe side.
            if value is _MISSING or (type(value) is kind and value == expected):
                fired |= bit
    return fired


def held_restrictions(index: PolicyIndex, record_type: str, fired: int) -> tuple[str, ...]:
    """The ids of the restrictions in ``fired`` (what an access-log entry records of the event's values)."""
    entry = index.entries.get(record_type)
    if entry is None or not fired:
        return ()
    return tuple(r.restriction.id for r in entry.restrictions if r.bit & fired)


def held_mask(index: PolicyIndex, record_type: str, ids: Iterable[str]) -> int | None:
    """The mask of the restrictions named ``ids`` on ``record_type``; None if one is not among them."""
    entry = index.entries.get(record_type)
    bits = {} if entry is None else {r.restriction.id: r.bit for r in entry.restrictions}
    fired = 0
    for restriction_id in ids:
        bit = bits.get(restriction_id)
        if bit is None:
            return None
        fired |= bit
    return fired


def decide(index: PolicyIndex, event: EventFacts, consent: ConsentView, fired: int | None = None) -> list[Decision]:
    """The decisions for ``event`` under every agreement on its type, in agreement id order.

    ``fired`` is the mask of restrictions whose conditions hold (:func:`conditions_held`, computed from the
    event's values when not given: a verifier passes the one an access-log entry records). Raises
    :class:`PolicyError` only for an event time without a zone, which the caller must not pass.
    """
    entry = index.entries.get(event.record_type)
    if entry is None:
        return []
    if fired is None:
        fired = conditions_held(index, event)
    at = event.time
    if at.tzinfo is None:
        raise PolicyError(f"event {event.event_id}: time {at.isoformat()} has no time zone")
    decided = []
    for agreement in entry.agreements:
        key = fired & agreement.mask
        if at < agreement.valid_from:
            decision = agreement.not_yet_valid[key]
        elif at >= agreement.valid_until and agreement.bounded:  # an open window admits even datetime.max
            decision = agreement.expired[key]
        else:
            decision = agreement.current[key]
            if agreement.consent_based and decision.outcome is Outcome.PERMIT:
                decision = _with_consent(agreement, key, decision, event, consent)
        decided.append(decision)
    return decided


def _with_consent(
    compiled: CompiledAgreement, key: int, decision: Decision, event: EventFacts, consent: ConsentView
) -> Decision:
    if event.subject is None:
        return compiled.no_consent[key]
    answer = consent.lookup(event.subject, decision.recipient, decision.purpose, event.record_type, event.time)
    d = decision
    if not answer.granted:
        if answer.reference is None and answer.reason == reasons.NO_CONSENT:
            return compiled.no_consent[key]
        # Positional construction: the per-event path, where keywords and _replace cost microseconds.
        return Decision(
            Outcome.DENY, d.recipient, d.agreement_id, d.agreement_version, d.purpose, d.legal_basis,
            answer.reference, (), compiled.fields, (*d.reasons, answer.reason or reasons.NO_CONSENT),
            d.pseudonymise, d.topic, d.bundle_id,
        )
    if answer.fields is not None:
        # Narrow the agreed fields left after restrictions, not d.fields: those name the recipient pseudonym
        # in place of the key field when pseudonymising.
        released = compiled.released[key]
        narrowed = tuple(name for name in released if name in answer.fields)
        if len(narrowed) != len(released):
            codes = (*d.reasons, reasons.CONSENT_SCOPE)
            return make_decision(
                compiled.agreement, compiled.fields, narrowed, key_field=compiled.key_field,
                codes=codes if narrowed else (*codes, reasons.ALL_FIELDS_WITHHELD),
                consent_ref=answer.reference, bundle_id=d.bundle_id,
            )
    return Decision(
        Outcome.PERMIT, d.recipient, d.agreement_id, d.agreement_version, d.purpose, d.legal_basis,
        answer.reference, d.fields, d.withheld, d.reasons, d.pseudonymise, d.topic, d.bundle_id,
    )
