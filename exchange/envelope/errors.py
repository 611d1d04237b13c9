"""Why a received record was not accepted. Each class names one failed check and carries a stable reason code
(``.reason``) that goes into the quarantine entry and the access log's REJECT entry::

    ExchangeError
    └── VerificationError                 .reason
        ├── MalformedEnvelopeError        MALFORMED_ENVELOPE   a header is missing, repeated, too long or malformed
        ├── OversizedRecordError          OVERSIZED            the value is longer than an ingress record may be
        ├── BadKeyError                   BAD_KEY              the Kafka key has not the shape the key kind prescribes
        ├── UnknownSchemaError            UNKNOWN_SCHEMA       the datum's fingerprint is not in the catalogue
        ├── SchemaMismatchError           SCHEMA_MISMATCH      ce_type / ce_dataschema disagree with the datum
        ├── BadDatumError                 BAD_DATUM            the datum does not decode (or not canonically)
        ├── CommitmentMismatchError       COMMITMENT_MISMATCH  the fields do not match what was signed
        ├── BadProofError                 BAD_PROOF            the inclusion proof does not lead to the batch root
        ├── BadSignatureError             BAD_SIGNATURE        the batch note's signature does not verify
        ├── KeyRejectedError              (the signing key cannot vouch for this event)
        │   ├── UnknownKeyError           UNKNOWN_KEY
        │   ├── KeyNotYetValidError       KEY_NOT_YET_VALID
        │   ├── KeyExpiredError           KEY_EXPIRED
        │   └── KeyRevokedError           KEY_REVOKED
        ├── UnknownSourceError            UNKNOWN_SOURCE       ce_source is no agency of the registry
        ├── NotAuthoritativeError         NOT_AUTHORITATIVE    ce_source may not publish ce_type
        ├── TimeSkewError                 TIME_SKEW            ce_time is far from the broker's timestamp
        ├── UntrustedTimestampError       UNTRUSTED_TIMESTAMP  the record's timestamp is not the broker's own
        ├── WrongPartitionError           WRONG_PARTITION      the record is not on the partition its key maps to
        ├── StaleEventError               STALE                the event is older than its partition still accepts
        ├── ReplayedEventError            REPLAYED             this ce_id was seen before
        └── InternalError                 INTERNAL             a step failed unexpectedly on this record
"""

from __future__ import annotations

from typing import ClassVar

from exchange.errors import ExchangeError

__all__ = [
    "BadDatumError",
    "BadKeyError",
    "BadProofError",
    "BadSignatureError",
    "CommitmentMismatchError",
    "InternalError",
    "KeyExpiredError",
    "KeyNotYetValidError",
    "KeyRejectedError",
    "KeyRevokedError",
    "MalformedEnvelopeError",
    "NotAuthoritativeError",
    "OversizedRecordError",
    "ReplayedEventError",
    "SchemaMismatchError",
    "StaleEventError",
    "TimeSkewError",
    "UnknownKeyError",
    "UnknownSchemaError",
    "UnknownSourceError",
    "UntrustedTimestampError",
    "VerificationError",
    "WrongPartitionError",
]


class VerificationError(ExchangeError):
    """A received record failed one verification check; ``reason`` is its stable code."""

    reason: ClassVar[str] = "UNVERIFIED"


class MalformedEnvelopeError(VerificationError):
    reason = "MALFORMED_ENVELOPE"


class UnknownSchemaError(VerificationError):
    reason = "UNKNOWN_SCHEMA"


class SchemaMismatchError(VerificationError):
    reason = "SCHEMA_MISMATCH"


class BadDatumError(VerificationError):
    reason = "BAD_DATUM"


class CommitmentMismatchError(VerificationError):
    reason = "COMMITMENT_MISMATCH"


class BadProofError(VerificationError):
    reason = "BAD_PROOF"


class BadSignatureError(VerificationError):
    reason = "BAD_SIGNATURE"


class KeyRejectedError(VerificationError):
    reason = "KEY_REJECTED"


class UnknownKeyError(KeyRejectedError):
    reason = "UNKNOWN_KEY"


class KeyNotYetValidError(KeyRejectedError):
    reason = "KEY_NOT_YET_VALID"


class KeyExpiredError(KeyRejectedError):
    reason = "KEY_EXPIRED"


class KeyRevokedError(KeyRejectedError):
    reason = "KEY_REVOKED"


class UnknownSourceError(VerificationError):
    reason = "UNKNOWN_SOURCE"


class NotAuthoritativeError(VerificationError):
    reason = "NOT_AUTHORITATIVE"


class TimeSkewError(VerificationError):
    reason = "TIME_SKEW"


class ReplayedEventError(VerificationError):
    reason = "REPLAYED"


class OversizedRecordError(VerificationError):
    reason = "OVERSIZED"


class BadKeyError(VerificationError):
    reason = "BAD_KEY"


class UntrustedTimestampError(VerificationError):
    reason = "UNTRUSTED_TIMESTAMP"


class WrongPartitionError(VerificationError):
    reason = "WRONG_PARTITION"


class StaleEventError(VerificationError):
    reason = "STALE"


class InternalError(VerificationError):
    """A step raised something unexpected on one record: the record is quarantined and the stream goes on."""

    reason = "INTERNAL"
