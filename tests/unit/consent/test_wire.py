"""The wire form of a consent artefact: key, headers, Avro value, and decoding it back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exchange.consent import (
    CONSENT_TYPE,
    ConsentRecordError,
    artefact_record,
    decode_artefact,
    effective_status,
    encode_artefact,
)
from exchange.crypto.keys import Signer
from exchange.policy import ConsentArtefact, ConsentStatus
from exchange.schemas import Catalogue

from .support import NOW, PERSON, SUBJECT, artefact


def test_schema_mirrors_the_artefact_model(catalogue: Catalogue) -> None:
    """exchange.consent has exactly the model's fields, in order, each documented and classified, keyed by subject."""
    schema = catalogue.current(CONSENT_TYPE)
    assert list(schema.field_names) == list(ConsentArtefact.model_fields)
    assert schema.key_field == "subject"
    assert str(schema.key_kind) == "record"
    assert all(f.doc and f.classification for f in schema.fields)
    assert str(schema.classification("subject")) == "personal"


@pytest.mark.parametrize("fields", [None, ("person_id", "taxable_income_cents")])
def test_round_trip_through_the_catalogue(catalogue: Catalogue, signer: Signer,
                                          fields: tuple[str, ...] | None) -> None:
    """Encoding and decoding gives back the identical artefact, microseconds and signature included."""
    original = artefact(signer, fields=fields)
    message = encode_artefact(catalogue, original)
    assert message.value[:2] == b"\xc3\x01"
    decoded = decode_artefact(catalogue, message.value, message.key)
    assert decoded == original
    assert decoded.to_signing_bytes() == original.to_signing_bytes()


def test_key_and_headers(catalogue: Catalogue, signer: Signer) -> None:
    """The key is the subject pseudonym; headers are CloudEvents attributes with no personal data."""
    signed = artefact(signer)
    message = encode_artefact(catalogue, signed)
    headers = dict(message.headers)
    assert message.key == SUBJECT.encode()
    assert headers["ce_id"] == f"{signed.consent_id}@1".encode()
    assert headers["ce_type"] == b"exchange.consent"
    assert headers["ce_source"] == b"exchange-consent"
    assert headers["ce_time"] == (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.123Z").encode()
    assert headers["content-type"] == b"application/avro"
    assert headers["ce_dataschema"].startswith(b"urn:exchange:schema:exchange.consent:1:")
    everything = message.key + message.value + b"".join(v for _, v in message.headers)
    assert PERSON.encode() not in everything
    assert not any(SUBJECT.encode() in v for _, v in message.headers)


def test_unsigned_artefact_is_not_encoded(catalogue: Catalogue) -> None:
    """Nothing unsigned goes on the wire."""
    with pytest.raises(ConsentRecordError, match="not signed"):
        encode_artefact(catalogue, artefact(None))


def test_decoding_refuses_what_is_not_a_consent(catalogue: Catalogue, signer: Signer) -> None:
    """Missing values, garbage, other record types, invalid artefacts and foreign keys are refused by name."""
    message = encode_artefact(catalogue, artefact(signer))
    with pytest.raises(ConsentRecordError, match="no value"):
        decode_artefact(catalogue, None)
    with pytest.raises(ConsentRecordError, match="does not decode"):
        decode_artefact(catalogue, b"\xc3\x01garbage!")
    with pytest.raises(ConsentRecordError, match="does not decode"):
        decode_artefact(catalogue, message.value[:-5])
    quarantine_like = catalogue.encode("business.company-registered", {
        "company_id": "12345678", "name": "Puit OÜ", "legal_form": "PRIVATE_LIMITED",
        "registered_on": NOW.date(), "municipality_code": "0784", "share_capital_cents": 250000,
    })
    with pytest.raises(ConsentRecordError, match=r"not exchange\.consent"):
        decode_artefact(catalogue, quarantine_like)
    with pytest.raises(ConsentRecordError, match="key is not the artefact's subject"):
        decode_artefact(catalogue, message.value, b"someone-else-entirely")
    record = artefact_record(artefact(signer))
    record["subject"] = PERSON  # a person id where a pseudonym belongs
    with pytest.raises(ConsentRecordError, match="subject"):
        decode_artefact(catalogue, catalogue.encode(CONSENT_TYPE, record))


def test_effective_status_expires_active_and_paused_consents(signer: Signer) -> None:
    """Past its expiry an ACTIVE or PAUSED consent is EXPIRED; a REVOKED one stays REVOKED."""
    active = artefact(signer)
    later = active.expiry + timedelta(seconds=1)
    assert effective_status(active, NOW) is ConsentStatus.ACTIVE
    assert effective_status(active, later) is ConsentStatus.EXPIRED
    paused = active.model_copy(update={"status": ConsentStatus.PAUSED})
    assert effective_status(paused, later) is ConsentStatus.EXPIRED
    revoked = active.model_copy(update={"status": ConsentStatus.REVOKED})
    assert effective_status(revoked, later) is ConsentStatus.REVOKED
