"""Signed envelopes: CloudEvents headers, Avro single-object values, field commitments, batch signatures.

Publishers :func:`prepare` events and :func:`seal_events` them in batches; the router and recipients
:func:`verify` them (or keep an :class:`EnvelopeVerifier` for many). Pure: no Kafka, no clock of its own.
"""

from __future__ import annotations

from exchange.envelope.attributes import EventAttributes, dataschema_uri, format_time, parse_time, uuid7
from exchange.envelope.batchnotes import BatchNoteVerifier, SignedBatch
from exchange.envelope.build import Envelope, PreparedEvent, ingress_topic, prepare, seal_events
from exchange.envelope.errors import (
    BadDatumError,
    BadKeyError,
    BadProofError,
    BadSignatureError,
    CommitmentMismatchError,
    InternalError,
    KeyExpiredError,
    KeyNotYetValidError,
    KeyRejectedError,
    KeyRevokedError,
    MalformedEnvelopeError,
    NotAuthoritativeError,
    OversizedRecordError,
    ReplayedEventError,
    SchemaMismatchError,
    StaleEventError,
    TimeSkewError,
    UnknownKeyError,
    UnknownSchemaError,
    UnknownSourceError,
    UntrustedTimestampError,
    VerificationError,
    WrongPartitionError,
)
from exchange.envelope.pseudonym import Pseudonymiser
from exchange.envelope.verify import EnvelopeVerifier, ReceivedRecord, VerifiedEvent, verify

__all__ = [
    "BadDatumError",
    "BadKeyError",
    "BadProofError",
    "BadSignatureError",
    "BatchNoteVerifier",
    "CommitmentMismatchError",
    "Envelope",
    "EnvelopeVerifier",
    "EventAttributes",
    "InternalError",
    "KeyExpiredError",
    "KeyNotYetValidError",
    "KeyRejectedError",
    "KeyRevokedError",
    "MalformedEnvelopeError",
    "NotAuthoritativeError",
    "OversizedRecordError",
    "PreparedEvent",
    "Pseudonymiser",
    "ReceivedRecord",
    "ReplayedEventError",
    "SchemaMismatchError",
    "SignedBatch",
    "StaleEventError",
    "TimeSkewError",
    "UnknownKeyError",
    "UnknownSchemaError",
    "UnknownSourceError",
    "UntrustedTimestampError",
    "VerificationError",
    "VerifiedEvent",
    "WrongPartitionError",
    "dataschema_uri",
    "format_time",
    "ingress_topic",
    "parse_time",
    "prepare",
    "seal_events",
    "uuid7",
    "verify",
]
