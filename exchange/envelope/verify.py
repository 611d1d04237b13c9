"""Verifying a received record: every check of the router's step 1 (docs/architecture.md) but the replay guard.

Checks run cheapest first and each failure raises the :class:`VerificationError` subclass that names it. Before
any work, every header's length and the key's are bounded (:data:`~exchange.envelope.attributes.HEADER_LIMITS`),
so a hostile record costs no more than a genuine one; the key must have the shape of the schema's key kind (a
subject pseudonym is 32 lowercase hex digits; a record key is the record's key field), and ``ce_id`` must be a
UUIDv7 whose time agrees with ``ce_time``. Work is
done as rarely as it can be: the checks on a record's source, type and schema once per such combination (only
their success is remembered), a batch note's signature once per note (see :mod:`exchange.envelope.batchnotes`),
and the datum is read in one strict pass that yields the record and each field's committed bytes and accepts
nothing but the canonical encoding. So the per-event cost in a batch of 64 is that pass, the commitments and a
few hashes of the inclusion proof.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from exchange.envelope import errors as e
from exchange.envelope.attributes import (
    CONTENT_TYPE,
    H_BATCH,
    H_CONTENT_TYPE,
    H_DATASCHEMA,
    H_ID,
    H_PROOF,
    H_SEED,
    H_SOURCE,
    H_SPECVERSION,
    H_TIME,
    H_TYPE,
    HEADER_LIMITS,
    ID_TIME_TOLERANCE_MS,
    SPECVERSION,
    EventAttributes,
    dataschema_uri,
    decode_b64_attribute,
    parse_headers,
    parse_time,
    uuid7_ms,
)
from exchange.envelope.batchnotes import BatchNoteVerifier
from exchange.envelope.commitments import SEED_SIZE, Committer, digest_of
from exchange.registry import Registry
from exchange.registry import errors as r
from exchange.schemas import (
    Catalogue,
    DatumError,
    RecordSchema,
    StrictReader,  # private until exchange.schemas exports it
)
from exchange.schemas.errors import SchemaError
from exchange.schemas.errors import UnknownSchemaError as _CatalogueUnknownSchema

__all__ = ["KEY_LIMIT", "MAX_SKEW", "VALUE_LIMIT", "EnvelopeVerifier", "ReceivedRecord", "VerifiedEvent", "verify"]

KEY_LIMIT = 256
"""The longest Kafka key an ingress record may have, in bytes (a record key; a pseudonym has 32)."""
MAX_SKEW = timedelta(minutes=2)
"""How far ``ce_time`` may be from the record's timestamp (the broker's, on ingress topics): a publisher's record
must reach the broker within this of being signed. The router remembers ids for this long (docs/decisions/007)."""
VALUE_LIMIT = 512 * 1024
"""The longest value an ingress record may have: a delivery of it (with its proof material) and a quarantine
record of it (with the original) must still fit Kafka's default 1 MiB record limit."""

_REQUIRED = (H_SPECVERSION, H_ID, H_SOURCE, H_TYPE, H_TIME, H_DATASCHEMA, H_CONTENT_TYPE, H_SEED, H_PROOF, H_BATCH)
_ALLOWED_EXTRA = frozenset({"traceparent", "tracestate"})
_KNOWN = frozenset(_REQUIRED) | _ALLOWED_EXTRA
_REQUIRED_SET = frozenset(_REQUIRED)
_SPECVERSION = SPECVERSION.encode()
_CONTENT_TYPE = CONTENT_TYPE.encode()
_MAGIC = b"\xc3\x01"
_HEADER = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MILLISECOND = timedelta(milliseconds=1)
_CACHE_LIMIT = 4096
_LIMITS = tuple(HEADER_LIMITS.items())
_PSEUDONYM = re.compile(rb"[0-9a-f]{32}")


class ReceivedRecord(Protocol):
    """What verification needs of a Kafka record (``exchange.kafka.ConsumedRecord`` has it)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...
    @property
    def timestamp_ms(self) -> int: ...


class VerifiedEvent(NamedTuple):
    """A record that passed every check, decoded, with what a minimised delivery needs to stay verifiable.

    A named tuple rather than a frozen dataclass: the router builds one per event, and a tuple of this size is
    built several times faster.
    """

    attributes: EventAttributes
    time: datetime
    schema: RecordSchema
    record: dict[str, Any]
    key: bytes
    seed: bytes
    commitments: list[bytes]
    """``[c_key, c_field1, …]`` in schema order."""
    digest: bytes
    proof: bytes
    note: str
    signer_key_id: str
    salts: Sequence[bytes] = ()
    """``[salt_key, salt_field1, …]`` in schema order, as the commitments used them (empty if not kept)."""
    parts: Sequence[bytes] = ()
    """Each field's Avro encoding, in schema order: the bytes the commitments cover (empty if not kept)."""
    id_ms: int = 0
    """The Unix milliseconds in ``ce_id`` (a UUIDv7), within a second of ``time``."""


class _Kind:
    """What is known of a (source, type, dataschema, fingerprint) that passed the checks on them once."""

    __slots__ = ("committer", "dataschema", "reader", "schema", "source", "type")

    def __init__(self, attributes: EventAttributes, schema: RecordSchema, reader: StrictReader) -> None:
        self.source, self.type, self.dataschema = attributes.source, attributes.type, attributes.dataschema
        self.schema = schema
        self.reader = reader
        self.committer = Committer(schema.field_names)


class EnvelopeVerifier:
    """Verifies records against one registry and catalogue; remembers verified batch notes.

    Per event the work is reading the headers and the datum, the commitments and a few hashes of the inclusion
    proof. The checks that depend only on a record's source, type and schema run once per such combination and
    only their success is remembered (registry and catalogue are immutable), so a record that fails always
    fails the same check, in the same order, as the first time.
    """

    def __init__(self, registry: Registry, catalogue: Catalogue, *, max_skew: timedelta | None = MAX_SKEW,
                 note_cache_size: int = 4096) -> None:
        self.registry = registry
        self.catalogue = catalogue
        self.max_skew = max_skew
        self.batches = BatchNoteVerifier(registry, cache_size=note_cache_size)
        """Opens batch notes (once each) and checks inclusion proofs and signing keys."""
        self._kinds: dict[tuple[bytes, bytes, bytes, bytes], _Kind] = {}
        self._readers: dict[RecordSchema, StrictReader] = {}

    def verify(self, record: ReceivedRecord) -> VerifiedEvent:
        """The verified event, or a VerificationError naming the failed check."""
        h = _headers(record.headers)
        key, value = record.key, record.value
        if key is None or value is None:
            raise e.MalformedEnvelopeError("the record has no key or no value")
        if len(key) > KEY_LIMIT:
            raise e.BadKeyError(f"the key has {len(key)} bytes; at most {KEY_LIMIT} are allowed")
        if len(value) > VALUE_LIMIT:
            raise e.OversizedRecordError(f"the value has {len(value)} bytes; at most {VALUE_LIMIT} are allowed")
        if h[H_SPECVERSION] != _SPECVERSION or h[H_CONTENT_TYPE] != _CONTENT_TYPE:
            raise e.MalformedEnvelopeError("ce_specversion must be 1.0 and content-type application/avro")
        raw_id, raw_source, raw_type, raw_time, raw_schema = (h[H_ID], h[H_SOURCE], h[H_TYPE], h[H_TIME],
                                                              h[H_DATASCHEMA])
        kind = self._kinds.get((raw_source, raw_type, raw_schema, value[2:_HEADER]))
        attributes, moment, id_ms = _attributes((raw_id, raw_source, raw_type, raw_time, raw_schema), kind)
        seed = decode_b64_attribute(h[H_SEED], H_SEED, e.MalformedEnvelopeError)
        if len(seed) != SEED_SIZE:
            raise e.MalformedEnvelopeError(f"ce_exseed has {len(seed)} bytes, not {SEED_SIZE}")

        if kind is None:
            self._check_source(attributes)
        if self.max_skew is not None and record.timestamp_ms > 0:
            self._check_skew(attributes, moment, record.timestamp_ms, self.max_skew)
        if kind is None:
            kind = self._kind(attributes, value, (raw_source, raw_type, raw_schema, value[2:_HEADER]))
        elif value[:2] != _MAGIC:
            raise e.BadDatumError("the value is not Avro single-object encoding")

        person = kind.schema.key_kind == "person"
        if person and (len(key) != 32 or _PSEUDONYM.fullmatch(key) is None):
            raise e.BadKeyError("the key is not a subject pseudonym (32 lowercase hex digits)")
        decoded, parts = self._read(kind, value)
        if not person and _record_key(decoded.get(kind.schema.key_field)) != key:
            raise e.BadKeyError(f"the key is not the record's {kind.schema.key_field!r}")
        salts = kind.committer.salts(seed)
        commitment_list = kind.committer.commitments(salts, key, parts)
        # The attributes' signing bytes, from the headers they were decoded from (UTF-8 round-trips exactly).
        digest = digest_of(b"\n".join((raw_id, raw_source, raw_type, raw_time, raw_schema, b"")), commitment_list)

        note_text = _text(h[H_BATCH], H_BATCH)
        proof = decode_b64_attribute(h[H_PROOF], H_PROOF, e.MalformedEnvelopeError)
        key_id = self.batches.verify(note_text, attributes.source, moment, digest, proof)
        return VerifiedEvent(attributes, moment, kind.schema, decoded, key, seed, commitment_list, digest, proof,
                             note_text, key_id, salts, parts, id_ms)

    # -- the checks -----------------------------------------------------------------------------------------

    def _check_source(self, attributes: EventAttributes) -> None:
        try:
            self.registry.agency(attributes.source)
        except r.UnknownIdentityError as exc:
            raise e.UnknownSourceError(f"ce_source {attributes.source!r} is no agency of the registry") from exc
        try:
            self.registry.require_authoritative(attributes.source, attributes.type)
        except r.NotAuthoritativeError as exc:
            raise e.NotAuthoritativeError(str(exc)) from exc

    @staticmethod
    def _check_skew(attributes: EventAttributes, moment: datetime, timestamp_ms: int, max_skew: timedelta) -> None:
        # In whole microseconds, as datetimes hold them: the broker's milliseconds are exact in both.
        skew_us = abs((moment - _EPOCH) // _MICROSECOND - timestamp_ms * 1000)
        if skew_us > max_skew // _MICROSECOND:
            raise e.TimeSkewError(f"ce_time {attributes.time} is {skew_us / 1e6:.3f} s away from the record's "
                                  f"timestamp ({timestamp_ms} ms); at most {max_skew.total_seconds():g} s is allowed")

    def _kind(self, attributes: EventAttributes, value: bytes, cache_key: tuple[bytes, bytes, bytes, bytes]) -> _Kind:
        """Check the datum's header against the attributes and the catalogue; remember the combination."""
        if len(value) < _HEADER or value[:2] != _MAGIC:
            raise e.BadDatumError("the value is not Avro single-object encoding")
        try:
            schema = self.catalogue.by_fingerprint(value[2:_HEADER])
        except _CatalogueUnknownSchema as exc:
            raise e.UnknownSchemaError(f"schema fingerprint {value[2:_HEADER].hex()} is not in the catalogue") from exc
        if schema.type_name != attributes.type:
            raise e.SchemaMismatchError(f"ce_type is {attributes.type!r} but the datum is a {schema.type_name!r}")
        if attributes.dataschema != dataschema_uri(schema.type_name, schema.revision, schema.fingerprint):
            raise e.SchemaMismatchError(f"ce_dataschema {attributes.dataschema!r} does not name the datum's schema")
        reader = self._readers.get(schema)
        if reader is None:
            reader = self._readers[schema] = StrictReader(schema)
        if len(self._kinds) >= _CACHE_LIMIT:
            self._kinds.clear()
        kind = self._kinds[cache_key] = _Kind(attributes, schema, reader)
        return kind

    @staticmethod
    def _read(kind: _Kind, value: bytes) -> tuple[dict[str, Any], Sequence[bytes]]:
        """The record and each field's bytes, from a datum in canonical encoding only."""
        try:
            return kind.reader.read(value, _HEADER)
        except DatumError:
            pass
        # Decode, re-encode and compare: the strict reader refuses exactly what this refuses, and this says why.
        schema = kind.schema
        try:
            decoded = schema.decode_datum(value, _HEADER)
        except SchemaError as exc:
            raise e.BadDatumError(f"the datum does not decode as {schema.label}: {exc}") from exc
        try:
            _, parts = schema.encode_parts(decoded)
        except SchemaError as exc:
            raise e.BadDatumError(f"the decoded datum does not re-encode: {exc}") from exc
        if len(value) - _HEADER != sum(map(len, parts)) or b"".join(parts) != value[_HEADER:]:
            raise e.BadDatumError("the datum is not in canonical Avro encoding (or has trailing bytes)")
        return decoded, parts


def verify(record: ReceivedRecord, registry: Registry, catalogue: Catalogue) -> VerifiedEvent:
    """Verify one record (see :class:`EnvelopeVerifier`; use one of those to verify many)."""
    return EnvelopeVerifier(registry, catalogue).verify(record)


def _attributes(raw: tuple[bytes, bytes, bytes, bytes, bytes],
                kind: _Kind | None) -> tuple[EventAttributes, datetime, int]:
    """The attributes (from the raw id, source, type, time and dataschema), ``ce_time`` and the time in
    ``ce_id``; MalformedEnvelopeError unless they are well-formed and the two times agree."""
    raw_id, raw_source, raw_type, raw_time, raw_schema = raw
    try:
        if kind is None:
            attributes = EventAttributes(raw_id.decode(), raw_source.decode(), raw_type.decode(), raw_time.decode(),
                                         raw_schema.decode())
        else:  # these three bytes were decoded before
            attributes = EventAttributes(raw_id.decode(), kind.source, kind.type, raw_time.decode(), kind.dataschema)
        moment = parse_time(attributes.time)
        id_ms = uuid7_ms(attributes.id)
    except (UnicodeDecodeError, ValueError) as exc:
        raise e.MalformedEnvelopeError(f"a CloudEvents attribute is not well-formed: {exc}") from exc
    if abs((moment - _EPOCH) // _MILLISECOND - id_ms) > ID_TIME_TOLERANCE_MS:
        raise e.MalformedEnvelopeError(f"the time in ce_id {attributes.id} is more than {ID_TIME_TOLERANCE_MS} ms "
                                       f"away from ce_time {attributes.time}")
    return attributes, moment, id_ms


def _record_key(value: object) -> bytes | None:
    return value.encode() if isinstance(value, str) else None


def _headers(raw: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    """The headers by name, each known, present once and within its length bound."""
    try:
        found = dict(raw)
    except (TypeError, ValueError):
        found = parse_headers(raw, _REQUIRED, _KNOWN, e.MalformedEnvelopeError)
    else:
        # One C-level pass for a well-formed record; one by one for the exact complaint about any other.
        keys = found.keys()
        if len(found) != len(raw) or not (keys == _REQUIRED_SET or (keys <= _KNOWN and keys >= _REQUIRED_SET)):
            found = parse_headers(raw, _REQUIRED, _KNOWN, e.MalformedEnvelopeError)
    for name, limit in _LIMITS:
        value = found.get(name)
        if value is not None and len(value) > limit:
            raise e.MalformedEnvelopeError(f"header {name!r} has {len(value)} bytes; at most {limit} are allowed")
    return found


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise e.MalformedEnvelopeError(f"{name} is not UTF-8") from exc
