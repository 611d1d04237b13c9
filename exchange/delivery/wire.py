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
"""

from __future__ import annotations

import struct

__all__ = [
    "CONTENT_TYPE",
    "DELIVERY_HEADERS",
    "H_AGREEMENT",
    "H_DATAKEY",
    "H_PURPOSE",
    "NONCE_SIZE",
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

VALUE_VERSION = b"\x01"
NONCE_SIZE = 12
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
    return b"".join((_AAD, _U16(len(topic)), topic, _U16(len(agreement)), agreement, _U16(len(data_key_id)),
                     data_key_id))


def aad_part(value: bytes) -> bytes:
    """One length-prefixed part of the associated data."""
    return _U16(len(value)) + value


def delivery_aad(topic: bytes, key: bytes, event_id: bytes, agreement: bytes, data_key_id: bytes) -> bytes:
    """The AES-GCM associated data of one delivery (all parts as bytes; each is length-prefixed)."""
    return b"".join((aad_prefix(topic, agreement, data_key_id), aad_part(key), aad_part(event_id)))
