"""A delivery on the wire: its headers, its value layout and the AES-GCM associated data.

A delivery is one Kafka record on ``delivery.<recipient>``::

    key      the subject pseudonym (the ingress key), or the recipient pseudonym when pseudonymising
    value    0x01 ‖ nonce (12 bytes) ‖ AES-256-GCM(disclosure) with its 16-byte tag
    headers  ce_specversion  1.0
             ce_id           the original event's id
             ce_source       the publishing agency
             ce_type         the record type
             ce_time         the event's time
             content-type    application/vnd.exchange.delivery
             ce_exagreement  <agreement id>:<version>
             ce_expurpose    the agreement's purpose code
             ce_exdatakey    the router-signed data-key note (the same bytes until the data key rotates)

No header holds personal data. The associated data binds the record to where it was put, so a ciphertext cannot
be moved to another topic or key or given another event id, agreement or data key::

    "exchange.delivery/v1" 0x00 ‖ for each of topic, ce_exagreement, data key id, key, ce_id: u16 length ‖ bytes

Every other header is checked by the recipient against the (authenticated) disclosure.

**Bounds.** Every part of a delivery has a length bound, the same for both sides: the router refuses to seal a
delivery that exceeds one (:class:`~exchange.delivery.errors.UnencodableError`), and the recipient refuses a record
that exceeds one before doing any work on it. :data:`HEADER_LIMITS` bounds each header's value in bytes;
:data:`MAX_KEY_SIZE`, :data:`MAX_VALUE_SIZE` and :data:`MAX_TOPIC_SIZE` the key, value and topic;
:data:`MAX_HEADERS` the number of headers. Each is far above what a genuine delivery carries; those of the key
and the headers are far below the u16 length prefixes of the associated data.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType

from exchange.delivery.errors import UnencodableError

__all__ = [
    "CONTENT_TYPE",
    "DELIVERY_HEADERS",
    "HEADER_LIMITS",
    "H_AGREEMENT",
    "H_DATAKEY",
    "H_PURPOSE",
    "MAX_HEADERS",
    "MAX_KEY_SIZE",
    "MAX_TOPIC_SIZE",
    "MAX_VALUE_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "U16_MAX",
    "VALUE_VERSION",
    "aad_part",
    "aad_prefix",
    "agreement_header",
    "delivery_aad",
    "delivery_topic",
    "parse_agreement_header",
]

CONTENT_TYPE = "application/vnd.exchange.delivery"
H_AGREEMENT = "ce_exagreement"
H_PURPOSE = "ce_expurpose"
H_DATAKEY = "ce_exdatakey"
DELIVERY_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", H_AGREEMENT,
                    H_PURPOSE, H_DATAKEY)
"""Every header a delivery carries, in the order the router writes them."""

HEADER_LIMITS: Mapping[str, int] = MappingProxyType({
    "ce_specversion": 8,
    "ce_id": 36,  # a UUID in canonical text form, as publishers make it
    "ce_source": 128,  # an agency id
    "ce_type": 160,  # a record type name
    "ce_time": 40,  # RFC 3339 with milliseconds (29 characters with an offset)
    "content-type": 64,
    H_AGREEMENT: 256,  # <agreement id>:<version>
    H_PURPOSE: 128,  # a purpose code
    H_DATAKEY: 2048,  # the data-key note: seven short lines and a signature (about 330 bytes)
    "traceparent": 64,  # W3C Trace Context: 55 characters in version 00
    "tracestate": 512,  # W3C Trace Context's own bound
})
"""The longest value of each header a delivery may carry, in bytes: the delivery headers and the W3C Trace Context
headers (no other header is accepted)."""
MAX_HEADERS = len(HEADER_LIMITS)
"""A record with more headers than this repeats one or carries an unknown one."""
MAX_KEY_SIZE = 256
"""The longest key, in bytes: the ingress bound (a record key; a subject or recipient pseudonym has 32)."""
MAX_VALUE_SIZE = 1 << 20
"""The longest value, in bytes (1 MiB, the broker's default record bound; a delivery is about 1 KiB)."""
MAX_TOPIC_SIZE = 249
"""The longest topic name, in bytes (Kafka's own bound)."""
U16_MAX = 0xFFFF
"""The longest part a u16 length prefix can announce."""

VALUE_VERSION = b"\x01"
NONCE_SIZE = 12
TAG_SIZE = 16
_AAD = b"exchange.delivery/v1\x00"
_U16 = struct.Struct(">H").pack


def delivery_topic(recipient: str) -> str:
    """The topic an agency's deliveries go to."""
    return f"delivery.{recipient}"


def agreement_header(agreement_id: str, version: int) -> str:
    """``<id>:<version>``."""
    return f"{agreement_id}:{version}"


def parse_agreement_header(text: str) -> tuple[str, int]:
    """``(id, version)`` of an ``<id>:<version>`` header; ValueError when it is not one."""
    agreement_id, sep, version = text.rpartition(":")
    if not sep or not agreement_id or not version.isdigit() or str(int(version)) != version:
        raise ValueError(f"{text!r} is not <agreement id>:<version>")
    return agreement_id, int(version)


def aad_prefix(topic: bytes, agreement: bytes, data_key_id: bytes) -> bytes:
    """The part of the associated data that is the same for every delivery of one agreement under one data key."""
    return b"".join((_AAD, aad_part(topic, "the topic"), aad_part(agreement, H_AGREEMENT),
                     aad_part(data_key_id, "the data key id")))


def aad_part(value: bytes, what: str = "a part of the associated data") -> bytes:
    """One length-prefixed part of the associated data; :class:`UnencodableError` if it is too long for one."""
    if len(value) > U16_MAX:
        raise UnencodableError(f"{what} has {len(value)} bytes; a u16 length prefix allows at most {U16_MAX}")
    return _U16(len(value)) + value


def delivery_aad(topic: bytes, key: bytes, event_id: bytes, agreement: bytes, data_key_id: bytes) -> bytes:
    """The AES-GCM associated data of one delivery (all parts as bytes; each is length-prefixed).

    Raises :class:`UnencodableError` if a part is too long for its length prefix.
    """
    return b"".join((aad_prefix(topic, agreement, data_key_id), aad_part(key, "the key"),
                     aad_part(event_id, "ce_id")))
