"""Minimised, encrypted delivery: the router seals, the recipient opens (router steps 3 and 4).

The router keeps one :class:`DeliverySealer` and seals each PERMIT::

    sealer = DeliverySealer(keystore.signer("exchange-router"), registry, pseudonymiser)
    delivery = sealer.seal(verified_event, decision)      # topic, key, value, headers: produce as is

A recipient keeps one :class:`DeliveryOpener` (or uses :class:`exchange.subscriber.Subscriber`, which does)::

    opener = DeliveryOpener("tax-board", keystore.encryption_private_key("tax-board"), registry, catalogue)
    received = opener.open(record.key, record.value, record.headers, record.topic)

Only the permitted fields are disclosed; the recipient still verifies the publisher's signature over them
(:mod:`~exchange.delivery.disclosure`). Data keys are AES-256-GCM, wrapped for the recipient's X25519 key and
signed by ``exchange-router`` once per rotation (:mod:`~exchange.delivery.datakeys`); the wire layout is in
:mod:`~exchange.delivery.wire`, with the bounds both sides enforce. Anything that does not verify raises an
:class:`OpenError` with a reason code, and nothing else; what cannot be sealed raises a :class:`SealError`.
"""

from __future__ import annotations

from exchange.delivery.datakeys import ROUTER_IDENTITY, DataKeys, DataKeyWrap
from exchange.delivery.disclosure import Disclosed, Disclosure, Withheld, decode_disclosure, encode_disclosure
from exchange.delivery.errors import (
    BadDataKeyError,
    BadDisclosureError,
    DecryptFailedError,
    DeliveryError,
    HeaderMismatchError,
    InternalOpenError,
    MalformedDeliveryError,
    NotPermittedError,
    OpenError,
    PublisherKeyError,
    PublisherNotAuthoritativeError,
    PublisherSignatureError,
    RecipientKeyError,
    RouterKeyRejectedError,
    SealError,
    UnencodableError,
    UnknownDeliverySchemaError,
    UnknownRouterKeyError,
    WrongRecipientError,
)
from exchange.delivery.minimise import Minimiser, Plan, minimise
from exchange.delivery.open import DeliveryOpener, Provenance, ReceivedDelivery
from exchange.delivery.seal import DeliverySealer, SealedDelivery
from exchange.delivery.wire import CONTENT_TYPE, delivery_topic

__all__ = [
    "CONTENT_TYPE",
    "ROUTER_IDENTITY",
    "BadDataKeyError",
    "BadDisclosureError",
    "DataKeyWrap",
    "DataKeys",
    "DecryptFailedError",
    "DeliveryError",
    "DeliveryOpener",
    "DeliverySealer",
    "Disclosed",
    "Disclosure",
    "HeaderMismatchError",
    "InternalOpenError",
    "MalformedDeliveryError",
    "Minimiser",
    "NotPermittedError",
    "OpenError",
    "Plan",
    "Provenance",
    "PublisherKeyError",
    "PublisherNotAuthoritativeError",
    "PublisherSignatureError",
    "ReceivedDelivery",
    "RecipientKeyError",
    "RouterKeyRejectedError",
    "SealError",
    "SealedDelivery",
    "UnencodableError",
    "UnknownDeliverySchemaError",
    "UnknownRouterKeyError",
    "Withheld",
    "WrongRecipientError",
    "decode_disclosure",
    "delivery_topic",
    "encode_disclosure",
    "minimise",
]
