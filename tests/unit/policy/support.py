"""Test support: the contract's record types as plain TypeInfo, the agencies, and small builders."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange.errors import ExchangeError
from exchange.policy import (
    Agreement,
    ConsentArtefact,
    ConsentState,
    EventFacts,
    PolicySet,
    Restriction,
    TypeInfo,
)

REPO = Path(__file__).resolve().parents[3]

AGENCIES = frozenset({
    "population-registry", "business-register", "tax-board", "health-insurance", "vehicle-registry",
    "social-insurance", "statistics-office", "municipal-services", "police-board",
})

_P, _S, _PUB = "personal", "special", "public"

TYPES: dict[str, TypeInfo] = {
    info.record_type: info
    for info in (
        TypeInfo("population.person-registered", {
            "person_id": _P, "given_name": _P, "family_name": _P, "birth_date": _P, "sex": _P, "citizenship": _P,
            "municipality_code": _PUB, "registered_on": _PUB,
        }, "person_id", "person"),
        TypeInfo("population.address-changed", {
            "person_id": _P, "street_address": _P, "postal_code": _P, "municipality_code": _PUB, "moved_on": _PUB,
            "address_protected": _P, "dwelling_type": _P,
        }, "person_id", "person"),
        TypeInfo("population.death-registered", {
            "person_id": _P, "date_of_death": _P, "municipality_code": _PUB,
        }, "person_id", "person"),
        TypeInfo("business.company-registered", {
            "company_id": _PUB, "name": _PUB, "legal_form": _PUB, "registered_on": _PUB, "municipality_code": _PUB,
            "share_capital_cents": _PUB,
        }, "company_id", "record"),
        TypeInfo("tax.income-assessed", {
            "person_id": _P, "tax_year": _PUB, "taxable_income_cents": _P, "tax_due_cents": _P, "assessed_on": _PUB,
        }, "person_id", "person"),
        TypeInfo("health.coverage-changed", {
            "person_id": _P, "coverage_status": _S, "coverage_from": _S, "coverage_until": _S, "reason_code": _S,
            "municipality_code": _PUB,
        }, "person_id", "person"),
        TypeInfo("vehicle.vehicle-registered", {
            "person_id": _P, "vin": _PUB, "registration_number": _P, "make": _PUB, "model": _PUB,
            "first_registered_on": _PUB,
        }, "person_id", "person"),
        TypeInfo("social.benefit-granted", {
            "person_id": _P, "benefit_type": _P, "monthly_amount_cents": _P, "granted_from": _PUB,
            "granted_until": _PUB, "municipality_code": _PUB,
        }, "person_id", "person"),
    )
}

REGISTRY: dict[str, Any] = {"agencies": [{"id": agency} for agency in sorted(AGENCIES)]}

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SUBJECT = "ps-0f3a9c2b7d1e4a5b6c7d8e9f"


def agreement(**overrides: Any) -> Agreement:
    """A valid statutory agreement of the tax board on address changes, with ``overrides`` applied."""
    data: dict[str, Any] = {
        "id": "tcb-address",
        "version": 1,
        "recipient": "tax-board",
        "record_type": "population.address-changed",
        "purpose": "tax-assessment",
        "legal_basis": {"statute": "Taxation Act §24"},
        "fields": ["person_id", "street_address", "postal_code", "municipality_code"],
        "valid_from": "2024-01-01T00:00:00Z",
        "retention": "7 years",
    }
    data.update(overrides)
    return Agreement.model_validate(data)


def restriction(**overrides: Any) -> Restriction:
    """The protected-address restriction, with ``overrides`` applied."""
    data: dict[str, Any] = {
        "id": "protected-address",
        "record_type": "population.address-changed",
        "condition": {"field": "address_protected", "equals": True},
        "fields": ["street_address", "postal_code"],
        "except_recipients": ["police-board", "population-registry"],
        "reason": "protected-address",
    }
    data.update(overrides)
    return Restriction.model_validate(data)


def facts(record_type: str = "population.address-changed", *, time: datetime = NOW,
          subject: str | None = SUBJECT, **values: object) -> EventFacts:
    """Event facts for ``record_type`` with the decoded ``values``."""
    return EventFacts("01890000-0000-7000-8000-000000000001", record_type, "population-registry", time, subject,
                      values)


def policy_set(*items: Agreement | Restriction) -> PolicySet:
    """A policy set of the given agreements and restrictions."""
    return PolicySet(
        agreements=tuple(i for i in items if isinstance(i, Agreement)),
        restrictions=tuple(i for i in items if isinstance(i, Restriction)),
    )


_TEST_KEY = b"consent-manager test key, not a real one"


class BadSignatureError(ExchangeError):
    """What the test verifier raises, standing in for the registry's signature error."""


def sign(message: bytes) -> bytes:
    """A stand-in for the consent manager's signer (HMAC, so the tests need no key pair)."""
    return hmac.new(_TEST_KEY, message, hashlib.sha256).digest()


def verify(message: bytes, signature: bytes) -> None:
    """The verifier matching :func:`sign`."""
    if not hmac.compare_digest(sign(message), signature):
        raise BadSignatureError("HMAC mismatch")


def consent(**overrides: Any) -> ConsentArtefact:
    """A signed ACTIVE consent of SUBJECT to the municipality receiving income assessments, with overrides."""
    data: dict[str, Any] = {
        "consent_id": "c-0001",
        "version": 1,
        "subject": SUBJECT,
        "recipient": "municipal-services",
        "purpose": "housing-allowance",
        "record_types": ["tax.income-assessed"],
        "start": "2025-01-01T00:00:00Z",
        "expiry": "2026-01-01T00:00:00Z",
        "status": "ACTIVE",
        "issued_at": "2025-01-01T00:00:00Z",
    }
    data.update(overrides)
    return ConsentArtefact.model_validate(data).signed(sign)


def consent_state(*artefacts: ConsentArtefact) -> ConsentState:
    """A consent state with ``artefacts`` applied in order."""
    state = ConsentState(verify)
    for artefact in artefacts:
        state.apply(artefact)
    return state


Writer = Callable[[str, str], Path]
"""The ``write`` fixture: ``write(relative_path, text) -> path`` under the test's tmp_path."""
