"""Verifying a received record: every check of ARCHITECTURE.md's router step 1 but the replay window.

Checks run cheapest first and each failure raises the :class:`VerificationError` subclass that names it. Work is
done as rarely as it can be: the checks on a record's source, type and schema once per such combination (only
their success is remembered), a batch note's signature once per note (see :mod:`exchange.envelope.batchnotes`),
and the datum is read in one strict pass that yields the record and each field's committed bytes and accepts
nothing but the canonical encoding. So the per-event cost in a batch of 64 is that pass, the commitments and a
few hashes of the inclusion proof.
"""

from __future__ import annotations

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
    SPECVERSION,
    EventAttributes,
    dataschema_uri,
    parse_headers,
    parse_time,
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

__all__ = ["EnvelopeVerifier", "ReceivedRecord", "VerifiedEvent", "verify"]

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
_CACHE_LIMIT = 4096


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

    def __init__(self, registry: Registry, catalogue: Catalogue, *, max_skew: timedelta | None = timedelta(minutes=15),
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
        if h[H_SPECVERSION] != _SPECVERSION or h[H_CONTENT_TYPE] != _CONTENT_TYPE:
            raise e.MalformedEnvelopeError("ce_specversion must be 1.0 and content-type application/avro")
        raw_id, raw_source, raw_type, raw_time, raw_schema = (h[H_ID], h[H_SOURCE], h[H_TYPE], h[H_TIME],
                                                              h[H_DATASCHEMA])
        kind = self._kinds.get((raw_source, raw_type, raw_schema, value[2:_HEADER]))
        try:
            if kind is None:
                attributes = EventAttributes(raw_id.decode(), raw_source.decode(), raw_type.decode(),
                                             raw_time.decode(), raw_schema.decode())
            else:  # these three bytes were decoded before
                attributes = EventAttributes(raw_id.decode(), kind.source, kind.type, raw_time.decode(),
                                             kind.dataschema)
            moment = parse_time(attributes.time)
        except (UnicodeDecodeError, ValueError) as exc:
            raise e.MalformedEnvelopeError(f"a CloudEvents attribute is not well-formed: {exc}") from exc
        seed = h[H_SEED]
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

        decoded, parts = self._read(kind, value)
        salts = kind.committer.salts(seed)
        commitment_list = kind.committer.commitments(salts, key, parts)
        # The attributes' signing bytes, from the headers they were decoded from (UTF-8 round-trips exactly).
        digest = digest_of(b"\n".join((raw_id, raw_source, raw_type, raw_time, raw_schema, b"")), commitment_list)

        note_text = _text(h[H_BATCH], H_BATCH)
        proof = h[H_PROOF]
        key_id = self.batches.verify(note_text, attributes.source, moment, digest, proof)
        return VerifiedEvent(attributes, moment, kind.schema, decoded, key, seed, commitment_list, digest, proof,
                             note_text, key_id, salts, parts)

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
        if abs((moment - _EPOCH) // _MICROSECOND - timestamp_ms * 1000) > max_skew // _MICROSECOND:
            skew = abs(moment - datetime.fromtimestamp(timestamp_ms / 1000, UTC))
            raise e.TimeSkewError(f"ce_time {attributes.time} is {skew} away from the broker's timestamp")

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


def _headers(raw: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    try:
        found = dict(raw)
    except (TypeError, ValueError):
        return parse_headers(raw, _REQUIRED, _KNOWN, e.MalformedEnvelopeError)
    # One C-level pass for a well-formed record; one by one for the exact complaint about any other.
    keys = found.keys()
    if len(found) == len(raw) and (keys == _REQUIRED_SET or (keys <= _KNOWN and keys >= _REQUIRED_SET)):
        return found
    return parse_headers(raw, _REQUIRED, _KNOWN, e.MalformedEnvelopeError)


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise e.MalformedEnvelopeError(f"{name} is not UTF-8") from exc
