"""Times in policies and consents: agreement windows are whole seconds, so the bundle spells every time
``YYYY-MM-DDTHH:MM:SSZ``; consent times are kept to the microsecond and signed in one spelling."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from exchange.cli._app import main
from exchange.policy import ConsentArtefact, PolicyError, PolicySet, make_bundle, read_bundle, scan_policies
from exchange.policy.models import format_instant

from .support import REGISTRY, REPO, Writer, agreement, consent

_AGREEMENT = """\
id: tcb-address
version: 1
recipient: tax-board
record_type: population.address-changed
purpose: tax-assessment
legal_basis:
  statute: "Taxation Act §24"
fields:
  - person_id
valid_from: 2024-01-01
retention: "7 years"
"""
_BUNDLE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.mark.parametrize("key", ["valid_from", "valid_until"])
@pytest.mark.parametrize("value", ["2030-01-01T00:00:00.5Z", "2030-01-01T00:00:00.000001+02:00"])
def test_a_fraction_of_a_second_in_a_window_is_refused(key: str, value: str) -> None:
    """The bundle has no way to spell a fraction: it is refused with the reason, not written as .ffffff."""
    with pytest.raises(ValidationError, match="whole seconds") as caught:
        agreement(**{key: value})
    assert caught.value.errors()[0]["loc"] == (key,)


def test_a_zone_is_converted_and_the_bundle_is_the_same() -> None:
    """A time with an offset is the same instant as its UTC spelling: the same bundle, the same id."""
    east = make_bundle(PolicySet(agreements=(agreement(valid_from="2024-01-01T02:00:00+02:00"),)), REGISTRY)
    utc = make_bundle(PolicySet(agreements=(agreement(valid_from="2024-01-01T00:00:00Z"),)), REGISTRY)
    assert east.data == utc.data
    assert east.id == utc.id
    assert b'"valid_from":"2024-01-01T00:00:00Z"' in east.data


@pytest.mark.parametrize("value", ["9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00"])
def test_a_time_outside_the_utc_range_is_a_validation_error(value: str) -> None:
    """Converting to UTC would overflow: a clear refusal instead of an OverflowError escaping the loader."""
    with pytest.raises(ValidationError, match="outside the years 1 to 9999 in UTC"):
        agreement(valid_from=value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("valid_from: 2024-01-01T00:00:00.25Z", "valid_from: a time in a policy is whole seconds"),
        ("valid_from: '2024-01-01T00:00:00.250+02:00'", "valid_from: a time in a policy is whole seconds"),
        ("valid_from: 9999-12-31T23:30:00-01:00", "valid_from: 9999-12-31T23:30:00-01:00 is outside"),
    ],
)
def test_policies_check_reports_a_bad_time_at_its_line(
    tmp_path: Path, write: Writer, capsys: pytest.CaptureFixture[str], line: str, expected: str
) -> None:
    """`exchange policies check` names the file and the line of the bad time, and exits 1."""
    path = write("policies/agreements/tcb-address.yaml", _AGREEMENT.replace("valid_from: 2024-01-01", line))
    write("policies/restrictions.yaml", "restrictions: []\n")
    [problem] = scan_policies(tmp_path / "policies").problems
    assert (problem.line, problem.reason.startswith(expected)) == (10, True)
    code = main(["policies", "check", "--policies", str(tmp_path / "policies"), "--schemas", str(REPO / "schemas"),
                 "--registry", str(REPO / "policies/registry.yaml")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"{path}:10: {expected}")


def test_read_bundle_refuses_a_fraction_of_a_second() -> None:
    """A bundle whose bytes spell a fraction is not a bundle this exchange could have written."""
    data = make_bundle(PolicySet(agreements=(agreement(),)), REGISTRY).data
    forged = data.replace(b'"valid_from":"2024-01-01T00:00:00Z"', b'"valid_from":"2024-01-01T00:00:00.500000Z"')
    assert forged != data
    with pytest.raises(PolicyError, match="whole seconds"):
        read_bundle(forged)


_ZONES = st.integers(-18 * 60, 18 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=200, deadline=None)
@given(at=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_ZONES),
       length=st.none() | st.integers(1, 10**9))
def test_every_bundle_time_is_whole_seconds_in_utc(at: datetime, length: int | None) -> None:
    """Any whole-second time in any zone: the bundle spells it YYYY-MM-DDTHH:MM:SSZ and reads back to the same id;
    a time with a fraction is refused."""
    start = at.replace(microsecond=0)
    until = None if length is None else start + timedelta(seconds=length)
    if until is not None and until.astimezone(UTC).year > 9999:
        until = None
    item = agreement(valid_from=start.isoformat(), valid_until=None if until is None else until.isoformat())
    bundle = make_bundle(PolicySet(agreements=(item,)), REGISTRY)
    (written,) = json.loads(bundle.data)["agreements"]
    for key in ("valid_from", "valid_until"):
        if key in written:
            assert _BUNDLE_TIME.match(written[key])
    assert written["valid_from"] == format_instant(start)
    assert read_bundle(bundle.data).id == bundle.id
    if at.microsecond:
        with pytest.raises(ValidationError, match="whole seconds"):
            agreement(valid_from=at.isoformat())


def test_consent_times_keep_microseconds_in_one_spelling() -> None:
    """Consent times travel as timestamp-micros: a fraction is kept, spelled with six digits in UTC, and the
    same instant written otherwise gives the same signed bytes."""
    a = consent(start="2025-01-01T00:00:00.5Z", issued_at="2025-01-01T00:00:00.5Z")
    b = consent(start="2025-01-01T01:00:00.500000+01:00", issued_at="2025-01-01T00:00:00.500Z")
    assert a.to_signing_bytes() == b.to_signing_bytes()
    assert b'"start":"2025-01-01T00:00:00.500000Z"' in a.to_signing_bytes()
    assert b'"expiry":"2026-01-01T00:00:00Z"' in a.to_signing_bytes()


def test_a_consent_time_outside_the_utc_range_is_a_validation_error() -> None:
    """As for agreements: a refusal, not an OverflowError."""
    data = consent().model_dump() | {"expiry": "9999-12-31T23:30:00-01:00"}
    with pytest.raises(ValidationError, match="outside the years 1 to 9999 in UTC"):
        ConsentArtefact.model_validate(data)
