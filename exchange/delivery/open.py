"""Opening a delivery (recipient side): every check, in order, or a typed error — never unverified data.

Whatever a record holds, :meth:`DeliveryOpener.open` returns a verified delivery or raises an
:class:`~exchange.delivery.errors.OpenError` subclass, nothing else.

0. Bounds, before any work: the key, the value, the topic, the number of headers and each header's value are
   within the limits of :mod:`exchange.delivery.wire` (:data:`~exchange.delivery.wire.HEADER_LIMITS` and the
   ``MAX_*`` constants).
1. Headers: exactly the delivery headers (plus ``traceparent``/``tracestate``), none twice; key and value present.
2. Data key: the ``ce_exdatakey`` note is signed by a key of ``exchange-router`` valid at its ``created`` time,
   is wrapped for this recipient's key, unwraps, and is not older than the record allows. Verified and unwrapped
   once per distinct note (once per rotation), then remembered.
3. Decrypt with the associated data (topic, key, ce_id, agreement, data key id): a moved or altered record fails.
4. Parse the disclosure; every other header must equal what it says.
5. The schema named by ``ce_dataschema`` is in the catalogue; the key is consistent with the disclosure (the
   disclosed, publisher-signed key, or the router's recipient pseudonym when pseudonymised).
6. The publisher's signature over the minimised record: commitments (recomputed for disclosed fields, as given for
   withheld ones) → event digest → inclusion proof → batch root in a note signed by ``ce_source`` with a key
   valid at ``ce_time``; ``ce_source`` authoritative for ``ce_type``.
7. Decode the disclosed values with their schema.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag

from exchange.crypto.errors import CryptoError, UnverifiedNoteError
from exchange.crypto.keys import EncryptionKey
from exchange.delivery import errors as e
from exchange.delivery.datakeys import ROUTER_IDENTITY, OpenedDataKey, open_data_key
from exchange.delivery.disclosure import Disclosed, Disclosure, Withheld, decode_disclosure
from exchange.delivery.wire import (
    CONTENT_TYPE,
    DELIVERY_HEADERS,
    H_AGREEMENT,
    H_DATAKEY,
    H_PURPOSE,
    HEADER_LIMITS,
    MAX_HEADERS,
    MAX_KEY_SIZE,
    MAX_TOPIC_SIZE,
    MAX_VALUE_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    VALUE_VERSION,
    agreement_header,
    delivery_aad,
)
from exchange.envelope.attributes import (
    H_CONTENT_TYPE,
    H_ID,
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
from exchange.envelope.commitments import event_digest
from exchange.envelope.errors import BadSignatureError, CommitmentMismatchError, VerificationError
from exchange.registry import Registry
from exchange.registry.errors import KeyRejectedError, NotAuthoritativeError
from exchange.schemas import Catalogue, RecordSchema
from exchange.schemas.errors import SchemaError

__all__ = ["DeliveryOpener", "Provenance", "ReceivedDelivery"]

_KNOWN = frozenset(HEADER_LIMITS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_CHECKED = ((H_ID, "id"), (H_SOURCE, "source"), (H_TYPE, "type"), (H_TIME, "time"))


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a delivered record comes from and under which agreement it was delivered."""

    source: str
    """The publishing agency (its signature verified)."""
    event_id: str
    event_time: datetime
    agreement_id: str
    agreement_version: int
    purpose: str
    schema_revision: int
    dataschema: str
    publisher_key_id: str
    """The key of ``source`` that signed the event's batch."""
    router_key_id: str
    """The ``exchange-router`` key that signed the data key (and so vouches for the agreement and pseudonym)."""
    data_key_id: str
    pseudonym_attested_by: str | None
    """``exchange-router`` when the subject pseudonym is the router's (not publisher-signed); else None."""


@dataclass(frozen=True, slots=True)
class ReceivedDelivery:
    """A verified, decrypted delivery: the disclosed fields, typed, and their provenance."""

    record_type: str
    fields: dict[str, Any]
    """The disclosed fields, decoded with the record's schema, in schema order."""
    withheld: tuple[str, ...]
    """The schema's fields this recipient did not receive."""
    subject_pseudonym: str | None
    """This recipient's pseudonym of the subject, when the agreement pseudonymises (else None)."""
    key: bytes
    """The record's Kafka key: the subject pseudonym the publisher signed, or ``subject_pseudonym``."""
    provenance: Provenance

    @property
    def event_id(self) -> str:
        """The original event's ``ce_id``."""
        return self.provenance.event_id

    @property
    def idempotency_key(self) -> tuple[str, str]:
        """``(ce_id, agreement id)``: unique per delivery. An agency with two agreements on one record type gets
        one delivery of an event per agreement, with the same ``ce_id``."""
        return self.provenance.event_id, self.provenance.agreement_id


class DeliveryOpener:
    """Opens the deliveries of one recipient with its encryption key; remembers data keys and batch notes.

    ``encryption_key`` is the recipient's key, or several (the current one first, then keys retired by a rotation
    whose deliveries may still be unread). ``max_data_key_age`` bounds how long after its creation a data key may
    be used (records' broker timestamps are compared, when given): a router key revoked later cannot make notes
    dated before its revocation last for ever. Keep the router's rotation time well below it.
    """

    def __init__(self, recipient: str, encryption_key: EncryptionKey | Sequence[EncryptionKey], registry: Registry,
                 catalogue: Catalogue, *, max_data_key_age: timedelta = timedelta(hours=1),
                 max_skew: timedelta = timedelta(minutes=15), cache_size: int = 256) -> None:
        keys = (encryption_key,) if isinstance(encryption_key, EncryptionKey) else tuple(encryption_key)
        if not keys:
            raise ValueError("the opener needs at least one encryption key")
        for key in keys:
            if key.name != recipient:
                raise ValueError(f"encryption key {key.key_id} is {key.name}'s, not {recipient}'s")
        self.recipient = recipient
        self.registry = registry
        self.catalogue = catalogue
        self.max_data_key_age = max_data_key_age
        self.max_skew = max_skew
        self._keys = keys
        self._cache_size = cache_size
        self._data_keys: OrderedDict[bytes, OpenedDataKey] = OrderedDict()
        self._batches = BatchNoteVerifier(registry, cache_size=cache_size)

    def open(self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]], topic: str, *,
             timestamp_ms: int = 0) -> ReceivedDelivery:
        """The verified delivery, or an :class:`~exchange.delivery.errors.OpenError` naming the failed check.

        ``timestamp_ms`` is the record's broker timestamp; 0 or less means none (the data key's age is then not
        checked). Any integer is accepted: one beyond what a datetime holds is simply far from the data key.
        """
        if key is None or value is None:
            raise e.MalformedDeliveryError("the delivery has no key or no value")
        topic_bytes = _bounded(key, value, topic)
        h = _headers(headers)
        if h[H_SPECVERSION] != SPECVERSION.encode() or h[H_CONTENT_TYPE] != CONTENT_TYPE.encode():
            raise e.MalformedDeliveryError(f"ce_specversion must be {SPECVERSION} and content-type {CONTENT_TYPE}")
        data_key = self._data_key(h[H_DATAKEY])
        if timestamp_ms > 0:
            self._check_age(data_key, timestamp_ms)
        d = self._decrypt(data_key, topic_bytes, key, value, h)
        _check_headers(d, h)
        schema = self._schema(d.attributes)
        _check_key(d, schema, key)
        moment, publisher_key_id = self._verify_publisher(d, schema)
        fields: dict[str, Any] = {}
        withheld: list[str] = []
        for name, entry in zip(schema.field_names, d.fields, strict=True):
            if isinstance(entry, Withheld):
                withheld.append(name)
                continue
            try:
                fields[name] = schema.decode_field(name, entry.value)
            except SchemaError as exc:
                raise e.BadDisclosureError(f"field {name!r} does not decode: {exc}") from exc
        a = d.attributes
        provenance = Provenance(a.source, a.id, moment, d.agreement_id, d.agreement_version, d.purpose,
                                schema.revision, a.dataschema, publisher_key_id, data_key.router_key_id,
                                data_key.wrap.key_id, ROUTER_IDENTITY if d.pseudonymised else None)
        return ReceivedDelivery(a.type, fields, tuple(withheld), d.subject_pseudonym, key, provenance)

    # -- the checks -----------------------------------------------------------------------------------------

    def _data_key(self, note: bytes) -> OpenedDataKey:
        cached = self._data_keys.get(note)
        if cached is not None:
            self._data_keys.move_to_end(note)
            return cached
        opened = open_data_key(note, self.registry, self._keys)
        self._data_keys[note] = opened
        if len(self._data_keys) > self._cache_size:
            self._data_keys.popitem(last=False)
        return opened

    def _check_age(self, data_key: OpenedDataKey, timestamp_ms: int) -> None:
        # In integer milliseconds (both times have millisecond precision): any timestamp compares, even one past
        # the year 9999 that no datetime can hold.
        created_ms = (data_key.wrap.created_at - _EPOCH) // _MILLISECOND
        if (created_ms - timestamp_ms > self.max_skew // _MILLISECOND
                or timestamp_ms - created_ms > self.max_data_key_age // _MILLISECOND):
            raise e.BadDataKeyError(f"data key {data_key.wrap.key_id} was made at {data_key.wrap.created}, too far "
                                    f"from the record's time {_show_time(timestamp_ms)}")

    @staticmethod
    def _decrypt(data_key: OpenedDataKey, topic: bytes, key: bytes, value: bytes, h: dict[str, bytes]) -> Disclosure:
        if len(value) < 1 + NONCE_SIZE + TAG_SIZE or value[:1] != VALUE_VERSION:
            raise e.MalformedDeliveryError("the value is not a version-1 sealed delivery")
        aad = delivery_aad(topic, key, h[H_ID], h[H_AGREEMENT], data_key.wrap.key_id.encode())
        try:
            plaintext = data_key.aead.decrypt(value[1:1 + NONCE_SIZE], value[1 + NONCE_SIZE:], aad)
        except InvalidTag as exc:
            raise e.DecryptFailedError(f"the delivery does not decrypt under data key {data_key.wrap.key_id} for "
                                       f"this topic, key, ce_id and agreement") from exc
        return decode_disclosure(plaintext)

    def _schema(self, attributes: EventAttributes) -> RecordSchema:
        fingerprint_hex = attributes.dataschema.rpartition(":")[2]
        try:
            schema = self.catalogue.by_fingerprint(bytes.fromhex(fingerprint_hex))
        except (ValueError, SchemaError) as exc:
            raise e.UnknownDeliverySchemaError(f"ce_dataschema {attributes.dataschema!r} names no schema of the "
                                               f"catalogue") from exc
        if (schema.type_name != attributes.type
                or dataschema_uri(schema.type_name, schema.revision, schema.fingerprint) != attributes.dataschema):
            raise e.UnknownDeliverySchemaError(f"ce_dataschema {attributes.dataschema!r} does not match "
                                               f"ce_type {attributes.type!r} and the catalogue")
        return schema

    def _verify_publisher(self, d: Disclosure, schema: RecordSchema) -> tuple[datetime, str]:
        a = d.attributes
        try:
            moment = parse_time(a.time)
            moment.astimezone(UTC)  # within the years 1 to 9999 in UTC too, as the registry's key checks need
        except (ValueError, OverflowError) as exc:
            raise e.BadDisclosureError(f"ce_time {a.time!r} is not an RFC 3339 time within the years 1 to "
                                       f"9999") from exc
        try:
            self.registry.require_authoritative(a.source, a.type)
        except NotAuthoritativeError as exc:
            raise e.PublisherNotAuthoritativeError(str(exc)) from exc
        digest = event_digest(a, d.commitments(schema.field_names))
        try:
            signed = self._batches.open(d.note, a.source, moment)
        except VerificationError as exc:
            raise _note_error(exc, a.source) from exc
        try:
            self._batches.check_inclusion(digest, d.proof, signed)
        except CommitmentMismatchError as exc:
            raise e.PublisherSignatureError(f"event {a.id} is not what {a.source} signed: a disclosed value, a "
                                            f"commitment, the key or an attribute differs") from exc
        except VerificationError as exc:
            detail = exc if isinstance(exc.__cause__, CryptoError) else f"the inclusion proof is invalid: {exc}"
            raise e.PublisherSignatureError(str(detail)) from exc
        try:
            self._batches.check_key(a.source, signed.key_id, moment)
        except VerificationError as exc:
            raise e.PublisherKeyError(str(exc)) from exc
        return moment, signed.key_id

    def __repr__(self) -> str:
        return f"DeliveryOpener(recipient={self.recipient!r}, key_ids={[k.key_id for k in self._keys]!r})"


def _note_error(exc: VerificationError, source: str) -> e.OpenError:
    """What a batch note the envelope's checks refused means to a recipient."""
    cause = exc.__cause__
    if isinstance(exc, BadSignatureError):  # a signature that does not verify, or a note for another source
        return e.PublisherSignatureError(str(exc))
    if isinstance(cause, UnverifiedNoteError):
        # A key of the source that the registry refuses (unknown, not yet valid, expired, revoked) is a key
        # problem; signatures by nobody the registry knows for the source are a signature problem.
        rejected = any(isinstance(miss.__cause__, KeyRejectedError) for miss in cause.ignored)
        cls = e.PublisherKeyError if rejected else e.PublisherSignatureError
        return cls(f"the batch note has no valid signature by {source}: {cause}")
    detail = cause if isinstance(cause, CryptoError) else exc
    return e.PublisherSignatureError(f"the batch note cannot be opened: {detail}")


def _bounded(key: bytes, value: bytes, topic: str) -> bytes:
    """Check the key's, the value's and the topic's length; the topic's bytes."""
    if len(key) > MAX_KEY_SIZE:
        raise e.MalformedDeliveryError(f"the key has {len(key)} bytes; at most {MAX_KEY_SIZE} are allowed")
    if len(value) > MAX_VALUE_SIZE:
        raise e.MalformedDeliveryError(f"the value has {len(value)} bytes; at most {MAX_VALUE_SIZE} are allowed")
    try:
        topic_bytes = topic.encode()
    except UnicodeEncodeError as exc:
        raise e.MalformedDeliveryError("the topic name is not encodable as UTF-8") from exc
    if len(topic_bytes) > MAX_TOPIC_SIZE:
        raise e.MalformedDeliveryError(f"the topic name has {len(topic_bytes)} bytes; at most {MAX_TOPIC_SIZE} are "
                                       f"allowed")
    return topic_bytes


def _headers(raw: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    """The headers by name: few enough, each known, within its length bound, present once (none missing)."""
    if len(raw) > MAX_HEADERS:
        raise e.MalformedDeliveryError(f"the record has {len(raw)} headers; a delivery has at most {MAX_HEADERS}")
    for name, value in raw:
        limit = HEADER_LIMITS.get(name)
        if limit is None:
            raise e.MalformedDeliveryError(f"unexpected header {name[:64]!r}")
        if len(value) > limit:
            raise e.MalformedDeliveryError(f"header {name} has {len(value)} bytes; at most {limit} are allowed")
    return parse_headers(raw, DELIVERY_HEADERS, _KNOWN, e.MalformedDeliveryError)


def _show_time(timestamp_ms: int) -> str:
    """A broker timestamp as RFC 3339 when a datetime can hold it, else as milliseconds since the epoch."""
    try:
        return (_EPOCH + timestamp_ms * _MILLISECOND).isoformat()
    except OverflowError:
        return f"{timestamp_ms} ms after the epoch"


def _check_headers(d: Disclosure, h: dict[str, bytes]) -> None:
    for header, attribute in _CHECKED:
        if h[header] != getattr(d.attributes, attribute).encode():
            raise e.HeaderMismatchError(f"header {header} differs from the sealed event")
    if h[H_AGREEMENT] != agreement_header(d.agreement_id, d.agreement_version).encode():
        raise e.HeaderMismatchError(f"header {H_AGREEMENT} differs from the sealed agreement")
    if h[H_PURPOSE] != d.purpose.encode():
        raise e.HeaderMismatchError(f"header {H_PURPOSE} differs from the sealed purpose")


def _check_key(d: Disclosure, schema: RecordSchema, key: bytes) -> None:
    if len(d.fields) != len(schema.field_names):
        raise e.BadDisclosureError(f"the disclosure has {len(d.fields)} fields, {schema.label} has "
                                   f"{len(schema.field_names)}")
    if d.subject_pseudonym is None:
        if not isinstance(d.key, Disclosed) or d.key.value != key:
            raise e.BadDisclosureError("the record's key is not the key the publisher signed")
        return
    key_field = d.fields[schema.field_names.index(schema.key_field)]
    if not isinstance(d.key, Withheld) or not isinstance(key_field, Withheld):
        raise e.BadDisclosureError("a pseudonymised disclosure must withhold the key and the key field")
    if key != d.subject_pseudonym.encode():
        raise e.BadDisclosureError("the record's key is not the recipient pseudonym the disclosure names")
