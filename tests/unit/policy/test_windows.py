"""Validity windows: ``[valid_from, valid_until)``, and an agreement without ``valid_until`` has no end at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exchange.policy import NO_CONSENTS, Agreement, PolicySet, compile_policies, decide
from exchange.policy import reasons as r
from exchange.policy.compiler import END_OF_TIME
from exchange.policy.models import format_instant

from .support import AGENCIES, REGISTRY, TYPES, agreement, facts

_US = timedelta(microseconds=1)
_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)
_WEST = timezone(timedelta(hours=-1))  # datetime.max in it lies after the last representable UTC time
_EAST = timezone(timedelta(hours=1))  # datetime.min in it lies before the first


def _reasons(item: Agreement, at: datetime) -> tuple[str, ...] | None:
    """None for a PERMIT, else the DENY's reasons."""
    index = compile_policies(PolicySet(agreements=(item,)), TYPES, AGENCIES, REGISTRY)
    (decision,) = decide(index, facts(time=at, address_protected=False), NO_CONSENTS)
    return None if decision.permitted else decision.reasons


@pytest.mark.parametrize("at", [_MAX, _MAX - _US, datetime.max.replace(tzinfo=_WEST), datetime(9999, 12, 31,
                                                                                                 tzinfo=UTC)])
def test_an_open_ended_agreement_admits_the_last_representable_times(at: datetime) -> None:
    """No valid_until: in force at datetime.max, in any zone — there is no stand-in end to hit."""
    assert _reasons(agreement(), at) is None


def test_an_open_ended_agreement_has_no_end_for_the_engine() -> None:
    """The compiled agreement says it is unbounded; valid_until holds END_OF_TIME only for readers of a datetime."""
    index = compile_policies(PolicySet(agreements=(agreement(),)), TYPES, AGENCIES, REGISTRY)
    (compiled,) = index.agreements_for("population.address-changed")
    assert compiled.bounded is False
    assert compiled.valid_until == END_OF_TIME
    bounded = compile_policies(PolicySet(agreements=(agreement(valid_until="2025-01-01T00:00:00Z"),)), TYPES,
                               AGENCIES, REGISTRY).agreements_for("population.address-changed")[0]
    assert bounded.bounded is True


@pytest.mark.parametrize(
    ("at", "reasons"),
    [(_MIN, None), (_MIN + _US, None), (datetime.min.replace(tzinfo=_EAST), (r.AGREEMENT_NOT_YET_VALID,))],
)
def test_a_window_from_the_first_representable_time(at: datetime, reasons: tuple[str, ...] | None) -> None:
    """valid_from 0001-01-01T00:00:00Z admits datetime.min; a time before it (possible with an offset) is not yet
    valid."""
    assert _reasons(agreement(valid_from="0001-01-01T00:00:00Z"), at) == reasons


_FROM = datetime(2024, 1, 1, tzinfo=UTC)
_UNTIL = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "reasons"),
    [
        (_FROM - _US, (r.AGREEMENT_NOT_YET_VALID,)),
        (_FROM, None),  # valid_from is inclusive
        (_FROM.astimezone(_EAST), None),  # the same instant in another zone
        (_UNTIL - _US, None),
        (_UNTIL, (r.AGREEMENT_EXPIRED,)),  # valid_until is exclusive
        (_UNTIL.astimezone(_WEST), (r.AGREEMENT_EXPIRED,)),
        (_MAX, (r.AGREEMENT_EXPIRED,)),
    ],
)
def test_a_bounded_window_is_half_open(at: datetime, reasons: tuple[str, ...] | None) -> None:
    """Exactly at valid_from: in force; exactly at valid_until: expired."""
    item = agreement(valid_from=format_instant(_FROM), valid_until=format_instant(_UNTIL))
    assert _reasons(item, at) == reasons


def test_a_window_ending_at_the_last_whole_second() -> None:
    """valid_until 9999-12-31T23:59:59Z is a real end: datetime.max is past it."""
    item = agreement(valid_until="9999-12-31T23:59:59Z")
    assert _reasons(item, datetime(9999, 12, 31, 23, 59, 58, 999999, tzinfo=UTC)) is None
    assert _reasons(item, _MAX) == (r.AGREEMENT_EXPIRED,)


_SECONDS = st.datetimes(min_value=datetime.min, max_value=datetime.max.replace(microsecond=0),
                        timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=0))
_OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=400, deadline=None)
@given(start=_SECONDS, end=st.none() | _SECONDS, at=st.datetimes(timezones=_OFFSETS))
@example(start=_FROM, end=None, at=_MAX)
@example(start=_MIN, end=None, at=_MIN)
@example(start=_FROM, end=_UNTIL, at=_UNTIL)
def test_the_window_is_exactly_from_inclusive_until_exclusive(start: datetime, end: datetime | None,
                                                               at: datetime) -> None:
    """For any window over the whole range of datetime and any event time in any zone, the decision is the
    definition: in force iff valid_from <= t and (no valid_until or t < valid_until)."""
    if end is not None and end <= start:
        start, end = end, start
        if end == start:
            end = None
    item = agreement(valid_from=format_instant(start), valid_until=None if end is None else format_instant(end))
    if at < start:
        expected: tuple[str, ...] | None = (r.AGREEMENT_NOT_YET_VALID,)
    elif end is not None and at >= end:
        expected = (r.AGREEMENT_EXPIRED,)
    else:
        expected = None
    assert _reasons(item, at) == expected
