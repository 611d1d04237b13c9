"""Reason codes a decision records: stable strings, because auditors re-evaluate logs written years earlier.

A code never changes meaning once released; new situations get new codes.
"""

from __future__ import annotations

__all__ = [
    "AGREEMENT_EXPIRED",
    "AGREEMENT_NOT_YET_VALID",
    "ALL_FIELDS_WITHHELD",
    "CONSENT_EXPIRED",
    "CONSENT_NOT_STARTED",
    "CONSENT_PAUSED",
    "CONSENT_REVOKED",
    "CONSENT_SCOPE",
    "NO_CONSENT",
    "RESTRICTED_FIELD_PREFIX",
    "restricted_field",
]

AGREEMENT_NOT_YET_VALID = "AGREEMENT_NOT_YET_VALID"
"""The event's time is before the agreement's ``valid_from``."""

AGREEMENT_EXPIRED = "AGREEMENT_EXPIRED"
"""The event's time is at or after the agreement's ``valid_until``."""

ALL_FIELDS_WITHHELD = "ALL_FIELDS_WITHHELD"
"""Restrictions or the consent's field scope left none of the agreed fields to release."""

NO_CONSENT = "NO_CONSENT"
"""The agreement rests on consent and the subject has given none for this recipient, purpose and type."""

CONSENT_PAUSED = "CONSENT_PAUSED"
"""The subject has paused the consent, and the event's time lies before its expiry."""

CONSENT_REVOKED = "CONSENT_REVOKED"
"""The subject has revoked the consent (final: reported before, within and past its window)."""

CONSENT_EXPIRED = "CONSENT_EXPIRED"
"""The event's time is at or past the consent's expiry (whatever its status, unless revoked), or the consent
manager marked it expired."""

CONSENT_NOT_STARTED = "CONSENT_NOT_STARTED"
"""The consent is active but its start lies after the event's time."""

CONSENT_SCOPE = "CONSENT_SCOPE"
"""The consent names fewer fields than the agreement; the others were withheld."""

RESTRICTED_FIELD_PREFIX = "RESTRICTED_FIELD:"


def restricted_field(reason: str) -> str:
    """The code recorded when a restriction with reason ``reason`` withheld fields: ``RESTRICTED_FIELD:<reason>``."""
    return RESTRICTED_FIELD_PREFIX + reason
