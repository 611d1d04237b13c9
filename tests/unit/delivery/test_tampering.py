"""Whatever is changed, moved or forged in a delivery, the recipient refuses it with the failed check's error."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest

from exchange.crypto.keys import Signer
from exchange.crypto.note import sign_note
from exchange.delivery import (
    BadDataKeyError,
    BadDisclosureError,
    DecryptFailedError,
    DeliveryOpener,
    DeliverySealer,
    Disclosed,
    HeaderMismatchError,
    MalformedDeliveryError,
    OpenError,
    PublisherKeyError,
    PublisherNotAuthoritativeError,
    PublisherSignatureError,
    SealedDelivery,
    UnknownDeliverySchemaError,
    WrongRecipientError,
    decode_disclosure,
    minimise,
)
from exchange.delivery.datakeys import open_data_key
from exchange.delivery.wire import delivery_aad
from exchange.envelope import VerifiedEvent
from exchange.registry import Registry
from exchange.schemas import Catalogue
from tests.unit.delivery.support import PSEUDO, T0, Keys, permit, signed_events

Open = Callable[[str], DeliveryOpener]
TYPE = "population.address-changed"
FIELDS = ("person_id", "postal_code", "municipality_code", "moved_on")


@pytest.fixture
def events(catalogue: Catalogue, keys: Keys, registry: Registry) -> list[VerifiedEvent]:
    return signed_events(catalogue, keys, registry, TYPE, n=3)


def _open(opener: DeliveryOpener, d: SealedDelivery, **changes: object) -> object:
    d = d._replace(**changes)  # type: ignore[arg-type]  # test-only: the fields are given by name
    return opener.open(d.key, d.value, d.headers, d.topic)


def _with_header(d: SealedDelivery, name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in d.headers]


def test_flipping_any_value_byte_fails(events: list[VerifiedEvent], sealer: DeliverySealer, opener: Open) -> None:
    """Every single-bit flip of the value is refused (malformed version byte, or the GCM tag fails)."""
    d = sealer.seal(events[0], permit("municipal-services", TYPE, FIELDS))
    mine = opener("municipal-services")
    _open(mine, d)
    for i in range(len(d.value)):
        value = bytearray(d.value)
        value[i] ^= 0x01
        with pytest.raises((DecryptFailedError, MalformedDeliveryError)):
            _open(mine, d, value=bytes(value))


def test_flipping_any_data_key_byte_fails(events: list[VerifiedEvent], sealer: DeliverySealer,
                                          opener: Open) -> None:
    """Every single-bit flip of the ce_exdatakey note is refused as a bad data key, and the original still opens."""
    d = sealer.seal(events[0], permit("municipal-services", TYPE, FIELDS))
    mine = opener("municipal-services")
    note = dict(d.headers)["ce_exdatakey"]
    for i in range(len(note)):
        flipped = bytearray(note)
        flipped[i] ^= 0x01
        with pytest.raises(BadDataKeyError):
            _open(mine, d, headers=_with_header(d, "ce_exdatakey", bytes(flipped)))
    _open(mine, d)


def test_flipping_any_other_header_byte_fails(events: list[VerifiedEvent], sealer: DeliverySealer,
                                              opener: Open) -> None:
    """A flipped byte in any other header (or its name) is refused: AAD, header check or header rules."""
    d = sealer.seal(events[0], permit("municipal-services", TYPE, FIELDS))
    mine = opener("municipal-services")
    for h, (name, raw) in enumerate(d.headers):
        if name == "ce_exdatakey":
            continue
        for i in range(len(raw)):
            flipped = bytearray(raw)
            flipped[i] ^= 0x01
            headers = list(d.headers)
            headers[h] = (name, bytes(flipped))
            with pytest.raises((DecryptFailedError, HeaderMismatchError, MalformedDeliveryError)):
                _open(mine, d, headers=headers)
        renamed = list(d.headers)
        renamed[h] = (name + "x", raw)
        with pytest.raises(MalformedDeliveryError):
            _open(mine, d, headers=renamed)


def test_moving_a_record_fails(events: list[VerifiedEvent], sealer: DeliverySealer, opener: Open) -> None:
    """A delivery moved to another topic or key, or given another event's ce_id or agreement, does not decrypt."""
    decision = permit("municipal-services", TYPE, FIELDS)
    first, second = (sealer.seal(e, decision) for e in events[:2])
    other = sealer.seal(events[0], permit("municipal-services", TYPE, FIELDS, agreement="other", version=1))
    mine = opener("municipal-services")
    with pytest.raises(DecryptFailedError):
        _open(mine, first, topic="delivery.police-board")
    with pytest.raises(DecryptFailedError):
        _open(mine, first, key=second.key)
    with pytest.raises(DecryptFailedError):
        _open(mine, first, headers=_with_header(first, "ce_id", dict(second.headers)["ce_id"]))
    with pytest.raises(DecryptFailedError):
        _open(mine, first, headers=_with_header(first, "ce_exagreement", b"other:1"))
    with pytest.raises(HeaderMismatchError):
        _open(mine, first, headers=_with_header(first, "ce_time", dict(second.headers)["ce_time"]))
    with pytest.raises(HeaderMismatchError):
        _open(mine, other, headers=_with_header(other, "ce_expurpose", b"law-enforcement"))


def test_header_rules(events: list[VerifiedEvent], sealer: DeliverySealer, opener: Open) -> None:
    """Missing, repeated or unknown headers and a missing key or value are malformed; trace headers are allowed."""
    d = sealer.seal(events[0], permit("municipal-services", TYPE, FIELDS))
    mine = opener("municipal-services")
    _open(mine, d, headers=[*d.headers, ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
    for headers in (d.headers[1:], [*d.headers, d.headers[0]], [*d.headers, ("x-extra", b"")]):
        with pytest.raises(MalformedDeliveryError):
            _open(mine, d, headers=headers)
    with pytest.raises(MalformedDeliveryError):
        mine.open(None, d.value, d.headers, d.topic)
    with pytest.raises(MalformedDeliveryError):
        mine.open(d.key, None, d.headers, d.topic)


def test_another_recipient_cannot_open(events: list[VerifiedEvent], keys: Keys, registry: Registry,
                                       catalogue: Catalogue, sealer: DeliverySealer, opener: Open) -> None:
    """Police cannot open the municipalities' delivery, nor can a holder of another key of the right name."""
    d = sealer.seal(events[0], permit("municipal-services", TYPE, FIELDS))
    with pytest.raises(WrongRecipientError):
        _open(opener("police-board"), d)
    impostor = type(keys.encryption["municipal-services"]).generate("municipal-services")
    with pytest.raises(WrongRecipientError):
        _open(DeliveryOpener("municipal-services", impostor, registry, catalogue), d)
    police = sealer.seal(events[0], permit("police-board", TYPE, FIELDS))
    swapped = _with_header(d, "ce_exdatakey", dict(police.headers)["ce_exdatakey"])
    with pytest.raises(WrongRecipientError):  # the data-key header of another recipient's delivery
        _open(opener("municipal-services"), d, headers=swapped)
    with pytest.raises(DecryptFailedError):  # the police's own data key does not decrypt another's record
        _open(opener("police-board"), d, headers=swapped)


# -- forgeries by someone who holds the data key (a compromised router): the publisher's signature stops them --

def _reseal(d: SealedDelivery, keys: Keys, registry: Registry, plaintext: bytes, *, key: bytes | None = None,
            headers: list[tuple[str, bytes]] | None = None) -> SealedDelivery:
    h = dict(headers or d.headers)
    data_key = open_data_key(h["ce_exdatakey"], registry, keys.encryption["municipal-services"])
    key = d.key if key is None else key
    nonce = b"\xff" * 12
    aad = delivery_aad(d.topic.encode(), key, h["ce_id"], h["ce_exagreement"], data_key.wrap.key_id.encode())
    return SealedDelivery(d.topic, key, b"\x01" + nonce + data_key.aead.encrypt(nonce, plaintext, aad),
                          headers or d.headers)


def test_forged_values_fail_the_publisher_signature(events: list[VerifiedEvent], keys: Keys, registry: Registry,
                                                    sealer: DeliverySealer, opener: Open) -> None:
    """A changed disclosed value, or an invented value for a withheld field, breaks the publisher's signature."""
    event = events[0]
    decision = permit("municipal-services", TYPE, FIELDS)
    d = sealer.seal(event, decision)
    mine = opener("municipal-services")
    disclosure = minimise(event, decision, PSEUDO)
    names = event.schema.field_names
    i = names.index("postal_code")
    changed = list(disclosure.fields)
    entry = changed[i]
    assert isinstance(entry, Disclosed)
    changed[i] = Disclosed(entry.salt, event.schema.encode_field("postal_code", "10115"))
    forged = dataclasses.replace(disclosure, fields=tuple(changed)).encode()
    with pytest.raises(PublisherSignatureError):
        _open(mine, _reseal(d, keys, registry, forged))
    j = names.index("street_address")
    invented = list(disclosure.fields)
    invented[j] = Disclosed(b"\x00" * 16, event.schema.encode_field("street_address", "Pikk 1"))
    forged = dataclasses.replace(disclosure, fields=tuple(invented)).encode()
    with pytest.raises(PublisherSignatureError):
        _open(mine, _reseal(d, keys, registry, forged))
    # The untouched disclosure, resealed the same way, opens: the checks above failed on the forgery alone.
    assert _open(mine, _reseal(d, keys, registry, disclosure.encode())) is not None


def test_forged_source_is_not_authoritative(events: list[VerifiedEvent], keys: Keys, registry: Registry,
                                            sealer: DeliverySealer, opener: Open) -> None:
    """An event re-attributed to another agency fails: that agency is not authoritative for the type."""
    decision = permit("municipal-services", TYPE, FIELDS)
    d = sealer.seal(events[0], decision)
    disclosure = minimise(events[0], decision, PSEUDO)
    forged = dataclasses.replace(disclosure, attributes=dataclasses.replace(disclosure.attributes,
                                                                             source="tax-board"))
    headers = _with_header(d, "ce_source", b"tax-board")
    with pytest.raises(PublisherNotAuthoritativeError):
        _open(opener("municipal-services"), _reseal(d, keys, registry, forged.encode(), headers=headers))


def test_key_must_match_the_disclosure(catalogue: Catalogue, keys: Keys, registry: Registry,
                                       sealer: DeliverySealer, opener: Open) -> None:
    """A disclosure delivered under another key (signed key or router pseudonym) is refused as a bad disclosure."""
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    for pseudonymise in (False, True):
        decision = permit("municipal-services", TYPE, FIELDS, pseudonymise=pseudonymise)
        d = sealer.seal(event, decision)
        plaintext = minimise(event, decision, PSEUDO).encode()
        with pytest.raises(BadDisclosureError):
            _open(opener("municipal-services"), _reseal(d, keys, registry, plaintext, key=b"0" * 32))


def test_revoked_publisher_key_is_refused(events: list[VerifiedEvent], keys: Keys, catalogue: Catalogue,
                                          sealer: DeliverySealer) -> None:
    """A recipient whose registry says the publisher's key was revoked before ce_time refuses the delivery."""
    d = sealer.seal(events[0], permit("municipal-services", TYPE, FIELDS))
    revoked = keys.registry(signing={"population-registry": {"revoked_at": (T0 - timedelta(hours=1)).isoformat()}})
    with pytest.raises(PublisherKeyError):
        _open(DeliveryOpener("municipal-services", keys.encryption["municipal-services"], revoked, catalogue), d)


def test_unknown_schema_is_refused(events: list[VerifiedEvent], keys: Keys, registry: Registry,
                                   catalogue: Catalogue, sealer: DeliverySealer) -> None:
    """A recipient whose catalogue lacks the record's schema refuses the delivery."""
    d = sealer.seal(events[0], permit("municipal-services", TYPE, FIELDS))
    smaller = Catalogue.of(s for s in catalogue.schemas() if s.type_name != TYPE)
    with pytest.raises(UnknownDeliverySchemaError):
        _open(DeliveryOpener("municipal-services", keys.encryption["municipal-services"], registry, smaller), d)


def test_errors_carry_reason_codes() -> None:
    """Every open error has a distinct, stable reason code."""
    classes = [c for c in vars(__import__("exchange.delivery.errors", fromlist=["x"])).values()
               if isinstance(c, type) and issubclass(c, OpenError)]
    reasons = [c.reason for c in classes]
    assert len(set(reasons)) == len(reasons)
    assert {"BAD_DATA_KEY", "UNKNOWN_ROUTER_KEY", "DECRYPT_FAILED", "BAD_DISCLOSURE", "PUBLISHER_SIGNATURE",
            "WRONG_RECIPIENT"} <= set(reasons)


def test_malformed_disclosures_are_refused(events: list[VerifiedEvent]) -> None:
    """The disclosure decoder refuses another version, unknown flags or tags, truncation and trailing bytes."""
    good = minimise(events[0], permit("municipal-services", TYPE, FIELDS), PSEUDO).encode()
    assert decode_disclosure(good) is not None
    for bad in (b"\x02" + good[1:], good[:1] + b"\x02" + good[2:], good + b"\x00", good[:-1], b""):
        with pytest.raises(BadDisclosureError):
            decode_disclosure(bad)
    with pytest.raises(BadDisclosureError):  # flagged pseudonymised but carries no pseudonym
        decode_disclosure(good[:1] + b"\x01" + good[2:])


def _note_text(note: str) -> str:
    return note.rpartition("\n\n")[0] + "\n"


@pytest.mark.parametrize(("signer", "error"), [
    ("an unregistered key of the publisher", PublisherKeyError),
    ("another agency's registered key", PublisherSignatureError),
    ("nobody: the note is garbage", PublisherSignatureError),
])
def test_batch_note_signers_are_checked(events: list[VerifiedEvent], keys: Keys, registry: Registry,
                                        sealer: DeliverySealer, opener: Open, signer: str,
                                        error: type[OpenError]) -> None:
    """A batch note not signed by a registered key of the source is refused: a key error when the source's key
    is one the registry refuses, a signature error when no signature is the source's or the note is broken."""
    decision = permit("municipal-services", TYPE, FIELDS)
    d = sealer.seal(events[0], decision)
    disclosure = minimise(events[0], decision, PSEUDO)
    text = _note_text(disclosure.note)
    note = {
        "an unregistered key of the publisher": sign_note(text, [Signer.generate("population-registry")]),
        "another agency's registered key": sign_note(text, [keys.signers["tax-board"]]),
        "nobody: the note is garbage": text + "\n— population-registry AAAA\n",
    }[signer]
    forged = dataclasses.replace(disclosure, note=note).encode()
    with pytest.raises(error) as raised:
        _open(opener("municipal-services"), _reseal(d, keys, registry, forged))
    assert type(raised.value) is error


def test_inclusion_proofs_are_checked(catalogue: Catalogue, keys: Keys, registry: Registry,
                                      sealer: DeliverySealer, opener: Open) -> None:
    """A proof for another leaf, a truncated proof or one for another batch size fails the publisher's
    signature, also for an event whose sibling in the batch was opened first."""
    events = signed_events(catalogue, keys, registry, TYPE, n=4)
    decision = permit("municipal-services", TYPE, FIELDS)
    mine = opener("municipal-services")
    for event in events[:2]:  # the second's proof is now vouched for by the first's
        assert _open(mine, sealer.seal(event, decision)) is not None
    for event, proof in ((events[3], events[2].proof), (events[3], events[3].proof[:-32]),
                         (events[3], events[3].proof[:4] + b"\x00\x00\x00\x05" + events[3].proof[8:]),
                         (events[1], events[0].proof)):
        disclosure = minimise(event, decision, PSEUDO)
        forged = dataclasses.replace(disclosure, proof=proof).encode()
        with pytest.raises(PublisherSignatureError):
            _open(mine, _reseal(sealer.seal(event, decision), keys, registry, forged))
