"""Pseudonyms: the only form in which a person appears in Kafka keys, headers and the access log.

A subject pseudonym is a keyed HMAC-SHA-256 of the person id under the exchange's pseudonym secret, so every
publisher derives the same key for the same citizen (per-citizen ordering, co-partitioning with consents) and
nobody without the secret can test a guessed id. A recipient pseudonym additionally mixes in the recipient, so
two pseudonymising recipients cannot join their data on it.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

__all__ = ["Pseudonymiser"]

_SUBJECT = b"exchange.subject/v1\x00"
_RECIPIENT = b"exchange.recipient/v1\x00"


class Pseudonymiser:
    """Derives pseudonyms from a secret; the secret never shows in ``repr``."""

    __slots__ = ("_secret",)

    def __init__(self, secret: SecretStr | bytes) -> None:
        raw = secret.get_secret_value().encode() if isinstance(secret, SecretStr) else secret
        if len(raw) < 16:
            raise ValueError("the pseudonym secret must have at least 16 bytes")
        self._secret = raw

    def subject(self, person_id: str) -> str:
        """The subject pseudonym (32 hex digits): the Kafka key of every event about this person."""
        return hmac.new(self._secret, _SUBJECT + person_id.encode(), hashlib.sha256).hexdigest()[:32]

    def for_recipient(self, recipient: str, person_id: str) -> str:
        """A pseudonym of the person that only this recipient sees (pseudonymising agreements)."""
        message = _RECIPIENT + recipient.encode() + b"\x00" + person_id.encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:
        return "Pseudonymiser(secret=**********)"
