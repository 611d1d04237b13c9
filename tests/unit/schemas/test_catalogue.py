"""The catalogue's lookups, and the shipped schemas against the shared contract's list of record types."""

from __future__ import annotations

import pytest

from exchange.schemas import (
    Catalogue,
    Classification,
    Compatibility,
    KeyKind,
    SchemaError,
    UnknownFieldError,
    UnknownSchemaError,
)
from exchange.schemas.samples import SAMPLE_TYPES
from tests.unit.schemas.conftest import MakeSchema

P, S, U = "personal", "special", "public"
DATE = {"type": "int", "logicalType": "date"}
OPT_DATE = ["null", DATE]

# The contract, field by field: (name, classification, Avro type or None where it is an enum / named type).
CONTRACT: dict[str, tuple[str, str, list[tuple[str, str, object]]]] = {
    "population.person-registered": ("person_id", "person", [
        ("person_id", P, "string"), ("given_name", P, "string"), ("family_name", P, "string"),
        ("birth_date", P, DATE), ("sex", P, ["F", "M", "X"]), ("citizenship", P, "string"),
        ("municipality_code", U, "string"), ("registered_on", U, DATE)]),
    "population.address-changed": ("person_id", "person", [
        ("person_id", P, "string"), ("street_address", P, "string"), ("postal_code", P, "string"),
        ("municipality_code", U, "string"), ("moved_on", U, DATE), ("address_protected", P, "boolean"),
        ("dwelling_type", P, ["APARTMENT", "HOUSE", "OTHER"])]),
    "population.death-registered": ("person_id", "person", [
        ("person_id", P, "string"), ("date_of_death", P, DATE), ("municipality_code", U, "string")]),
    "business.company-registered": ("company_id", "record", [
        ("company_id", U, "string"), ("name", U, "string"), ("legal_form", U, None), ("registered_on", U, DATE),
        ("municipality_code", U, "string"), ("share_capital_cents", U, "long")]),
    "tax.income-assessed": ("person_id", "person", [
        ("person_id", P, "string"), ("tax_year", U, "int"), ("taxable_income_cents", P, "long"),
        ("tax_due_cents", P, "long"), ("assessed_on", U, DATE)]),
    "health.coverage-changed": ("person_id", "person", [
        ("person_id", P, "string"), ("coverage_status", S, ["ACTIVE", "SUSPENDED", "ENDED"]),
        ("coverage_from", S, DATE), ("coverage_until", S, OPT_DATE), ("reason_code", S, "string"),
        ("municipality_code", U, "string")]),
    "vehicle.vehicle-registered": ("person_id", "person", [
        ("person_id", P, "string"), ("vin", U, "string"), ("registration_number", P, "string"),
        ("make", U, "string"), ("model", U, "string"), ("first_registered_on", U, DATE)]),
    "social.benefit-granted": ("person_id", "person", [
        ("person_id", P, "string"), ("benefit_type", P, ["PENSION", "UNEMPLOYMENT", "CHILD", "DISABILITY"]),
        ("monthly_amount_cents", P, "long"), ("granted_from", U, DATE), ("granted_until", U, OPT_DATE),
        ("municipality_code", U, "string")]),
}


@pytest.mark.parametrize("type_name", sorted(CONTRACT))
def test_shipped_types_match_the_contract(catalogue: Catalogue, type_name: str) -> None:
    """Field names, order, classifications, types and keys of each agency type are those of the contract."""
    key_field, key_kind, fields = CONTRACT[type_name]
    schema = catalogue.current(type_name)
    assert (schema.key_field, schema.key_kind) == (key_field, KeyKind(key_kind))
    assert schema.field_names == tuple(name for name, _, _ in fields)
    for field, (name, classification, avro_type) in zip(schema.fields, fields, strict=True):
        assert field.classification is Classification(classification), name
        assert schema.classification(name) is Classification(classification)
        if isinstance(avro_type, list) and avro_type and avro_type[0] not in ("null",):
            enum = field.type[1] if isinstance(field.type, list) else field.type
            assert enum["symbols"] == avro_type, name
        elif avro_type is not None:
            assert field.type == avro_type, name


def test_address_revisions(catalogue: Catalogue) -> None:
    """population.address-changed 0002 is 0001 plus an optional dwelling_type defaulting to null."""
    old, new = catalogue.revisions("population.address-changed")
    assert new.field_names == (*old.field_names, "dwelling_type")
    dwelling = new.field("dwelling_type")
    assert dwelling.has_default
    assert dwelling.default is None
    assert dwelling.type[0] == "null"


def test_every_type_has_samples_and_the_exchange_types(catalogue: Catalogue) -> None:
    """The catalogue holds the contract's types plus exchange.decision, .consent and .quarantine."""
    assert catalogue.types() == sorted([*CONTRACT, "exchange.consent", "exchange.decision", "exchange.quarantine"])
    assert list(SAMPLE_TYPES) == catalogue.types()
    for type_name in ("exchange.consent", "exchange.decision", "exchange.quarantine"):
        assert catalogue.current(type_name).key_kind is KeyKind.RECORD


def test_lookups(catalogue: Catalogue) -> None:
    """current, revision, by_fingerprint and schema_of find the same objects; defaults are FULL_TRANSITIVE."""
    current = catalogue.current("population.address-changed")
    assert catalogue.revision("population.address-changed", 2) is current
    assert catalogue.by_fingerprint(current.fingerprint) is current
    assert catalogue.schema_of(current.header + b"\x00") is current
    assert current.label == "population.address-changed 0002"
    assert current.compatibility is Compatibility.FULL_TRANSITIVE
    assert len(current.fingerprint) == 8
    assert len(catalogue.schemas()) == 13


def test_unknown_lookups_fail_closed(catalogue: Catalogue) -> None:
    """Unknown types, revisions, fingerprints and fields raise typed errors."""
    with pytest.raises(UnknownSchemaError):
        catalogue.current("population.unknown")
    with pytest.raises(UnknownSchemaError):
        catalogue.revision("population.address-changed", 3)
    with pytest.raises(UnknownSchemaError):
        catalogue.revision("population.address-changed", 0)
    with pytest.raises(UnknownSchemaError):
        catalogue.by_fingerprint(b"\x00" * 8)
    with pytest.raises(UnknownFieldError):
        catalogue.current("tax.income-assessed").classification("street_address")
    with pytest.raises(UnknownFieldError):
        catalogue.current("tax.income-assessed").field("street_address")


def test_inconsistent_chains_are_refused(make_schema: MakeSchema) -> None:
    """A catalogue cannot be built from a chain with a gap or from two revisions with one fingerprint."""
    fields = [{"name": "id", "type": "string"}]
    with pytest.raises(SchemaError, match="contiguous"):
        Catalogue.of([make_schema(fields, 1), make_schema([*fields, {"name": "x", "type": "int"}], 3)])
    with pytest.raises(SchemaError, match="fingerprint"):
        Catalogue.of([make_schema(fields, 1), make_schema(fields, 2)])
