"""Sealed deliveries open to exactly the permitted fields, and the publisher's signature still verifies."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from exchange.delivery import (
    DeliveryOpener,
    DeliverySealer,
    Disclosed,
    NotPermittedError,
    SealedDelivery,
    Withheld,
    decode_disclosure,
    minimise,
)
from exchange.delivery.minimise import Minimiser, Plan
from exchange.policy import Decision, Outcome
from exchange.registry import Registry
from exchange.schemas import Catalogue
from tests.unit.delivery.support import PSEUDO, SOURCES, Keys, permit, signed_events

Open = Callable[[str], DeliveryOpener]


def _open(opener: DeliveryOpener, d: SealedDelivery) -> object:
    return opener.open(d.key, d.value, d.headers, d.topic)


@pytest.mark.parametrize("record_type", sorted(SOURCES))
def test_every_type_round_trips_with_a_subset(record_type: str, catalogue: Catalogue, keys: Keys,
                                              registry: Registry, sealer: DeliverySealer, opener: Open) -> None:
    """Every record type: the recipient gets exactly the permitted fields, typed, and the rest by name only."""
    schema = catalogue.current(record_type)
    permitted = schema.field_names[::2]
    events = signed_events(catalogue, keys, registry, record_type, n=3)
    tax = opener("tax-board")
    for event in events:
        delivery = sealer.seal(event, permit("tax-board", record_type, permitted))
        received = tax.open(delivery.key, delivery.value, delivery.headers, delivery.topic)
        assert received.record_type == record_type
        assert received.fields == {name: event.record[name] for name in permitted}
        assert received.withheld == tuple(n for n in schema.field_names if n not in permitted)
        assert received.key == event.key == delivery.key
        assert received.idempotency_key == (event.attributes.id, "test-agreement")
        assert received.subject_pseudonym is None
        p = received.provenance
        assert (p.source, p.event_id, p.event_time) == (SOURCES[record_type], event.attributes.id, event.time)
        assert (p.agreement_id, p.agreement_version, p.purpose) == ("test-agreement", 3, "testing")
        assert p.schema_revision == schema.revision
        assert p.publisher_key_id == keys.signers[SOURCES[record_type]].key_id
        assert p.router_key_id == keys.signers["exchange-router"].key_id
        assert p.pseudonym_attested_by is None


def test_older_revision_round_trips(catalogue: Catalogue, keys: Keys, registry: Registry, sealer: DeliverySealer,
                                    opener: Open) -> None:
    """An event of an older revision is delivered and decoded with that revision; unknown permitted names are moot."""
    (event,) = signed_events(catalogue, keys, registry, "population.address-changed", n=1, revision=1)
    fields = ("postal_code", "municipality_code", "dwelling_type")
    d = sealer.seal(event, permit("municipal-services", "population.address-changed", fields))
    received = opener("municipal-services").open(d.key, d.value, d.headers, d.topic)
    assert received.fields == {"postal_code": event.record["postal_code"],
                               "municipality_code": event.record["municipality_code"]}
    assert received.provenance.schema_revision == 1


def test_withheld_values_never_travel(catalogue: Catalogue, keys: Keys, registry: Registry) -> None:
    """A withheld field's value and salt are not in the disclosure, only its commitment; the digest still matches."""
    (event,) = signed_events(catalogue, keys, registry, "population.person-registered", n=1)
    schema = event.schema
    decision = permit("tax-board", event.attributes.type, ("municipality_code", "registered_on"))
    disclosure = minimise(event, decision, PSEUDO)
    plaintext = disclosure.encode()
    # Values of six characters or more: a shorter one could occur by chance in the base64 of the batch note.
    hidden = [v.encode() for n in ("person_id", "given_name", "family_name") if len(v := event.record[n]) >= 6]
    assert hidden
    assert all(value not in plaintext for value in hidden)
    assert isinstance(disclosure.key, Disclosed)
    assert [isinstance(e, Disclosed) for e in disclosure.fields] == [
        n in decision.fields for n in schema.field_names]
    assert all(e.commitment == c for e, c in zip(disclosure.fields, event.commitments[1:], strict=True)
               if isinstance(e, Withheld))
    assert disclosure.commitments(schema.field_names) == event.commitments


def test_minimiser_bytes_equal_the_disclosure_encoding(catalogue: Catalogue, keys: Keys, registry: Registry) -> None:
    """The sealer's fast encoder and ``minimise(...).encode()`` give the same bytes, which decode back."""
    minimiser = Minimiser(PSEUDO)
    for record_type in sorted(SOURCES):
        schema = catalogue.current(record_type)
        for event in signed_events(catalogue, keys, registry, record_type, n=2):
            for fields, pseudo in ((schema.field_names, False), (schema.field_names[1:3], False),
                                   ((), False), (schema.field_names, schema.key_kind == "person")):
                decision = permit("statistics-office", record_type, fields, pseudonymise=pseudo)
                plaintext, pseudonym = minimiser.disclose(event, Plan(decision, event.schema))
                expected = minimise(event, decision, PSEUDO)
                assert plaintext == expected.encode()
                assert decode_disclosure(plaintext) == expected
                assert pseudonym == expected.subject_pseudonym


def test_pseudonymising_hides_the_person_id(catalogue: Catalogue, keys: Keys, registry: Registry,
                                             sealer: DeliverySealer, opener: Open) -> None:
    """With pseudonymise, the person id is in no key, header or plaintext, and the pseudonym is per recipient."""
    events = signed_events(catalogue, keys, registry, "tax.income-assessed", n=3)
    fields = ("person_id", "tax_year", "taxable_income_cents")
    pseudonyms: dict[str, str] = {}
    for event in events:
        person = event.record["person_id"].encode()
        for recipient in ("statistics-office", "municipal-services"):
            decision = permit(recipient, "tax.income-assessed", fields, pseudonymise=True)
            d = sealer.seal(event, decision)
            plaintext, _ = Minimiser(PSEUDO).disclose(event, Plan(decision, event.schema))
            assert person not in d.key
            assert person not in d.value
            assert person not in plaintext
            assert all(person not in value for _, value in d.headers)
            assert d.key != event.key  # not the exchange-wide subject pseudonym either
            received = opener(recipient).open(d.key, d.value, d.headers, d.topic)
            assert received.subject_pseudonym == PSEUDO.for_recipient(recipient, person.decode())
            assert received.key == received.subject_pseudonym.encode()
            assert "person_id" not in received.fields
            assert "person_id" in received.withheld
            assert received.fields == {"tax_year": event.record["tax_year"],
                                       "taxable_income_cents": event.record["taxable_income_cents"]}
            assert received.provenance.pseudonym_attested_by == "exchange-router"
            pseudonyms[recipient] = received.subject_pseudonym
        assert pseudonyms["statistics-office"] != pseudonyms["municipal-services"]


def test_a_deny_is_never_sealed(catalogue: Catalogue, keys: Keys, registry: Registry,
                                sealer: DeliverySealer) -> None:
    """Sealing a DENY raises NotPermittedError, from minimise and from the sealer."""
    (event,) = signed_events(catalogue, keys, registry, "tax.income-assessed", n=1)
    deny = Decision(Outcome.DENY, "tax-board", "a", 1, "p", "b", None, (), ("tax_year",), ("NO_CONSENT",), False,
                    "delivery.tax-board", "bundle")
    with pytest.raises(NotPermittedError):
        sealer.seal(event, deny)
    with pytest.raises(NotPermittedError):
        minimise(event, deny, PSEUDO)


def test_headers_carry_no_personal_data(catalogue: Catalogue, keys: Keys, registry: Registry,
                                        sealer: DeliverySealer) -> None:
    """The headers are exactly the CloudEvents and exchange ones, in order, and hold no field value."""
    (event,) = signed_events(catalogue, keys, registry, "population.address-changed", n=1)
    d = sealer.seal(event, permit("police-board", event.attributes.type, event.schema.field_names))
    assert [n for n, _ in d.headers] == ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time",
                                         "content-type", "ce_exagreement", "ce_expurpose", "ce_exdatakey"]
    h = dict(d.headers)
    assert h["content-type"] == b"application/vnd.exchange.delivery"
    assert h["ce_exagreement"] == b"test-agreement:3"
    assert h["ce_id"] == event.attributes.id.encode()
    # Long personal values only: a short code could occur by chance in the ids and the base64 of the note.
    for name, value in event.record.items():
        if event.schema.classification(name) != "public" and isinstance(value, str) and len(value) >= 6:
            assert all(value.encode() not in raw for _, raw in d.headers)
