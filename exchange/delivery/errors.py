"""Why a delivery could not be sealed (router side) or was not accepted (recipient side).

Each class names one failed check and carries a stable reason code (``.reason``) for logs, metrics and the
router's access-log entries. On the recipient's side a delivery that raises one of these is never returned as
data::

    ExchangeError
    └── DeliveryError                          .reason
        ├── SealError                          SEAL_FAILED          the router cannot seal this delivery
        │   ├── NotPermittedError              NOT_PERMITTED        the decision is not a PERMIT
        │   ├── RecipientKeyError              RECIPIENT_KEY        no encryption key of the recipient is valid now
        │   └── UnencodableError               UNENCODABLE          a part does not fit the wire format or exceeds
        │                                                           what recipients accept (see delivery.wire)
        └── OpenError                          NOT_OPENED           the recipient refuses the delivery
            ├── MalformedDeliveryError         MALFORMED_DELIVERY   no key/value, a header missing, repeated, unknown
            ├── BadDataKeyError                BAD_DATA_KEY         ce_exdatakey is not a well-formed, verified wrap
            │   │                                                   that unwraps, or is too old for the record
            │   ├── UnknownRouterKeyError      UNKNOWN_ROUTER_KEY   signed by no registered key of exchange-router
            │   └── RouterKeyRejectedError     ROUTER_KEY_REJECTED  the router key was revoked, expired or not yet
            │                                                       valid when the data key was made
            ├── WrongRecipientError            WRONG_RECIPIENT      the data key is wrapped for another agency/key
            ├── DecryptFailedError             DECRYPT_FAILED       the AES-GCM tag does not verify (value, topic,
            │                                                       key, ce_id, agreement or data key changed)
            ├── BadDisclosureError             BAD_DISCLOSURE       the decrypted disclosure is malformed or
            │   │                                                   inconsistent with the key
            │   └── HeaderMismatchError        HEADER_MISMATCH      a header disagrees with the sealed disclosure
            ├── UnknownDeliverySchemaError     UNKNOWN_SCHEMA       the record's schema is not in the catalogue
            ├── PublisherSignatureError        PUBLISHER_SIGNATURE  the minimised record is not what the publisher
            │                                                       signed (commitments, proof or batch note)
            ├── PublisherKeyError              PUBLISHER_KEY        the publisher's key was not valid at ce_time
            ├── PublisherNotAuthoritativeError NOT_AUTHORITATIVE    ce_source may not publish ce_type
            └── InternalOpenError              INTERNAL             opening raised something unexpected (a bug):
                                                                    the Subscriber reports it like any refusal
"""

from __future__ import annotations

from typing import ClassVar

from exchange.errors import ExchangeError

__all__ = [
    "BadDataKeyError",
    "BadDisclosureError",
    "DecryptFailedError",
    "DeliveryError",
    "HeaderMismatchError",
    "InternalOpenError",
    "MalformedDeliveryError",
    "NotPermittedError",
    "OpenError",
    "PublisherKeyError",
    "PublisherNotAuthoritativeError",
    "PublisherSignatureError",
    "RecipientKeyError",
    "RouterKeyRejectedError",
    "SealError",
    "UnencodableError",
    "UnknownDeliverySchemaError",
    "UnknownRouterKeyError",
    "WrongRecipientError",
]


class DeliveryError(ExchangeError):
    """A delivery failed one check; ``reason`` is its stable code."""

    reason: ClassVar[str] = "DELIVERY_FAILED"


class SealError(DeliveryError):
    """The router cannot seal this delivery."""

    reason = "SEAL_FAILED"


class NotPermittedError(SealError):
    """Only a PERMIT decision is delivered."""

    reason = "NOT_PERMITTED"


class RecipientKeyError(SealError):
    """The recipient has no encryption key, or none valid now: nothing can be encrypted for it."""

    reason = "RECIPIENT_KEY"


class UnencodableError(SealError):
    """A part of the delivery does not fit its place on the wire: longer than its length prefix or than the
    bound a recipient accepts (:mod:`exchange.delivery.wire`), or a number outside its field's range."""

    reason = "UNENCODABLE"


class OpenError(DeliveryError):
    """The recipient refuses a delivery."""

    reason = "NOT_OPENED"


class MalformedDeliveryError(OpenError):
    reason = "MALFORMED_DELIVERY"


class BadDataKeyError(OpenError):
    reason = "BAD_DATA_KEY"


class UnknownRouterKeyError(BadDataKeyError):
    reason = "UNKNOWN_ROUTER_KEY"


class RouterKeyRejectedError(BadDataKeyError):
    reason = "ROUTER_KEY_REJECTED"


class WrongRecipientError(OpenError):
    reason = "WRONG_RECIPIENT"


class DecryptFailedError(OpenError):
    reason = "DECRYPT_FAILED"


class BadDisclosureError(OpenError):
    reason = "BAD_DISCLOSURE"


class HeaderMismatchError(BadDisclosureError):
    reason = "HEADER_MISMATCH"


class UnknownDeliverySchemaError(OpenError):
    reason = "UNKNOWN_SCHEMA"


class PublisherSignatureError(OpenError):
    reason = "PUBLISHER_SIGNATURE"


class PublisherKeyError(OpenError):
    reason = "PUBLISHER_KEY"


class PublisherNotAuthoritativeError(OpenError):
    reason = "NOT_AUTHORITATIVE"


class InternalOpenError(OpenError):
    """Opening a record raised something that is not an :class:`OpenError` (a bug, never a verdict on the data).

    The :class:`~exchange.subscriber.Subscriber` wraps such an exception in this error (the original is its
    ``__cause__``, its class name in :attr:`exception_type`) so that one record cannot stop the stream.
    """

    reason = "INTERNAL"

    def __init__(self, message: str, exception_type: str = "") -> None:
        super().__init__(message)
        self.exception_type = exception_type
