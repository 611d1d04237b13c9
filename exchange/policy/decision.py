"""The values the decision engine takes and gives: the facts of one event, and one decision per agreement."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from exchange.policy.consent import ConsentRef

__all__ = ["RECIPIENT_PSEUDONYM", "Decision", "EventFacts", "Outcome"]

RECIPIENT_PSEUDONYM = "(recipient pseudonym)"
"""What a pseudonymising PERMIT lists first among its released ``fields``: the recipient received its own
pseudonym of the subject, never the key field (the person id). It cannot be mistaken for a field name, which is
``[A-Za-z_][A-Za-z0-9_]*``."""


class Outcome(StrEnum):
    """What a decision allows. (The access log's third outcome, REJECT, is the router's, before any decision.)"""

    PERMIT = "PERMIT"
    DENY = "DENY"


class EventFacts(NamedTuple):
    """What the engine needs to know about one verified, decoded event.

    ``time`` is the event's time (``ce_time``), timezone-aware; ``subject`` the subject's pseudonym (None for
    records about no person); ``values`` the decoded record, read only to evaluate restriction conditions.
    A named tuple, like :class:`Decision`, because the router builds one per event.
    """

    event_id: str
    record_type: str
    source: str
    time: datetime
    subject: str | None
    values: Mapping[str, object]


class Decision(NamedTuple):
    """One agreement's verdict on one event: the access-log fields that the policy core is responsible for.

    ``fields`` are what the recipient receives, as the access log records it (``fields_released``): empty on
    DENY; otherwise the released fields in schema order, preceded, when the agreement pseudonymises, by
    :data:`RECIPIENT_PSEUDONYM` in place of the key field, which is then never listed (the delivery withholds it
    and attests the recipient's pseudonym instead, whenever ``pseudonymise`` is set). ``withheld`` are the
    agreement's fields not released, the pseudonymised key field among them. ``reasons`` are stable codes
    (``RESTRICTED_FIELD:<reason>``, ``NO_CONSENT``, ``AGREEMENT_EXPIRED`` …), recorded on PERMIT too when a
    restriction narrowed the fields. Decisions do not depend on the event beyond its facts, so equal decisions
    may be the same object.

    A named tuple rather than a frozen dataclass: it is built on the per-event path, and a tuple is built
    several times faster.
    """

    outcome: Outcome
    recipient: str
    agreement_id: str
    agreement_version: int
    purpose: str
    legal_basis: str
    consent_ref: ConsentRef | None
    fields: tuple[str, ...]
    withheld: tuple[str, ...]
    reasons: tuple[str, ...]
    pseudonymise: bool
    topic: str
    bundle_id: str

    @property
    def permitted(self) -> bool:
        """True for PERMIT."""
        return self.outcome is Outcome.PERMIT
