"""Fuzzing the opener: whatever a hostile record holds, ``DeliveryOpener.open`` returns a verified delivery or
raises an OpenError subclass — never anything else, never after echoing a huge input, and a record over a bound
is refused as malformed before any work.

Two attackers: one who writes records to the delivery topic (headers, key, value and timestamp of genuine
deliveries, mutated), and one who holds a data key (a compromised router) and so gets arbitrary plaintext past
the AES-GCM tag, to the disclosure decoder and the publisher-signature checks.

Each fuzz test runs ``EXCHANGE_FUZZ_EXAMPLES`` examples (default 200, under a second each).
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exchange.delivery import (
    DeliveryOpener,
    DeliverySealer,
    Disclosed,
    Disclosure,
    MalformedDeliveryError,
    OpenError,
    SealedDelivery,
    Withheld,
    minimise,
)
from exchange.delivery.wire import HEADER_LIMITS, MAX_KEY_SIZE, MAX_VALUE_SIZE
from exchange.envelope import VerifiedEvent
from exchange.registry import Registry
from exchange.schemas import Catalogue
from tests.unit.delivery.support import PSEUDO, T0, Keys, permit, reseal, signed_events

TYPE = "population.address-changed"
FIELDS = ("person_id", "postal_code", "municipality_code", "moved_on")
RECIPIENT = "municipal-services"
KIB = 1024
T0_MS = int(T0.timestamp() * 1000)
YEAR_10000_MS = 253_402_300_800_000
"""The first millisecond of the year 10000: no datetime holds it."""
Headers = list[tuple[str, bytes]]
EXAMPLES = int(os.environ.get("EXCHANGE_FUZZ_EXAMPLES", "200"))
"""Examples per fuzz test: few enough for the unit suite; raise it for a longer hunt."""
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class World:
    """Genuine deliveries to fuzz, and what opens them (a plain class: hypothesis prints it by its short repr)."""

    def __init__(self, keys: Keys, registry: Registry, catalogue: Catalogue, events: list[VerifiedEvent],
                 deliveries: list[SealedDelivery]) -> None:
        self.keys, self.registry, self.catalogue, self.events = keys, registry, catalogue, events
        self.deliveries = deliveries
        """Genuine deliveries to RECIPIENT: plain, pseudonymised, another agreement; then one to police-board."""
        self.interesting = sorted({raw for d in deliveries for raw in (d.key, d.value, *(v for _, v in d.headers))})
        """Every header value, key and value of those deliveries: material for splicing."""

    def opener(self) -> DeliveryOpener:
        return DeliveryOpener(RECIPIENT, self.keys.encryption[RECIPIENT], self.registry, self.catalogue)

    def __repr__(self) -> str:  # short: hypothesis prints the arguments of a failing example
        return f"World({len(self.deliveries)} deliveries of {TYPE})"


@pytest.fixture(scope="module")
def world(catalogue: Catalogue, keys: Keys, registry: Registry) -> World:
    events = signed_events(catalogue, keys, registry, TYPE, n=3)
    sealer = DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO, clock=T0.timestamp)
    deliveries = [sealer.seal(events[0], permit(RECIPIENT, TYPE, FIELDS)),
                  sealer.seal(events[1], permit(RECIPIENT, TYPE, FIELDS, pseudonymise=True)),
                  sealer.seal(events[2], permit(RECIPIENT, TYPE, FIELDS[1:], agreement="other", version=1)),
                  sealer.seal(events[0], permit("police-board", TYPE, FIELDS))]
    return World(keys, registry, catalogue, events, deliveries)


# -- strategies --------------------------------------------------------------------------------------------------

def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _spliced(base: bytes, data: st.DataObject) -> bytes:
    """``base`` with one edit: a flipped byte, a cut, an insertion or a repetition."""
    if not base:
        return data.draw(st.binary(max_size=16))
    i = data.draw(st.integers(0, len(base) - 1))
    edit = data.draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
    if edit == "flip":
        return base[:i] + bytes([base[i] ^ data.draw(st.integers(1, 255))]) + base[i + 1:]
    if edit == "cut":
        return base[:i]
    if edit == "insert":
        return base[:i] + data.draw(st.binary(min_size=1, max_size=32)) + base[i:]
    return base * data.draw(st.integers(2, (100 * KIB) // len(base) + 2))


def payload(data: st.DataObject, base: bytes, world: World) -> bytes:
    """Bytes to put where ``base`` was: small random, long (to 100 KiB, around the u16 bound), text, another
    genuine part, or ``base`` spliced."""
    kind = data.draw(st.sampled_from(["small", "long", "bound", "text", "genuine", "spliced"]))
    if kind == "small":
        return data.draw(st.binary(max_size=64))
    if kind == "long":
        return _random_bytes(data.draw(st.integers(0, 100 * KIB)), data.draw(st.integers(0, 2**16)))
    if kind == "bound":
        n = data.draw(st.sampled_from([35, 36, 37, 255, 256, 257, 2048, 2049, 65_535, 65_536, 65_537, 100 * KIB]))
        return bytes([data.draw(st.integers(0, 255))]) * n
    if kind == "text":
        return data.draw(st.text(max_size=80)).encode()
    if kind == "genuine":
        return world.interesting[data.draw(st.integers(0, len(world.interesting) - 1))]
    return _spliced(base, data)


NAMES = sorted(HEADER_LIMITS)
TIMESTAMPS = st.one_of(
    st.sampled_from([0, -1, -(2**63), 2**63 - 1, T0_MS, T0_MS - 1, T0_MS + 3_600_000, T0_MS + 3_600_001,
                     T0_MS - 900_001, YEAR_10000_MS - 1, YEAR_10000_MS, YEAR_10000_MS * 1000, 10**30, -(10**30)]),
    st.integers(min_value=-(2**64), max_value=2**64),
)


def mutate(data: st.DataObject, d: SealedDelivery, world: World) -> tuple[bytes | None, bytes | None, Headers, int]:
    key: bytes | None = d.key
    value: bytes | None = d.value
    headers: Headers = list(d.headers)
    timestamp = T0_MS
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "drop", "repeat", "add", "shuffle", "key", "value", "timestamp"]))
        if op in ("set", "drop", "repeat") and headers:
            i = data.draw(st.integers(0, len(headers) - 1))
            name, raw = headers[i]
            if op == "set":
                headers[i] = (name, payload(data, raw, world))
            elif op == "drop":
                del headers[i]
            else:
                again = raw if data.draw(st.booleans()) else payload(data, raw, world)
                headers.insert(data.draw(st.integers(0, len(headers))), (name, again))
        elif op == "add":
            name = data.draw(st.one_of(st.sampled_from(NAMES), st.text(max_size=40)))
            if data.draw(st.booleans()):
                name *= data.draw(st.integers(1, 100 * KIB)) // max(1, len(name))
            headers.append((name, payload(data, b"", world)))
        elif op == "shuffle":
            headers = [headers[j] for j in data.draw(st.permutations(range(len(headers))))]
        elif op == "key":
            key = None if data.draw(st.booleans()) else payload(data, d.key, world)
        elif op == "value":
            value = None if data.draw(st.booleans()) else payload(data, d.value, world)
        elif op == "timestamp":
            timestamp = data.draw(TIMESTAMPS)
    return key, value, headers, timestamp


def open_or_refuse(opener: DeliveryOpener, key: bytes | None, value: bytes | None, headers: Headers, topic: str,
                   timestamp_ms: int) -> OpenError | None:
    """None if the record opens; its OpenError if refused. Anything else fails the test where it is raised."""
    error: OpenError | None = None
    try:
        opener.open(key, value, headers, topic, timestamp_ms=timestamp_ms)
    except OpenError as exc:
        error = exc
    if error is not None:
        assert error.reason != "INTERNAL"
        assert len(str(error)) < 5000, "an error message must not echo a long input"
    return error


def _outcome(error: OpenError | None) -> str:
    """How far a record got, for ``--hypothesis-show-statistics``."""
    return "opened" if error is None else error.reason


def over_a_bound(key: bytes | None, value: bytes | None, headers: Headers) -> bool:
    return (len(key or b"") > MAX_KEY_SIZE or len(value or b"") > MAX_VALUE_SIZE
            or any(len(raw) > HEADER_LIMITS.get(name, -1) >= 0 for name, raw in headers))


# -- the record writer ---------------------------------------------------------------------------------------------

def test_the_genuine_deliveries_open(world: World) -> None:
    """The fuzzed material is sound: unchanged, the recipient's deliveries open at their time and the police's
    does not (so every refusal below is the mutation's doing)."""
    opener = world.opener()
    for d in world.deliveries[:3]:
        assert open_or_refuse(opener, d.key, d.value, d.headers, d.topic, T0_MS) is None
    d = world.deliveries[3]
    assert open_or_refuse(opener, d.key, d.value, d.headers, d.topic, T0_MS) is not None


@FUZZ
@given(data=st.data())
def test_mutated_records_open_or_raise_open_errors(world: World, data: st.DataObject) -> None:
    """Mutated headers (values to 100 KiB, random bytes, repeated, missing, unknown, reordered), key, value and
    timestamp: the opener returns or raises an OpenError; over a length bound it is MALFORMED_DELIVERY."""
    d = world.deliveries[data.draw(st.integers(0, len(world.deliveries) - 1))]
    key, value, headers, timestamp = mutate(data, d, world)
    error = open_or_refuse(world.opener(), key, value, headers, d.topic, timestamp)
    event(_outcome(error))
    if over_a_bound(key, value, headers):
        assert isinstance(error, MalformedDeliveryError)
    if key is None or value is None:
        assert isinstance(error, MalformedDeliveryError)


@FUZZ
@given(data=st.data(), timestamp=TIMESTAMPS)
def test_any_timestamp_is_judged(world: World, data: st.DataObject, timestamp: int) -> None:
    """An unchanged delivery at any broker timestamp: opens within the data key's age (or with none, ≤ 0), is
    refused as BAD_DATA_KEY otherwise — year 0, 9999 or 10000 alike."""
    d = world.deliveries[data.draw(st.integers(0, 2))]
    error = open_or_refuse(world.opener(), d.key, d.value, d.headers, d.topic, timestamp)
    # The data key was made at T0: usable from 15 minutes (the skew) before to an hour (its age) after.
    if timestamp <= 0 or T0_MS - 15 * 60_000 <= timestamp <= T0_MS + 60 * 60_000:
        assert error is None
    else:
        assert error is not None
        assert error.reason == "BAD_DATA_KEY"


# -- the data-key holder -----------------------------------------------------------------------------------------

TIMES = st.one_of(
    st.sampled_from(["0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "0001-01-01T00:30:00+01:00",
                     "9999-12-31T23:30:00-01:00", "2026-06-01T12:00:00", "2026-13-01T00:00:00Z", "", "now"]),
    st.builds(lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
              st.datetimes(), st.integers(-23 * 60, 23 * 60)),
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
)


def _entry(data: st.DataObject, world: World) -> Disclosed | Withheld:
    if data.draw(st.booleans()):
        return Withheld(data.draw(st.binary(min_size=32, max_size=32)))
    return Disclosed(data.draw(st.binary(min_size=16, max_size=16)), payload(data, b"", world)[:4 * KIB])


def forge(data: st.DataObject, disclosure: Disclosure, world: World) -> tuple[Disclosure, dict[str, str]]:
    """A changed disclosure, and the headers to change with it (so the header checks pass)."""
    part = data.draw(st.sampled_from(["note", "proof", "field", "fields", "key", "time", "dataschema", "source",
                                      "type", "pseudonym", "agreement"]))
    if part == "note":
        note = data.draw(st.text(max_size=300)) if data.draw(st.booleans()) else disclosure.note
        lines = note.split("\n")
        if len(lines) > 1 and data.draw(st.booleans()):
            lines[data.draw(st.integers(0, len(lines) - 1))] = data.draw(st.text(max_size=80))
        return dataclasses.replace(disclosure, note="\n".join(lines)), {}
    if part == "proof":
        return dataclasses.replace(disclosure, proof=payload(data, disclosure.proof, world)[:4 * KIB]), {}
    if part == "key":
        return dataclasses.replace(disclosure, key=_entry(data, world)), {}
    if part == "field":
        i = data.draw(st.integers(0, len(disclosure.fields) - 1))
        one = (*disclosure.fields[:i], _entry(data, world), *disclosure.fields[i + 1:])
        return dataclasses.replace(disclosure, fields=one), {}
    if part == "fields":
        fields = tuple(_entry(data, world) for _ in range(data.draw(st.integers(0, 12))))
        return dataclasses.replace(disclosure, fields=fields), {}
    if part == "pseudonym":
        return dataclasses.replace(disclosure, subject_pseudonym=data.draw(st.none() | st.text(max_size=40))), {}
    if part == "agreement":
        agreement_id = data.draw(st.text(min_size=1, max_size=40))
        version = data.draw(st.integers(0, 2**32 - 1))
        return (dataclasses.replace(disclosure, agreement_id=agreement_id, agreement_version=version),
                {"ce_exagreement": f"{agreement_id}:{version}"})
    text = data.draw(TIMES) if part == "time" else data.draw(st.text(min_size=1, max_size=120).filter(
        lambda s: "\n" not in s))
    attribute = {"time": "time", "dataschema": "dataschema", "source": "source", "type": "type"}[part]
    attributes = dataclasses.replace(disclosure.attributes, **{attribute: text})
    header = {"time": "ce_time", "source": "ce_source", "type": "ce_type"}.get(part)
    return dataclasses.replace(disclosure, attributes=attributes), ({header: text} if header else {})


@FUZZ
@given(data=st.data())
def test_forged_plaintexts_open_or_raise_open_errors(world: World, data: st.DataObject) -> None:
    """Arbitrary plaintext under a genuine data key — bytes spliced into the disclosure, or a disclosure with a
    changed note, proof, entries, attributes, pseudonym or agreement (headers changed to match) — is refused with
    an OpenError (or, when nothing really changed, opens)."""
    i = data.draw(st.integers(0, 1))
    d = world.deliveries[i]
    decisions = {0: permit(RECIPIENT, TYPE, FIELDS), 1: permit(RECIPIENT, TYPE, FIELDS, pseudonymise=True)}
    disclosure = minimise(world.events[i], decisions[i], PSEUDO)
    headers = list(d.headers)
    if data.draw(st.booleans()):
        plaintext = payload(data, disclosure.encode(), world)
    else:
        forged, changed = forge(data, disclosure, world)
        plaintext = forged.encode()
        headers = [(n, changed[n].encode() if n in changed else v) for n, v in headers]
    sealed = reseal(d, plaintext, world.registry, world.keys.encryption[RECIPIENT], headers)
    event(_outcome(open_or_refuse(world.opener(), sealed.key, sealed.value, sealed.headers, sealed.topic, T0_MS)))


@pytest.mark.parametrize("build", [
    lambda d: d.value[:1] + b"\x00" * 12,  # no room for a tag
    lambda d: b"\x02" + d.value[1:],  # another value version
    lambda d: b"\x01" * (MAX_VALUE_SIZE + 1),
])
def test_values_that_are_not_sealed_deliveries(world: World, build: Callable[[SealedDelivery], bytes]) -> None:
    """A value too short, of another version or over the bound is malformed, checked before the data key."""
    d = world.deliveries[0]
    error = open_or_refuse(world.opener(), d.key, build(d), d.headers, d.topic, T0_MS)
    assert isinstance(error, MalformedDeliveryError)
