"""Parsing Canonical Form and CRC-64-AVRO fingerprints against the Avro specification's published vectors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from exchange.schemas import Catalogue, crc64_avro, fingerprint, parsing_canonical_form

# Apache Avro share/test/data/schema-tests.txt: (input, canonical form, fingerprint as Java's signed long or None).
AVRO_VECTORS: list[tuple[str, str, int | None]] = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"null"}', '"null"', None),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('{"type":"boolean"}', '"boolean"', None),
    ('"int"', '"int"', 8247732601305521295),
    ('{"type":"int"}', '"int"', None),
    ('"long"', '"long"', -3434872931120570953),
    ('{"type":"long"}', '"long"', None),
    ('"float"', '"float"', 5583340709985441680),
    ('{"type":"float"}', '"float"', None),
    ('"double"', '"double"', -8181574048448539266),
    ('{"type":"double"}', '"double"', None),
    ('"bytes"', '"bytes"', 5746618253357095269),
    ('{"type":"bytes"}', '"bytes"', None),
    ('"string"', '"string"', -8142146995180207161),
    ('{"type":"string"}', '"string"', None),
    ("[  ]", "[]", -1241056759729112623),
    ('[ "int"  ]', '["int"]', -5232228896498058493),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    ('{"fields":[], "type":"record", "name":"foo"}', '{"name":"foo","type":"record","fields":[]}',
     -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
     '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ('{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
     '{"name":"a.b.foo","type":"record","fields":[]}', -4616218487480524110),
    ('{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651),
    ('{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},'
     ' {"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
     -4860222112080293046),
    ('{"type":"enum", "name":"foo", "symbols":["A1"]}', '{"name":"foo","type":"enum","symbols":["A1"]}',
     -6342190197741309591),
    ('{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
     '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ('{"name":"foo","type":"fixed","size":15}', '{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    ('{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
     '{"name":"x.y.z.foo","type":"fixed","size":32}', -3064184465700546786),
    ('{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    ('{"name":"PigValue","type":"record", "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
     '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
     -1759257747318642341),
]


@pytest.mark.parametrize(("text", "canonical", "java_long"), AVRO_VECTORS)
def test_avro_spec_vectors(text: str, canonical: str, java_long: int | None) -> None:
    """Canonical form and fingerprint of each Avro test vector equal the published values."""
    schema = json.loads(text)
    assert parsing_canonical_form(schema) == canonical
    if java_long is not None:
        unsigned = java_long & 0xFFFF_FFFF_FFFF_FFFF
        assert crc64_avro(canonical.encode()) == unsigned
        assert fingerprint(schema) == unsigned.to_bytes(8, "little")


def test_crc64_of_nothing_is_the_empty_fingerprint() -> None:
    """The fingerprint of zero bytes is the spec's EMPTY constant, the algorithm's starting value."""
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_named_type_is_written_in_full_once_then_by_full_name() -> None:
    """A named type used twice appears in full at its definition and as its full name at the second use."""
    schema: dict[str, Any] = {
        "type": "record", "name": "Pair", "namespace": "x",
        "fields": [
            {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["P"], "doc": "dropped"}},
            {"name": "b", "type": "E", "default": "P"},
            {"name": "c", "type": {"type": "int", "logicalType": "date"}},
        ],
    }
    assert parsing_canonical_form(schema) == (
        '{"name":"x.Pair","type":"record","fields":[{"name":"a","type":{"name":"x.E","type":"enum",'
        '"symbols":["P"]}},{"name":"b","type":"x.E"},{"name":"c","type":"int"}]}'
    )


def test_escaped_characters_are_replaced() -> None:
    """[STRINGS]: a \\u escape in the schema text comes out as the character itself."""
    schema = json.loads('{"type": "enum", "name": "\\u0046oo", "symbols": ["\\u0041"]}')
    assert parsing_canonical_form(schema) == '{"name":"Foo","type":"enum","symbols":["A"]}'


def test_shipped_schemas_agree_with_fastavro(catalogue: Catalogue) -> None:
    """For every shipped revision, canonical form and fingerprint equal fastavro's independent implementation."""
    for schema in catalogue.schemas():
        assert schema.canonical_form == to_parsing_canonical_form(schema.schema)
        assert schema.fingerprint.hex() == fastavro_fingerprint(schema.canonical_form, "CRC-64-AVRO")


def test_docs_and_classifications_do_not_change_the_fingerprint(catalogue: Catalogue) -> None:
    """Attributes outside the canonical form (doc, classification, key_field) leave the fingerprint unchanged."""
    schema = catalogue.current("population.address-changed")
    edited = json.loads(json.dumps(schema.schema))
    edited["doc"] = "changed"
    edited["fields"][0]["classification"] = "special"
    edited["key_kind"] = "record"
    assert fingerprint(edited) == schema.fingerprint
