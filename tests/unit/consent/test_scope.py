"""Grants are refused unless a consent-based agreement can use them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exchange.consent import ConsentRequestError, check_grant, consent_agreements
from exchange.policy import PolicyIndex
from exchange.registry import Registry
from exchange.schemas import Catalogue

from .support import NOW, PURPOSE, RECIPIENT, TYPE


def _check(registry: Registry, catalogue: Catalogue, policies: PolicyIndex, *, recipient: str = RECIPIENT,
           purpose: str = PURPOSE, record_types: Sequence[str] = (TYPE,), fields: Sequence[str] | None = None,
           start: datetime = NOW, expiry: datetime = NOW + timedelta(days=365)) -> None:
    check_grant(registry, catalogue, policies, recipient=recipient, purpose=purpose, record_types=record_types,
                fields=fields, start=start, expiry=expiry)


def test_usable_grant_passes(registry: Registry, catalogue: Catalogue, policies: PolicyIndex) -> None:
    """The shipped housing-allowance agreement rests on consent: a grant for it, with its fields, is accepted."""
    _check(registry, catalogue, policies, fields=["taxable_income_cents"])  # raises if refused
    assert [c.agreement.id for c in consent_agreements(policies, RECIPIENT, PURPOSE, TYPE)] == [
        "aom-income-assessed-housing-allowance"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recipient": "town-hall"}, "'town-hall' is not an agency"),
        ({"purpose": "marketing"}, "consent-based purposes of municipal-services for it: housing-allowance"),
        ({"recipient": "tax-board"}, "tax-board has no consent-based agreement on it"),
        ({"record_types": ["population.address-changed"]}, "municipal-services has no consent-based agreement"),
        ({"record_types": ["pets.dog-registered"]}, "unknown record type 'pets.dog-registered'"),
        ({"record_types": ["exchange.decision"]}, "the exchange's own record type"),
        ({"record_types": []}, "at least one record type"),
        ({"fields": ["tax_due_cents"]}, "no matching agreement releases field(s) tax_due_cents"),
        ({"fields": []}, "empty field list"),
        ({"expiry": NOW}, "must expire after it starts"),
        ({"start": datetime(2020, 1, 1, tzinfo=UTC), "expiry": datetime(2021, 1, 1, tzinfo=UTC)},
         "is valid between"),
    ],
)
def test_unusable_grants_are_refused(registry: Registry, catalogue: Catalogue, policies: PolicyIndex,
                                     change: dict[str, Any], message: str) -> None:
    """Each unusable scope is refused with a message naming what is wrong."""
    with pytest.raises(ConsentRequestError) as caught:
        _check(registry, catalogue, policies, **change)
    assert message in str(caught.value)
