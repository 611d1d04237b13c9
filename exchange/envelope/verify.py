"""Verifying a received record: every check of ARCHITECTURE.md's router step 1 but the replay window.

Checks run cheapest first and each failure raises the :class:`VerificationError` subclass that names it. A batch
note's signature is checked once and remembered (by its exact text), so the per-event cost in a batch of 64 is
the decoding, the commitments and a few hashes of the inclusion proof.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from exchange.crypto.errors import (
    CryptoError,
    InvalidSignatureError,
    MerkleError,
    UnknownVerifierError,
    UnverifiedNoteError,
)
from exchange.crypto.merkle import leaf_hash, root_from_inclusion_proof
from exchange.crypto.note import Verifier, open_note
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
    parse_time,
)
from exchange.envelope.batch import BatchNote, decode_proof, parse_batch_text
from exchange.envelope.commitments import SEED_SIZE, commitments, event_digest
from exchange.registry import Registry
from exchange.registry import errors as r
from exchange.schemas import Catalogue, RecordSchema
from exchange.schemas.errors import SchemaError
from exchange.schemas.errors import UnknownSchemaError as _CatalogueUnknownSchema

__all__ = ["EnvelopeVerifier", "ReceivedRecord", "VerifiedEvent", "verify"]

_REQUIRED = (H_SPECVERSION, H_ID, H_SOURCE, H_TYPE, H_TIME, H_DATASCHEMA, H_CONTENT_TYPE, H_SEED, H_PROOF, H_BATCH)
_ALLOWED_EXTRA = frozenset({"traceparent", "tracestate"})
_KNOWN = frozenset(_REQUIRED) | _ALLOWED_EXTRA
_MAGIC = b"\xc3\x01"
_HEADER = 10
_KEY_ERRORS: dict[type[r.KeyRejectedError], type[e.KeyRejectedError]] = {
    r.UnknownKeyError: e.UnknownKeyError,
    r.KeyNotYetValidError: e.KeyNotYetValidError,
    r.KeyExpiredError: e.KeyExpiredError,
    r.KeyRevokedError: e.KeyRevokedError,
}


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


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """A record that passed every check, decoded, with what a minimised delivery needs to stay verifiable."""

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


class EnvelopeVerifier:
    """Verifies records against one registry and catalogue; remembers verified batch notes."""

    def __init__(self, registry: Registry, catalogue: Catalogue, *, max_skew: timedelta | None = timedelta(minutes=15),
                 note_cache_size: int = 4096) -> None:
        self.registry = registry
        self.catalogue = catalogue
        self.max_skew = max_skew
        self._notes: OrderedDict[str, tuple[BatchNote, str]] = OrderedDict()
        self._cache_size = note_cache_size

    def verify(self, record: ReceivedRecord) -> VerifiedEvent:
        """The verified event, or a VerificationError naming the failed check."""
        h = _headers(record.headers)
        key, value = record.key, record.value
        if key is None or value is None:
            raise e.MalformedEnvelopeError("the record has no key or no value")
        if h[H_SPECVERSION] != SPECVERSION.encode() or h[H_CONTENT_TYPE] != CONTENT_TYPE.encode():
            raise e.MalformedEnvelopeError("ce_specversion must be 1.0 and content-type application/avro")
        try:
            attributes = EventAttributes(h[H_ID].decode(), h[H_SOURCE].decode(), h[H_TYPE].decode(),
                                         h[H_TIME].decode(), h[H_DATASCHEMA].decode())
            moment = parse_time(attributes.time)
        except (UnicodeDecodeError, ValueError) as exc:
            raise e.MalformedEnvelopeError(f"a CloudEvents attribute is not well-formed: {exc}") from exc
        seed = h[H_SEED]
        if len(seed) != SEED_SIZE:
            raise e.MalformedEnvelopeError(f"ce_exseed has {len(seed)} bytes, not {SEED_SIZE}")

        self._check_source(attributes)
        if self.max_skew is not None and record.timestamp_ms > 0:
            skew = abs(moment - datetime.fromtimestamp(record.timestamp_ms / 1000, UTC))
            if skew > self.max_skew:
                raise e.TimeSkewError(f"ce_time {attributes.time} is {skew} away from the broker's timestamp")

        schema, decoded = self._decode(attributes, value)
        try:
            _, parts = schema.encode_parts(decoded)
        except SchemaError as exc:
            raise e.BadDatumError(f"the decoded datum does not re-encode: {exc}") from exc
        if len(value) - _HEADER != sum(map(len, parts)) or b"".join(parts) != value[_HEADER:]:
            raise e.BadDatumError("the datum is not in canonical Avro encoding (or has trailing bytes)")
        commitment_list = commitments(seed, key, schema.field_names, parts)
        digest = event_digest(attributes, commitment_list)

        note_text = _text(h[H_BATCH], H_BATCH)
        batch, key_id = self._open_batch(note_text, attributes.source, moment)
        self._check_inclusion(digest, h[H_PROOF], batch)
        self._key_valid_at(attributes.source, key_id, moment)
        return VerifiedEvent(attributes, moment, schema, decoded, key, seed, commitment_list, digest, h[H_PROOF],
                             note_text, key_id)

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

    def _decode(self, attributes: EventAttributes, value: bytes) -> tuple[RecordSchema, dict[str, Any]]:
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
        try:
            return schema, schema.decode_datum(value, _HEADER)
        except SchemaError as exc:
            raise e.BadDatumError(f"the datum does not decode as {schema.label}: {exc}") from exc

    def _open_batch(self, note_text: str, source: str, moment: datetime) -> tuple[BatchNote, str]:
        cached = self._notes.get(note_text)
        if cached is not None:
            self._notes.move_to_end(note_text)
            return cached
        trust = _SourceKeys(self.registry, source, moment)
        try:
            opened = open_note(note_text, trust)
        except InvalidSignatureError as exc:
            raise e.BadSignatureError(f"the batch note's signature by {source} does not verify") from exc
        except UnverifiedNoteError as exc:
            raise trust.rejection() from exc
        except CryptoError as exc:
            if trust.rejected is not None:
                raise trust.rejection() from exc
            raise e.MalformedEnvelopeError(f"the batch note cannot be opened: {exc}") from exc
        batch = parse_batch_text(opened.text)
        if batch.source != source:
            raise e.BadSignatureError(f"the batch note is for {batch.source!r}, the event's source is {source!r}")
        entry = (batch, opened.signatures[0].key_id)
        self._notes[note_text] = entry
        if len(self._notes) > self._cache_size:
            self._notes.popitem(last=False)
        return entry

    @staticmethod
    def _check_inclusion(digest: bytes, raw_proof: bytes, batch: BatchNote) -> None:
        index, size, hashes = decode_proof(raw_proof)
        if size != batch.size:
            raise e.BadProofError(f"the proof is for a batch of {size}, the note signs a batch of {batch.size}")
        try:
            computed = root_from_inclusion_proof(leaf_hash(digest), index, size, hashes)
        except MerkleError as exc:
            raise e.BadProofError(f"the inclusion proof is invalid: {exc}") from exc
        if computed != batch.root:
            raise e.CommitmentMismatchError("the event is not what the publisher signed: its fields, key, "
                                            "attributes or proof were altered")

    def _key_valid_at(self, source: str, key_id: str, moment: datetime) -> None:
        try:
            self.registry.verifier(source, key_id, moment)
        except r.KeyRejectedError as exc:
            raise _KEY_ERRORS.get(type(exc), e.KeyRejectedError)(str(exc)) from exc


class _SourceKeys:
    """The trust store for one batch note: the source's keys valid at the event's time; remembers why not."""

    def __init__(self, registry: Registry, source: str, moment: datetime) -> None:
        self._registry, self._source, self._moment = registry, source, moment
        self.rejected: r.RegistryError | None = None

    def verifier(self, name: str, key_id: str) -> Verifier:
        if name != self._source:
            raise UnknownVerifierError(name, key_id, "not the event's source")
        try:
            return self._registry.verifier(name, key_id, self._moment)
        except r.RegistryError as exc:
            self.rejected = exc
            raise UnknownVerifierError(name, key_id, str(exc)) from exc

    def rejection(self) -> e.VerificationError:
        if isinstance(self.rejected, r.KeyRejectedError):
            return _KEY_ERRORS.get(type(self.rejected), e.KeyRejectedError)(str(self.rejected))
        return e.UnknownKeyError(f"the batch note carries no signature by a registered key of {self._source}")


def verify(record: ReceivedRecord, registry: Registry, catalogue: Catalogue) -> VerifiedEvent:
    """Verify one record (see :class:`EnvelopeVerifier`; use one of those to verify many)."""
    return EnvelopeVerifier(registry, catalogue).verify(record)


def _headers(raw: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name, value in raw:
        if name not in _KNOWN:
            raise e.MalformedEnvelopeError(f"unexpected header {name!r}")
        if name in found:
            raise e.MalformedEnvelopeError(f"header {name!r} appears twice")
        found[name] = value
    missing = [n for n in _REQUIRED if n not in found]
    if missing:
        raise e.MalformedEnvelopeError(f"missing header(s): {', '.join(missing)}")
    return found


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise e.MalformedEnvelopeError(f"{name} is not UTF-8") from exc
