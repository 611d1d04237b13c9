"""The bounds of a delivery: the router refuses to seal what is too long (a typed SealError, the sealer still
usable), the recipient refuses it before any work, and times no datetime can hold are judged, not crashed on."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from exchange.crypto.note import sign_note
from exchange.delivery import (
    BadDataKeyError,
    BadDisclosureError,
    DataKeyWrap,
    DeliveryOpener,
    DeliverySealer,
    MalformedDeliveryError,
    SealedDelivery,
    SealError,
    UnencodableError,
    minimise,
)
from exchange.delivery.datakeys import open_data_key
from exchange.delivery.wire import (
    HEADER_LIMITS,
    MAX_HEADERS,
    MAX_KEY_SIZE,
    MAX_TOPIC_SIZE,
    MAX_VALUE_SIZE,
    U16_MAX,
    aad_part,
    delivery_aad,
)
from exchange.envelope import VerifiedEvent
from exchange.policy import Decision
from exchange.registry import Registry
from exchange.schemas import Catalogue
from tests.unit.delivery.support import PSEUDO, T0, Keys, permit, reseal, signed_events

Open = Callable[[str], DeliveryOpener]
TYPE = "population.address-changed"
FIELDS = ("person_id", "postal_code", "municipality_code", "moved_on")
RECIPIENT = "municipal-services"
T0_MS = int(T0.timestamp() * 1000)
BIG = 64 * 1024  # 65 536 bytes: one more than a u16 length prefix can announce


@pytest.fixture
def events(catalogue: Catalogue, keys: Keys, registry: Registry) -> list[VerifiedEvent]:
    return signed_events(catalogue, keys, registry, TYPE, n=3)


def _open(opener: DeliveryOpener, d: SealedDelivery, *, timestamp_ms: int = T0_MS) -> object:
    return opener.open(d.key, d.value, d.headers, d.topic, timestamp_ms=timestamp_ms)


def _with_id(event: VerifiedEvent, event_id: str) -> VerifiedEvent:
    return event._replace(attributes=dataclasses.replace(event.attributes, id=event_id))


# -- sealing -----------------------------------------------------------------------------------------------------

def test_a_u16_part_too_long_is_unencodable() -> None:
    """The associated data's parts: up to 65 535 bytes are prefixed as before, one more is a typed error."""
    assert aad_part(b"x" * U16_MAX) == b"\xff\xff" + b"x" * U16_MAX
    with pytest.raises(UnencodableError, match="65536 bytes"):
        aad_part(b"x" * (U16_MAX + 1))


EVENT_CHANGES: dict[str, Callable[[VerifiedEvent], VerifiedEvent]] = {
    "key of 64 KiB": lambda e: e._replace(key=b"k" * BIG),
    "key over the bound": lambda e: e._replace(key=b"k" * (MAX_KEY_SIZE + 1)),
    "ce_id of 64 KiB": lambda e: _with_id(e, "i" * BIG),
    "ce_id over the bound": lambda e: _with_id(e, e.attributes.id + "0"),
    "ce_source over the bound": lambda e: e._replace(attributes=dataclasses.replace(e.attributes, source="s" * 129)),
    "ce_time not UTF-8": lambda e: e._replace(attributes=dataclasses.replace(e.attributes, time="\ud800")),
    "batch note of 64 KiB": lambda e: e._replace(note=e.note + "x" * BIG),
    "proof of 64 KiB": lambda e: e._replace(proof=b"p" * BIG),
    "value over 1 MiB": lambda e: e._replace(parts=[b"v" * MAX_VALUE_SIZE, *e.parts[1:]]),
}
DECISION_CHANGES: dict[str, Callable[[Decision], Decision]] = {
    "agreement of 64 KiB": lambda d: d._replace(agreement_id="a" * BIG),
    "agreement over the bound": lambda d: d._replace(agreement_id="a" * 255),
    "agreement version over u32": lambda d: d._replace(agreement_version=2**32),
    "negative agreement version": lambda d: d._replace(agreement_version=-1),
    "purpose of 64 KiB": lambda d: d._replace(purpose="p" * BIG),
    "topic over the bound": lambda d: d._replace(topic="delivery." + "t" * MAX_TOPIC_SIZE),
}


@pytest.mark.parametrize("change", sorted(EVENT_CHANGES))
def test_an_event_that_cannot_be_sealed_raises_a_seal_error(change: str, events: list[VerifiedEvent],
                                                             sealer: DeliverySealer, opener: Open) -> None:
    """Too long for its prefix or over a recipient's bound: UNENCODABLE (a SealError, never struct.error), for
    every decision on the event; the sealer then seals the next event, and it opens."""
    decision = permit(RECIPIENT, TYPE, FIELDS)
    mine = opener(RECIPIENT)
    assert _open(mine, sealer.seal(events[0], decision)) is not None
    bad = EVENT_CHANGES[change](events[1])
    for again in (decision, permit(RECIPIENT, TYPE, FIELDS, agreement="other")):
        # Twice, and under another decision: a refused event must not leave the previous event's parts cached.
        with pytest.raises(UnencodableError) as raised:
            sealer.seal(bad, again)
        assert isinstance(raised.value, SealError)
        assert raised.value.reason == "UNENCODABLE"
    delivery = sealer.seal(events[2], decision)
    assert dict(delivery.headers)["ce_id"] == events[2].attributes.id.encode()
    assert _open(mine, delivery) is not None


@pytest.mark.parametrize("change", sorted(DECISION_CHANGES))
def test_a_decision_that_cannot_be_sealed_raises_a_seal_error(change: str, events: list[VerifiedEvent],
                                                                sealer: DeliverySealer, opener: Open) -> None:
    """An agreement, purpose, version or topic that does not fit is UNENCODABLE; other decisions still seal."""
    bad = DECISION_CHANGES[change](permit(RECIPIENT, TYPE, FIELDS))
    for _ in range(2):
        with pytest.raises(UnencodableError):
            sealer.seal(events[0], bad)
    assert _open(opener(RECIPIENT), sealer.seal(events[0], permit(RECIPIENT, TYPE, FIELDS))) is not None


def test_the_associated_data_layout_is_unchanged(events: list[VerifiedEvent], sealer: DeliverySealer,
                                                 keys: Keys, registry: Registry) -> None:
    """Byte compatibility: the sealer's associated data is still the documented u16-prefixed layout."""
    d = sealer.seal(events[0], permit(RECIPIENT, TYPE, FIELDS))
    h = dict(d.headers)
    data_key = open_data_key(h["ce_exdatakey"], registry, keys.encryption[RECIPIENT])
    parts = (d.topic.encode(), h["ce_exagreement"], data_key.wrap.key_id.encode(), d.key, h["ce_id"])
    layout = b"exchange.delivery/v1\x00" + b"".join(struct.pack(">H", len(p)) + p for p in parts)
    assert delivery_aad(d.topic.encode(), d.key, h["ce_id"], h["ce_exagreement"],
                        data_key.wrap.key_id.encode()) == layout
    plaintext = data_key.aead.decrypt(d.value[1:13], d.value[13:], layout)
    assert plaintext == minimise(events[0], permit(RECIPIENT, TYPE, FIELDS), PSEUDO).encode()


# -- opening -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(HEADER_LIMITS))
def test_every_header_is_bounded(name: str, events: list[VerifiedEvent], sealer: DeliverySealer,
                                 opener: Open) -> None:
    """Each header one byte over its bound, or 64 KiB long, is MALFORMED_DELIVERY with a short message."""
    d = sealer.seal(events[0], permit(RECIPIENT, TYPE, FIELDS))
    mine = opener(RECIPIENT)
    for size in (HEADER_LIMITS[name] + 1, BIG, 100 * 1024):
        headers = [(n, v) for n, v in d.headers if n != name] + [(name, b"7" * size)]
        with pytest.raises(MalformedDeliveryError, match=f"header {name} has {size} bytes") as raised:
            _open(mine, d._replace(headers=headers))
        assert len(str(raised.value)) < 200


def test_trace_headers_at_their_bound_are_accepted(events: list[VerifiedEvent], sealer: DeliverySealer,
                                                   opener: Open) -> None:
    """The bounds refuse only what exceeds them: trace headers of exactly their bound still open."""
    d = sealer.seal(events[0], permit(RECIPIENT, TYPE, FIELDS))
    trace = [("traceparent", b"0" * HEADER_LIMITS["traceparent"]), ("tracestate", b"s" * HEADER_LIMITS["tracestate"])]
    assert _open(opener(RECIPIENT), d._replace(headers=[*d.headers, *trace])) is not None


@pytest.mark.parametrize(("what", "change"), [
    ("a key of 64 KiB", lambda d: d._replace(key=b"k" * BIG)),
    ("a key over the bound", lambda d: d._replace(key=b"k" * (MAX_KEY_SIZE + 1))),
    ("a value over the bound", lambda d: d._replace(value=d.value + b"v" * MAX_VALUE_SIZE)),
    ("a topic over the bound", lambda d: d._replace(topic="t" * (MAX_TOPIC_SIZE + 1))),
    ("a topic that is not UTF-8", lambda d: d._replace(topic="delivery.\udc80")),
    ("too many headers", lambda d: d._replace(headers=[*d.headers, ("traceparent", b""), ("tracestate", b""),
                                                          ("tracestate", b"")])),
    ("an unknown header with a 100 KiB name", lambda d: d._replace(headers=[*d.headers, ("x" * 102_400, b"")])),
    ("a ce_id of 64 KiB", lambda d: d._replace(headers=[(n, b"i" * BIG if n == "ce_id" else v)
                                                        for n, v in d.headers])),
    ("a ce_exagreement of 64 KiB", lambda d: d._replace(headers=[(n, b"a" * BIG if n == "ce_exagreement" else v)
                                                                 for n, v in d.headers])),
])
def test_oversized_records_are_malformed(what: str, change: Callable[[SealedDelivery], SealedDelivery],
                                         events: list[VerifiedEvent], sealer: DeliverySealer,
                                         opener: Open) -> None:
    """What the tester found raising struct.error (a key, ce_id or agreement of 64 KiB) and every other
    oversized part is MALFORMED_DELIVERY, with a message that does not echo the input."""
    d = sealer.seal(events[0], permit(RECIPIENT, TYPE, FIELDS))
    assert len(d.headers) < MAX_HEADERS
    with pytest.raises(MalformedDeliveryError) as raised:
        _open(opener(RECIPIENT), change(d))
    assert len(str(raised.value)) < 200, what


YEAR_10000_MS = int((datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()) * 1000) + 1


@pytest.mark.parametrize(("timestamp_ms", "opens"), [
    (0, True), (-1, True), (-(2**63), True),  # no broker timestamp: the age is not checked
    (T0_MS, True), (T0_MS + 3_600_000, True), (T0_MS - 900_000, True),
    (T0_MS + 3_600_001, False), (T0_MS - 900_001, False),
    (YEAR_10000_MS, False), (2**63 - 1, False), (10**40, False),
])
def test_any_timestamp_is_judged(timestamp_ms: int, opens: bool, events: list[VerifiedEvent],
                                 sealer: DeliverySealer, opener: Open) -> None:
    """A broker timestamp past the year 9999 (which 3.x clusters accept) is too far from the data key:
    BAD_DATA_KEY, not ValueError; none (0 or less) skips the check."""
    d = sealer.seal(events[0], permit(RECIPIENT, TYPE, FIELDS))
    if opens:
        assert _open(opener(RECIPIENT), d, timestamp_ms=timestamp_ms) is not None
    else:
        with pytest.raises(BadDataKeyError, match="too far from the record's time"):
            _open(opener(RECIPIENT), d, timestamp_ms=timestamp_ms)


@pytest.mark.parametrize("created", ["0001-01-01T00:30:00.000+01:00", "9999-12-31T23:30:00.000-01:00"])
def test_a_data_key_time_outside_utc_years_is_a_bad_data_key(created: str, events: list[VerifiedEvent],
                                                             sealer: DeliverySealer, keys: Keys,
                                                             registry: Registry, opener: Open) -> None:
    """A router-signed note whose time has no UTC form in the years 1 to 9999 is BAD_DATA_KEY (was an
    OverflowError while checking the time's canonical form)."""
    d = sealer.seal(events[0], permit(RECIPIENT, TYPE, FIELDS))
    note = dict(d.headers)["ce_exdatakey"].decode()
    wrap = DataKeyWrap.parse(note.rpartition("\n\n")[0] + "\n")
    forged = sign_note(dataclasses.replace(wrap, created=created).text(), [keys.signers["exchange-router"]])
    headers = [(n, forged.encode() if n == "ce_exdatakey" else v) for n, v in d.headers]
    with pytest.raises(BadDataKeyError, match="not well-formed"):
        _open(opener(RECIPIENT), d._replace(headers=headers))


@pytest.mark.parametrize("time", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_a_ce_time_outside_utc_years_is_a_bad_disclosure(time: str, events: list[VerifiedEvent],
                                                         sealer: DeliverySealer, keys: Keys, registry: Registry,
                                                         opener: Open) -> None:
    """A disclosure (under a genuine data key) whose ce_time has no UTC form is BAD_DISCLOSURE, not an
    OverflowError from the registry's key-validity check."""
    decision = permit(RECIPIENT, TYPE, FIELDS)
    d = sealer.seal(events[0], decision)
    disclosure = minimise(events[0], decision, PSEUDO)
    forged = dataclasses.replace(disclosure, attributes=dataclasses.replace(disclosure.attributes, time=time))
    headers = [(n, time.encode() if n == "ce_time" else v) for n, v in d.headers]
    sealed = reseal(d, forged.encode(), registry, keys.encryption[RECIPIENT], headers)
    with pytest.raises(BadDisclosureError, match="years 1 to 9999"):
        _open(opener(RECIPIENT), sealed)
