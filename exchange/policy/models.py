"""Agreements and restrictions as validated, immutable values (pydantic), and the set they form.

These models check what one document can check on its own (shapes, names, windows). Whether the types, fields
and agencies they name exist is a question for :func:`exchange.policy.checks.find_issues`, which also sees the
schemas and the registry.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

__all__ = [
    "MAX_AGREEMENT_VERSION",
    "MAX_HIDDEN_PERIOD",
    "PUBLIC_RECIPIENT",
    "Agreement",
    "Condition",
    "FieldName",
    "Instant",
    "LegalBasis",
    "Period",
    "PolicySet",
    "RecordTypeName",
    "Restriction",
    "Slug",
    "WindowInstant",
    "format_instant",
    "period_seconds",
]

MAX_AGREEMENT_VERSION = 2**32 - 1
"""The largest agreement version: a delivery's disclosure carries it as an unsigned 32-bit integer
(:func:`exchange.delivery.disclosure.encode_agreement`)."""

PUBLIC_RECIPIENT = "public"
"""The recipient of open-data agreements: not an agency, anyone may read ``opendata.<type>``."""

_SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_TYPE = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*\.[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _midnight_utc(value: object) -> object:
    # YAML reads `2024-01-01` as a date; a window boundary given as a day starts at midnight UTC.
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def format_instant(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix: the one spelling of a time in bundles and signed artefacts.

    ``YYYY-MM-DDTHH:MM:SSZ``, with six fractional digits (``.ffffffZ``) only when the time has a fraction of a
    second, which agreement windows never have (:data:`WindowInstant`).
    """
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-02:00: after 9999-12-31T23:59:59.999999Z
        raise ValueError(f"{value.isoformat()} is outside the years 1 to 9999 in UTC") from None


def _whole_second(value: datetime) -> datetime:
    # The policy bundle spells times YYYY-MM-DDTHH:MM:SSZ: a fraction would be written as .ffffff, which that
    # form does not have, so it is refused where the author can see it instead of travelling into the bundle.
    if value.microsecond:
        raise ValueError(
            f"a time in a policy is whole seconds (YYYY-MM-DDTHH:MM:SSZ); {format_instant(value)} has a fraction "
            "of a second"
        )
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_midnight_utc),
    AfterValidator(_utc),
    PlainSerializer(format_instant, return_type=str, when_used="json"),
]
"""A point in time with a zone, normalised to UTC; a bare date means midnight UTC of that day. Microsecond
resolution (the consent artefact's times are ``timestamp-micros`` on the wire)."""

WindowInstant = Annotated[Instant, AfterValidator(_whole_second)]
"""An agreement's ``valid_from`` or ``valid_until``: an :data:`Instant` in whole seconds, so the policy bundle
spells it ``YYYY-MM-DDTHH:MM:SSZ``. A zone other than UTC is accepted and converted."""

Slug = Annotated[StrictStr, Field(pattern=_SLUG, max_length=100)]
"""Agency ids, agreement and restriction ids, purpose and reason codes: ``lower-case-words``."""

RecordTypeName = Annotated[StrictStr, Field(pattern=_TYPE, max_length=200)]
"""``<domain>.<event>``, e.g. ``population.address-changed``."""


def _field_name(value: str) -> str:
    if not _FIELD.match(value):
        raise ValueError(f"{value!r} is not a field name")
    return value


FieldName = Annotated[StrictStr, AfterValidator(_field_name)]


def _explicit_fields(value: object) -> object:
    if value == "*" or (isinstance(value, list | tuple) and "*" in value):
        raise ValueError("'*' is not allowed: list the fields explicitly")
    return value


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


FieldList = Annotated[
    tuple[FieldName, ...], BeforeValidator(_explicit_fields), AfterValidator(_unique), Field(min_length=1)
]

_PERIOD = re.compile(r"P(?:(\d{1,5})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,7})M)?(?:(\d{1,9})S)?)?", re.ASCII)
_PERIOD_UNITS = (7 * 86400, 86400, 3600, 60, 1)
MAX_HIDDEN_PERIOD = 10 * 366 * 86400
"""The longest a delivery may stay hidden from its subject (``notify_subject_after``): ten years."""


def period_seconds(text: str) -> int:
    """An ISO 8601 duration of weeks, days, hours, minutes and seconds (``P180D``, ``P2W``, ``PT36H``,
    ``P1DT12H``) in seconds. Years and months are refused: their length depends on the date they start at."""
    found = _PERIOD.fullmatch(text)
    if found is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"{text!r} is not a period like P180D, P2W or PT36H (weeks, days, hours, minutes, "
                         "seconds; years and months are not allowed)")
    return sum(int(part or 0) * unit for part, unit in zip(found.groups(), _PERIOD_UNITS, strict=True))


def _period(text: str) -> str:
    seconds = period_seconds(text)
    if not 0 < seconds <= MAX_HIDDEN_PERIOD:
        raise ValueError(f"{text} must be longer than zero and at most ten years (P3660D)")
    return text


Period = Annotated[StrictStr, AfterValidator(_period)]
"""An ISO 8601 duration in weeks, days, hours, minutes and seconds, above zero and at most ten years."""

_Frozen = ConfigDict(extra="forbid", frozen=True)


class LegalBasis(BaseModel):
    """Why a recipient may receive the record: a statute (``{statute: "Population Register Act §44"}``) or the
    subject's consent (``{consent: true}``) — exactly one of the two."""

    model_config = _Frozen

    statute: Annotated[StrictStr, Field(min_length=3, max_length=300)] | None = None
    consent: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> LegalBasis:
        if (self.statute is None) == (self.consent is None):
            raise ValueError("give exactly one of 'statute' (a citation) or 'consent: true'")
        return self

    @property
    def is_consent(self) -> bool:
        """True when the agreement rests on the subject's consent."""
        return self.consent is True

    def describe(self) -> str:
        """The legal basis as the access log records it: ``statute:<citation>`` or ``consent``."""
        return "consent" if self.statute is None else f"statute:{self.statute}"


class Agreement(BaseModel):
    """One data-sharing agreement: ``recipient`` may receive ``fields`` of ``record_type`` for ``purpose``.

    The window is ``[valid_from, valid_until)``; without ``valid_until`` it is open-ended. With ``pseudonymise``
    the recipient gets a recipient-specific pseudonym in place of the person id. ``delivery: opendata`` publishes
    to ``opendata.<type>`` for recipient ``public`` and only for types whose every field is public.
    """

    model_config = _Frozen

    id: Slug
    version: Annotated[StrictInt, Field(ge=1, le=MAX_AGREEMENT_VERSION)]
    recipient: Slug
    record_type: RecordTypeName
    purpose: Slug
    legal_basis: LegalBasis
    fields: FieldList
    valid_from: WindowInstant
    valid_until: WindowInstant | None = None
    pseudonymise: StrictBool = False
    delivery: Literal["agency", "opendata"] = "agency"
    retention: Annotated[StrictStr, Field(min_length=1, max_length=500)]
    description: Annotated[StrictStr, Field(max_length=2000)] | None = None
    notify_subject_after: Period | None = None
    """Hide each delivery from its subject's data tracker for this long after the decision (an investigation)."""

    @model_validator(mode="after")
    def _coherent(self) -> Agreement:
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.delivery == "opendata":
            if self.recipient != PUBLIC_RECIPIENT:
                raise ValueError(f"open-data agreements have recipient {PUBLIC_RECIPIENT!r}")
            if self.legal_basis.is_consent:
                raise ValueError("open data cannot rest on consent")
            if self.pseudonymise:
                raise ValueError("open data carries no person to pseudonymise")
            if self.notify_subject_after is not None:
                raise ValueError("open data carries no subject to hide a delivery from")
        if self.notify_subject_after is not None and self.legal_basis.is_consent:
            raise ValueError("a delivery the subject consented to cannot be hidden from them: "
                             "notify_subject_after needs a statute as the legal basis")
        if self.delivery != "opendata" and self.recipient == PUBLIC_RECIPIENT:
            raise ValueError(f"recipient {PUBLIC_RECIPIENT!r} is only for 'delivery: opendata'")
        return self

    @property
    def topic(self) -> str:
        """The topic deliveries under this agreement go to."""
        if self.delivery == "opendata":
            return f"opendata.{self.record_type}"
        return f"delivery.{self.recipient}"


def _scalar(value: object) -> object:
    # One clear message instead of one error per member of the union below.
    if type(value) not in (bool, int, str):
        raise ValueError("must be true, false, a whole number or a string")
    return value


Scalar = Annotated[StrictBool | StrictInt | StrictStr, BeforeValidator(_scalar)]


class Condition(BaseModel):
    """When a restriction applies: the record's ``field`` equals ``equals`` (same JSON type, no coercion).

    Declarative on purpose: nothing in a policy file is ever evaluated as code.
    """

    model_config = _Frozen

    field: FieldName
    equals: Scalar

    def describe(self) -> str:
        """``address_protected = true``: the condition as ``explain`` prints it."""
        shown = str(self.equals).lower() if isinstance(self.equals, bool) else repr(self.equals)
        return f"{self.field} = {shown}"


class Restriction(BaseModel):
    """Withhold ``fields`` of ``record_type`` from every recipient but ``except_recipients`` when ``condition``
    holds for the record. A restriction always wins over an agreement (deny overrides permit)."""

    model_config = _Frozen

    id: Slug
    record_type: RecordTypeName
    condition: Condition
    fields: FieldList
    except_recipients: tuple[Slug, ...] = ()
    reason: Slug
    description: Annotated[StrictStr, Field(max_length=2000)] | None = None


class PolicySet(BaseModel):
    """Every agreement and restriction in force for a router: what the policy bundle is built from."""

    model_config = _Frozen

    agreements: tuple[Agreement, ...] = ()
    restrictions: tuple[Restriction, ...] = ()
