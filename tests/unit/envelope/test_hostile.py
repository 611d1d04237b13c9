"""Hostile records against the verifier: bounded headers and keys, the key's shape, the id's time, canonical
base64 — and a fuzz test that whatever a record holds, the verifier answers or raises a VerificationError."""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.crypto.keys import Signer
from exchange.envelope import (
    BadKeyError,
    EnvelopeVerifier,
    MalformedEnvelopeError,
    OversizedRecordError,
    TimeSkewError,
    VerificationError,
    prepare,
    seal_events,
    uuid7,
)
from exchange.envelope.attributes import HEADER_LIMITS, uuid7_ms
from exchange.envelope.build import Envelope
from exchange.envelope.verify import KEY_LIMIT, VALUE_LIMIT
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.unit.envelope.conftest import T0, RegistryFactory

PERSON_TYPE = "population.address-changed"
RECORD_TYPE = "business.company-registered"
T0_MS = int(T0.timestamp() * 1000)


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int = T0_MS


def _signed(catalogue: Catalogue, signer: Signer, record_type: str, key: bytes | None = None,
            event_id: str | None = None) -> Envelope:
    record = sample_record(record_type, random.Random(3))
    schema = catalogue.current(record_type)
    if key is None:
        key = (b"0" * 32) if schema.key_kind == "person" else record[schema.key_field].encode()
    source = signer.name
    (envelope,) = seal_events(source, [prepare(schema, record, source=source, key=key, now=T0,
                                               event_id=event_id)], signer)
    return envelope


def _rec(envelope: Envelope, **changes: object) -> Rec:
    return replace(Rec(envelope.key, envelope.value, list(envelope.headers)), **changes)


def _headers(envelope: Envelope, name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in envelope.headers]


@pytest.fixture
def verifier(catalogue: Catalogue, make_registry: RegistryFactory) -> EnvelopeVerifier:
    return EnvelopeVerifier(make_registry(), catalogue)


def test_binary_attributes_travel_as_canonical_base64(catalogue: Catalogue, signers: dict[str, Signer],
                                                     verifier: EnvelopeVerifier) -> None:
    """ce_exseed and ce_exproof are base64 text; a non-canonical spelling of the same bytes is refused."""
    envelope = _signed(catalogue, signers["population-registry"], PERSON_TYPE)
    seed = dict(envelope.headers)["ce_exseed"]
    assert len(base64.b64decode(seed, validate=True)) == 32
    verifier.verify(_rec(envelope))
    raw = base64.b64decode(seed)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(seed[42])  # its two low bits are unused: setting one spells the same bytes otherwise
    same_bytes = seed[:42] + bytes([alphabet[last | 1 if last % 2 == 0 else last & ~1]]) + b"="
    assert base64.b64decode(same_bytes) == raw
    for bad in (raw, seed.rstrip(b"="), seed[:-2] + b"\n=", b"-" + seed[1:], same_bytes):
        with pytest.raises(MalformedEnvelopeError, match="ce_exseed"):
            verifier.verify(_rec(envelope, headers=_headers(envelope, "ce_exseed", bad)))


def test_every_header_is_bounded_before_any_work(catalogue: Catalogue, signers: dict[str, Signer],
                                                 verifier: EnvelopeVerifier) -> None:
    """A header one byte over its bound is refused by name, and a 3 MiB proof as fast as a short one."""
    envelope = _signed(catalogue, signers["population-registry"], PERSON_TYPE)
    for name, limit in HEADER_LIMITS.items():
        headers = [*envelope.headers, (name, b"x" * (limit + 1))] if name not in dict(envelope.headers) \
            else _headers(envelope, name, b"x" * (limit + 1))
        with pytest.raises(MalformedEnvelopeError, match=name):
            verifier.verify(_rec(envelope, headers=headers))
    huge = _rec(envelope, headers=_headers(envelope, "ce_exproof", b"A" * 3 * 1024 * 1024))
    started = time.perf_counter()
    for _ in range(100):
        with pytest.raises(MalformedEnvelopeError, match="at most"):
            verifier.verify(huge)
    assert (time.perf_counter() - started) / 100 < 0.005  # refused by its length, not after decoding


def test_the_key_is_bounded_and_has_its_kinds_shape(catalogue: Catalogue, signers: dict[str, Signer],
                                                    verifier: EnvelopeVerifier) -> None:
    """A genuinely signed event whose key is 70,000 bytes, or is no pseudonym, or is not the record's key field,
    is BAD_KEY; a value over the limit is OVERSIZED."""
    population, business = signers["population-registry"], signers["business-register"]
    for key in (b"k" * 70_000, b"k" * (KEY_LIMIT + 1), b"A" * 32, b"0" * 31, b"0" * 33):
        with pytest.raises(BadKeyError):
            verifier.verify(_rec(_signed(catalogue, population, PERSON_TYPE, key=key)))
    with pytest.raises(BadKeyError, match="record's"):
        verifier.verify(_rec(_signed(catalogue, business, RECORD_TYPE, key=b"someone-else")))
    verifier.verify(_rec(_signed(catalogue, business, RECORD_TYPE)))
    envelope = _signed(catalogue, population, PERSON_TYPE)
    with pytest.raises(OversizedRecordError):
        verifier.verify(_rec(envelope, value=(envelope.value or b"") + bytes(VALUE_LIMIT)))


def test_the_id_is_a_uuid7_whose_time_agrees_with_ce_time(catalogue: Catalogue, signers: dict[str, Signer],
                                                          verifier: EnvelopeVerifier) -> None:
    signer = signers["population-registry"]
    verifier.verify(_rec(_signed(catalogue, signer, PERSON_TYPE, event_id=uuid7(T0_MS + 999))))
    for event_id in (uuid7(T0_MS + 1001), uuid7(T0_MS - 60_000), "not-a-uuid", uuid7(T0_MS).upper(),
                     "0" * 8 + "-0000-4000-8000-" + "0" * 12):
        with pytest.raises(MalformedEnvelopeError, match="ce_id"):
            verifier.verify(_rec(_signed(catalogue, signer, PERSON_TYPE, event_id=event_id)))
    assert uuid7_ms(uuid7(T0_MS)) == T0_MS


def test_any_timestamp_is_judged_without_an_escape(catalogue: Catalogue, signers: dict[str, Signer],
                                                   verifier: EnvelopeVerifier) -> None:
    """Timestamps far outside the datetime range (a 3.x broker accepts them) are TIME_SKEW, never ValueError."""
    envelope = _signed(catalogue, signers["population-registry"], PERSON_TYPE)
    for stamp in (253_402_300_800_000 + 1, 2**62, T0_MS + 3 * 60_000):
        with pytest.raises(TimeSkewError):
            verifier.verify(_rec(envelope, timestamp_ms=stamp))
    assert verifier.max_skew == timedelta(minutes=2)


_NAMES = st.sampled_from([*HEADER_LIMITS, "x-other", "ce_extra"])
_BLOBS = st.one_of(st.binary(max_size=64), st.builds(lambda n, b: b * n, st.integers(0, 100_000), st.binary(
    min_size=1, max_size=2)))


@st.composite
def _mutations(draw: st.DrawFn, envelope: Envelope) -> Rec:
    headers = list(envelope.headers)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add", "flip"]))
        if action == "replace" and headers:
            i = draw(st.integers(0, len(headers) - 1))
            headers[i] = (headers[i][0], draw(_BLOBS))
        elif action == "drop" and headers:
            headers.pop(draw(st.integers(0, len(headers) - 1)))
        elif action == "add":
            headers.append((draw(_NAMES), draw(_BLOBS)))
        elif headers:
            i = draw(st.integers(0, len(headers) - 1))
            name, value = headers[i]
            if value:
                j = draw(st.integers(0, len(value) - 1))
                headers[i] = (name, value[:j] + bytes([value[j] ^ draw(st.integers(1, 255))]) + value[j + 1:])
    key = draw(st.one_of(st.just(envelope.key), st.none(), _BLOBS))
    value = draw(st.one_of(st.just(envelope.value), st.none(), _BLOBS,
                           st.builds(lambda cut: (envelope.value or b"")[:cut], st.integers(0, 200))))
    stamp = draw(st.one_of(st.just(T0_MS), st.integers(-(2**63), 2**63 - 1)))
    return Rec(key, value, headers, stamp)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_whatever_a_record_holds_the_verifier_answers_or_names_the_check(
        catalogue: Catalogue, signers: dict[str, Signer], verifier: EnvelopeVerifier, data: st.DataObject) -> None:
    envelope = _signed(catalogue, signers["population-registry"], PERSON_TYPE)
    record = data.draw(_mutations(envelope))
    assert _judge(verifier, record) in _REASONS


def _judge(verifier: EnvelopeVerifier, record: Rec) -> str:
    """``"ok"`` or the reason code of the check that failed; any other exception escapes and fails the test."""
    try:
        verifier.verify(record)
    except VerificationError as error:
        return error.reason
    return "ok"


def _reasons(cls: type[VerificationError]) -> set[str]:
    return {cls.reason}.union(*(_reasons(sub) for sub in cls.__subclasses__()))


_REASONS = {"ok"} | _reasons(VerificationError)
