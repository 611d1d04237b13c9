"""Signed envelopes: built by a publisher, verified by the router; every tampering is caught by name."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from exchange.crypto.keys import Signer
from exchange.envelope import (
    BadDatumError,
    BadSignatureError,
    EnvelopeVerifier,
    KeyExpiredError,
    KeyNotYetValidError,
    KeyRevokedError,
    MalformedEnvelopeError,
    NotAuthoritativeError,
    Pseudonymiser,
    SchemaMismatchError,
    TimeSkewError,
    UnknownKeyError,
    UnknownSchemaError,
    UnknownSourceError,
    VerificationError,
    VerifiedEvent,
    prepare,
    seal_events,
    verify,
)
from exchange.envelope.build import Envelope
from exchange.envelope.commitments import commitments, derive_salts
from exchange.registry import Registry
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.unit.envelope.conftest import T0, RegistryFactory

PSEUDO = Pseudonymiser(b"test-secret-of-the-exchange-0001")


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int = 0


def _records(catalogue: Catalogue, signer: Signer, record_type: str = "population.address-changed", n: int = 4,
             source: str = "population-registry", seed: int = 7) -> list[Envelope]:
    rng = random.Random(seed)
    schema = catalogue.current(record_type)
    events = []
    for i in range(n):
        record = sample_record(record_type, rng)
        key = PSEUDO.subject(record[schema.key_field]).encode()
        events.append(prepare(schema, record, source=source, key=key, now=T0 + timedelta(seconds=i)))
    return seal_events(source, events, signer)


def _rec(env: Envelope) -> Rec:
    return Rec(env.key, env.value, list(env.headers), int(T0.timestamp() * 1000))


def test_a_batch_verifies_and_decodes(catalogue: Catalogue, signers: dict[str, Signer],
                                      make_registry: RegistryFactory) -> None:
    """Every event of a signed batch verifies and yields the record that was published."""
    rng = random.Random(7)
    originals = [sample_record("population.address-changed", rng) for _ in range(4)]
    verifier = EnvelopeVerifier(make_registry(), catalogue)
    for env, original in zip(_records(catalogue, signers["population-registry"]), originals, strict=True):
        event = verifier.verify(_rec(env))
        assert event.record == original
        assert event.attributes.source == "population-registry"
        assert event.attributes.type == "population.address-changed"
        assert event.signer_key_id == signers["population-registry"].key_id
        assert env.topic == "ingress.population.address-changed"


def test_batch_of_one_is_a_plain_signature(catalogue: Catalogue, signers: dict[str, Signer],
                                           make_registry: RegistryFactory) -> None:
    """A batch of size 1 has an empty proof and verifies."""
    (env,) = _records(catalogue, signers["population-registry"], n=1)
    assert base64.b64decode(dict(env.headers)["ce_exproof"]) == (0).to_bytes(4, "big") + (1).to_bytes(4, "big")
    verify(_rec(env), make_registry(), catalogue)


def test_no_personal_data_in_key_or_headers(catalogue: Catalogue, signers: dict[str, Signer]) -> None:
    """The person id appears neither in the Kafka key nor in any header."""
    rng = random.Random(7)
    person = sample_record("population.address-changed", rng)["person_id"]
    (env, *_) = _records(catalogue, signers["population-registry"])
    assert person.encode() not in env.key
    assert all(person.encode() not in value for _, value in env.headers)


def test_flipping_any_byte_fails_verification(catalogue: Catalogue, signers: dict[str, Signer],
                                              make_registry: RegistryFactory) -> None:
    """Any single flipped byte of the key, of any header's name or value, or of the value is rejected."""
    env = _records(catalogue, signers["population-registry"], n=3)[1]
    verifier = EnvelopeVerifier(make_registry(), catalogue)
    verifier.verify(_rec(env))
    tampered = 0
    for i in range(len(env.key)):
        key = bytearray(env.key)
        key[i] ^= 0x01
        with pytest.raises(VerificationError):
            verifier.verify(Rec(bytes(key), env.value, list(env.headers)))
        tampered += 1
    for i in range(len(env.value)):
        value = bytearray(env.value)
        value[i] ^= 0x01
        with pytest.raises(VerificationError):
            verifier.verify(Rec(env.key, bytes(value), list(env.headers)))
        tampered += 1
    for h, (name, raw) in enumerate(env.headers):
        for i in range(len(raw)):
            flipped = bytearray(raw)
            flipped[i] ^= 0x01
            headers = list(env.headers)
            headers[h] = (name, bytes(flipped))
            with pytest.raises(VerificationError):
                verifier.verify(Rec(env.key, env.value, headers))
            tampered += 1
        headers = list(env.headers)
        headers[h] = (name[:-1] + chr(ord(name[-1]) ^ 1), raw)
        with pytest.raises(MalformedEnvelopeError):
            verifier.verify(Rec(env.key, env.value, headers))
    assert tampered > 500


@pytest.mark.parametrize(("revoked", "passes"), [(T0 - timedelta(minutes=1), False), (T0 + timedelta(days=1), True)])
def test_revocation_applies_from_its_time(catalogue: Catalogue, signers: dict[str, Signer],
                                          make_registry: RegistryFactory, revoked: datetime, passes: bool) -> None:
    """A key revoked before the event's time fails with KeyRevokedError; one revoked after it still verifies."""
    (env,) = _records(catalogue, signers["population-registry"], n=1)
    registry = make_registry(**{"population-registry": {"revoked_at": revoked.isoformat()}})
    if passes:
        verify(_rec(env), registry, catalogue)
    else:
        with pytest.raises(KeyRevokedError, match="revoked"):
            verify(_rec(env), registry, catalogue)


def test_key_validity_window(catalogue: Catalogue, signers: dict[str, Signer], make_registry: RegistryFactory) -> None:
    """A key not valid yet, or expired, at the event's time is refused with the matching error."""
    (env,) = _records(catalogue, signers["population-registry"], n=1)
    future = make_registry(**{"population-registry": {"valid_from": (T0 + timedelta(hours=1)).isoformat()}})
    with pytest.raises(KeyNotYetValidError):
        verify(_rec(env), future, catalogue)
    expired = make_registry(**{"population-registry": {"valid_until": (T0 - timedelta(hours=1)).isoformat()}})
    with pytest.raises(KeyExpiredError):
        verify(_rec(env), expired, catalogue)


def test_unknown_key_is_refused(catalogue: Catalogue, signers: dict[str, Signer],
                                make_registry: RegistryFactory) -> None:
    """A batch signed by a key the registry does not list is refused (fail closed)."""
    (env,) = _records(catalogue, Signer.generate("population-registry"), n=1)
    with pytest.raises(UnknownKeyError):
        verify(_rec(env), make_registry(), catalogue)
    (env,) = _records(catalogue, signers["population-registry"], n=1)
    with pytest.raises(UnknownKeyError):
        verify(_rec(env), make_registry(**{"population-registry": None}), catalogue)


def test_source_must_be_authoritative(catalogue: Catalogue, signers: dict[str, Signer],
                                      make_registry: RegistryFactory) -> None:
    """The tax board signing population events with its own valid key is refused as not authoritative."""
    (env,) = _records(catalogue, signers["tax-board"], source="tax-board", n=1)
    with pytest.raises(NotAuthoritativeError):
        verify(_rec(env), make_registry(), catalogue)


def test_unknown_source_is_refused(catalogue: Catalogue, make_registry: RegistryFactory) -> None:
    """An agency the registry does not know cannot publish."""
    (env,) = _records(catalogue, Signer.generate("rogue-agency"), source="rogue-agency", n=1)
    with pytest.raises(UnknownSourceError):
        verify(_rec(env), make_registry(), catalogue)


def test_signature_by_another_agency_fails(catalogue: Catalogue, signers: dict[str, Signer],
                                           make_registry: RegistryFactory) -> None:
    """A note claiming population-registry but signed by the tax board's key is refused."""
    (env,) = _records(catalogue, Signer("population-registry", signers["tax-board"]._private), n=1)
    with pytest.raises((UnknownKeyError, BadSignatureError)):
        verify(_rec(env), make_registry(), catalogue)


def test_datum_errors(catalogue: Catalogue, signers: dict[str, Signer], make_registry: RegistryFactory) -> None:
    """Garbage, an unknown fingerprint and a datum of another type are rejected by name."""
    (env,) = _records(catalogue, signers["population-registry"], n=1)
    registry = make_registry()
    with pytest.raises(BadDatumError):
        verify(Rec(env.key, b"not avro at all", list(env.headers)), registry, catalogue)
    with pytest.raises(UnknownSchemaError):
        verify(Rec(env.key, env.value[:2] + b"\x00" * 8 + env.value[10:], list(env.headers)), registry, catalogue)
    other = catalogue.current("population.death-registered")
    death = other.encode(sample_record("population.death-registered", random.Random(1)))
    with pytest.raises(SchemaMismatchError):
        verify(Rec(env.key, death, list(env.headers)), registry, catalogue)
    with pytest.raises(BadDatumError, match="trailing"):
        verify(Rec(env.key, env.value + b"\x00", list(env.headers)), registry, catalogue)
    # The person id's length as a two-byte varint: it decodes to the same record, so without the canonical
    # check the signature would still verify over bytes the publisher never wrote.
    length = env.value[10]
    assert length < 0x80
    padded = env.value[:10] + bytes([length | 0x80, 0x00]) + env.value[11:]
    with pytest.raises(BadDatumError, match="canonical"):
        verify(Rec(env.key, padded, list(env.headers)), registry, catalogue)


def test_envelope_shape_errors(catalogue: Catalogue, signers: dict[str, Signer],
                               make_registry: RegistryFactory) -> None:
    """Missing, repeated and unexpected headers, and a missing key, are malformed envelopes."""
    (env,) = _records(catalogue, signers["population-registry"], n=1)
    registry = make_registry()
    with pytest.raises(MalformedEnvelopeError, match="missing"):
        verify(Rec(env.key, env.value, env.headers[:-1]), registry, catalogue)
    with pytest.raises(MalformedEnvelopeError, match="twice"):
        verify(Rec(env.key, env.value, [*env.headers, env.headers[0]]), registry, catalogue)
    with pytest.raises(MalformedEnvelopeError, match="unexpected header"):
        verify(Rec(env.key, env.value, [*env.headers, ("x-person", b"123")]), registry, catalogue)
    with pytest.raises(MalformedEnvelopeError, match="no key"):
        verify(Rec(None, env.value, list(env.headers)), registry, catalogue)


def test_time_skew_against_the_broker(catalogue: Catalogue, signers: dict[str, Signer],
                                      make_registry: RegistryFactory) -> None:
    """An event whose ce_time is far from the broker's timestamp is refused (a backdated event)."""
    (env,) = _records(catalogue, signers["population-registry"], n=1)
    late = int((T0 + timedelta(hours=2)).timestamp() * 1000)
    with pytest.raises(TimeSkewError):
        verify(Rec(env.key, env.value, list(env.headers), late), make_registry(), catalogue)


# -- what the verifier remembers never changes a verdict ------------------------------------------------------

Outcome = tuple[str, str] | VerifiedEvent


def _outcome(verifier: EnvelopeVerifier, record: Rec) -> Outcome:
    try:
        return verifier.verify(record)
    except VerificationError as exc:
        return type(exc).__name__, str(exc)


def _variants(env: Envelope) -> list[Rec]:
    """The record with each byte of its key, value and header values changed (three ways), and headers added."""
    base = _rec(env)
    out = []
    for change in (lambda b: b ^ 0x01, lambda b: b ^ 0x80, lambda b: 0):
        for i in range(len(env.key)):
            key = bytearray(env.key)
            key[i] = change(key[i])
            out.append(Rec(bytes(key), env.value, list(env.headers), base.timestamp_ms))
        for i in range(len(env.value)):
            value = bytearray(env.value)
            value[i] = change(value[i])
            out.append(Rec(env.key, bytes(value), list(env.headers), base.timestamp_ms))
        for h, (name, raw) in enumerate(env.headers):
            for i in range(0, len(raw), 3 if name == "ce_exbatch" else 1):
                flipped = bytearray(raw)
                flipped[i] = change(flipped[i])
                headers = list(env.headers)
                headers[h] = (name, bytes(flipped))
                out.append(Rec(env.key, env.value, headers, base.timestamp_ms))
    out.append(Rec(env.key, env.value[:-1], list(env.headers), base.timestamp_ms))
    out.append(Rec(env.key, env.value + b"\x00", list(env.headers), base.timestamp_ms))
    out.append(Rec(env.key, env.value[:9], list(env.headers), base.timestamp_ms))
    out.append(Rec(env.key, env.value, [*env.headers, ("traceparent", b"00-1-2-01")], base.timestamp_ms))
    out.append(Rec(env.key, env.value, [*env.headers, ("traceparent", b"a"), ("traceparent", b"b")],
                   base.timestamp_ms))
    out.append(Rec(env.key, env.value, list(env.headers), base.timestamp_ms + 16 * 60 * 1000))
    return out


def test_a_warm_verifier_judges_as_a_fresh_one(catalogue: Catalogue, signers: dict[str, Signer],
                                               make_registry: RegistryFactory) -> None:
    """After verifying a batch, every altered copy of one of its records gets the same verdict and message as
    from a verifier that never saw anything."""
    registry = make_registry()
    envs = _records(catalogue, signers["population-registry"], n=4)
    warm = EnvelopeVerifier(registry, catalogue)
    for env in envs[:3]:
        warm.verify(_rec(env))
    refused = 0
    for env in (envs[1], envs[3]):  # one verified before, one whose sibling was
        for record in _variants(env):
            fresh = _outcome(EnvelopeVerifier(registry, catalogue), record)
            assert _outcome(warm, record) == fresh
            refused += not isinstance(fresh, VerifiedEvent)
    assert refused > 1000


def test_skew_is_measured_exactly(catalogue: Catalogue, signers: dict[str, Signer],
                                  make_registry: RegistryFactory) -> None:
    """A broker timestamp exactly the allowed skew away is accepted, one millisecond more is refused."""
    (env,) = _records(catalogue, signers["population-registry"], n=1)
    allowed = timedelta(minutes=15)
    verifier = EnvelopeVerifier(make_registry(), catalogue, max_skew=allowed)
    at = int(T0.timestamp() * 1000)
    limit = int(allowed.total_seconds() * 1000)
    for offset in (limit, -limit):
        verifier.verify(Rec(env.key, env.value, list(env.headers), at + offset))
    for offset in (limit + 1, -limit - 1):
        with pytest.raises(TimeSkewError):
            verifier.verify(Rec(env.key, env.value, list(env.headers), at + offset))
    odd = EnvelopeVerifier(make_registry(), catalogue, max_skew=timedelta(milliseconds=1500, microseconds=1))
    odd.verify(Rec(env.key, env.value, list(env.headers), at + 1500))
    with pytest.raises(TimeSkewError):
        odd.verify(Rec(env.key, env.value, list(env.headers), at + 1501))


def test_verified_events_carry_their_salts_and_field_bytes(catalogue: Catalogue, signers: dict[str, Signer],
                                                           make_registry: RegistryFactory) -> None:
    """An event's salts and field encodings are those its commitments were made from."""
    registry: Registry = make_registry()
    verifier = EnvelopeVerifier(registry, catalogue)
    for env in _records(catalogue, signers["population-registry"], n=3):
        event = verifier.verify(_rec(env))
        names = event.schema.field_names
        assert list(event.salts) == derive_salts(event.seed, len(names) + 1)
        assert list(event.parts) == event.schema.encode_parts(event.record)[1]
        assert b"".join(event.parts) == env.value[10:]
        assert event.commitments == commitments(event.seed, event.key, names, event.parts)
