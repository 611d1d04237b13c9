"""Agreement, restriction and legal-basis models: what a single document must satisfy on its own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from exchange.policy import Agreement, LegalBasis
from exchange.policy.models import period_seconds

from .support import agreement, restriction


def test_a_bare_date_means_midnight_utc() -> None:
    """valid_from given as a YAML date becomes midnight UTC of that day."""
    made = agreement(valid_from=datetime(2024, 3, 1, tzinfo=UTC).date())
    assert made.valid_from == datetime(2024, 3, 1, tzinfo=UTC)


def test_times_are_normalised_to_utc() -> None:
    """A window boundary with an offset is stored in UTC."""
    made = agreement(valid_from="2024-03-01T02:00:00+02:00")
    assert made.valid_from == datetime(2024, 3, 1, tzinfo=UTC)
    assert made.valid_from.tzinfo is UTC


def test_naive_times_are_refused() -> None:
    """A boundary without a zone is ambiguous and refused."""
    with pytest.raises(ValidationError, match="timezone"):
        agreement(valid_from="2024-03-01T00:00:00")


@pytest.mark.parametrize("fields", ["*", ["person_id", "*"]])
def test_wildcard_fields_are_refused(fields: object) -> None:
    """Agreements must list their fields explicitly; '*' is refused in any form."""
    with pytest.raises(ValidationError, match="list the fields explicitly"):
        agreement(fields=fields)


def test_empty_and_repeated_fields_are_refused() -> None:
    """An agreement releases at least one field, each listed once."""
    with pytest.raises(ValidationError, match="at least 1"):
        agreement(fields=[])
    with pytest.raises(ValidationError, match="listed twice"):
        agreement(fields=["person_id", "person_id"])


def test_window_must_not_be_empty() -> None:
    """valid_until must lie after valid_from."""
    with pytest.raises(ValidationError, match="valid_until must be after valid_from"):
        agreement(valid_from="2024-01-01T00:00:00Z", valid_until="2024-01-01T00:00:00Z")


@pytest.mark.parametrize("basis", [{}, {"statute": "Taxation Act §24", "consent": True}, {"consent": False}])
def test_legal_basis_is_exactly_one_of_statute_or_consent(basis: dict[str, object]) -> None:
    """A legal basis is either a statute citation or consent, never both or neither."""
    with pytest.raises(ValidationError):
        LegalBasis.model_validate(basis)


def test_legal_basis_describes_itself_for_the_log() -> None:
    """The access log records 'statute:<citation>' or 'consent'."""
    assert LegalBasis(statute="Population Register Act §44").describe() == "statute:Population Register Act §44"
    assert LegalBasis(consent=True).describe() == "consent"


def test_open_data_is_for_the_public_recipient_on_statutory_grounds_only() -> None:
    """Open data goes to recipient 'public', never rests on consent and never pseudonymises."""
    made = agreement(recipient="public", delivery="opendata")
    assert made.topic == "opendata.population.address-changed"
    with pytest.raises(ValidationError, match="recipient 'public'"):
        agreement(delivery="opendata")
    with pytest.raises(ValidationError, match="only for 'delivery: opendata'"):
        agreement(recipient="public")
    with pytest.raises(ValidationError, match="cannot rest on consent"):
        agreement(recipient="public", delivery="opendata", legal_basis={"consent": True})


def test_agency_delivery_goes_to_the_recipients_topic() -> None:
    """An agency agreement delivers to delivery.<recipient>."""
    assert agreement().topic == "delivery.tax-board"


def test_unknown_keys_are_refused() -> None:
    """A misspelt key is an error, not silently ignored."""
    with pytest.raises(ValidationError, match="Extra inputs"):
        agreement(pseudonymize=True)


def test_conditions_do_not_coerce() -> None:
    """A condition compares with a JSON scalar of its own type and describes itself for explain."""
    made = restriction()
    assert made.condition.describe() == "address_protected = true"
    with pytest.raises(ValidationError):
        restriction(condition={"field": "address_protected", "equals": [True]})


def test_models_are_immutable() -> None:
    """Policies cannot be changed after validation."""
    made: Agreement = agreement()
    with pytest.raises(ValidationError):
        made.version = 2


@pytest.mark.parametrize(("text", "seconds"), [
    ("P180D", 180 * 86400), ("P2W", 14 * 86400), ("PT36H", 36 * 3600), ("P1DT12H", 36 * 3600),
    ("PT90M", 5400), ("PT1S", 1), ("P1W2DT3H4M5S", 9 * 86400 + 3 * 3600 + 4 * 60 + 5),
])
def test_notify_subject_after_takes_iso_8601_periods(text: str, seconds: int) -> None:
    """An investigation hides its deliveries for weeks, days, hours, minutes and seconds."""
    made = agreement(notify_subject_after=text)
    assert made.notify_subject_after == text
    assert period_seconds(text) == seconds


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "P1Y", "P6M", "180D", "P-1D", "P1.5D", "p1d", "P0D",
                                  "PT0S", "P3661D", " P1D", "P1D\n", "P\uff11D", "P99999W"])
def test_notify_subject_after_refuses_what_is_not_a_bounded_period(text: str) -> None:
    """Years and months (lengths that depend on the date), zero, over ten years and anything else are refused."""
    with pytest.raises(ValidationError, match="notify_subject_after"):
        agreement(notify_subject_after=text)


def test_a_consented_or_open_delivery_cannot_be_hidden() -> None:
    """Hiding needs a statute: a subject's own consent, or open data, leaves nothing to hide from."""
    with pytest.raises(ValidationError, match="consented to cannot be hidden"):
        agreement(legal_basis={"consent": True}, notify_subject_after="P180D")
    with pytest.raises(ValidationError, match="no subject to hide"):
        agreement(recipient="public", delivery="opendata", notify_subject_after="P180D")


def test_a_hiding_period_does_not_change_the_bundle_of_agreements_without_one() -> None:
    """The field is left out of the canonical bundle when absent, so existing bundle ids stay as they were."""
    assert "notify_subject_after" not in agreement().model_dump(mode="json", exclude_none=True)
