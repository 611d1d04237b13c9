"""Signing consent artefacts with the consent manager's key, and checking them against the trust registry.

The artefact's ``signature`` is base64 of ``key id (4 bytes) || Ed25519 signature (64 bytes)`` — the C2SP
signed-note layout — so a reader knows which of ``exchange-consent``'s keys to check with, even across a key
rotation, without trying each. The key must be a registry key of ``exchange-consent`` valid at the artefact's
``issued_at``; that time is read from the signed bytes themselves, so nothing unsigned chooses the key or time.
"""

from __future__ import annotations

from datetime import datetime

from exchange.consent.errors import ConsentSigningError
from exchange.crypto.keys import Signer
from exchange.errors import ExchangeError
from exchange.policy import ConsentArtefact, ConsentSignatureError
from exchange.policy.consent import CONSENT_ISSUER
from exchange.registry import Registry
from exchange.safeparse import SafeParseError, parse_json

__all__ = ["ConsentVerifier", "sign_artefact"]

_KEY_ID_SIZE = 4
_SIGNATURE_SIZE = 64


def sign_artefact(artefact: ConsentArtefact, signer: Signer) -> ConsentArtefact:
    """A copy of ``artefact`` signed by ``signer`` (which must be an ``exchange-consent`` key)."""
    if signer.name != CONSENT_ISSUER or artefact.issuer != CONSENT_ISSUER:
        raise ConsentSigningError(
            f"consent artefacts are signed by {CONSENT_ISSUER!r} only (key of {signer.name!r}, "
            f"issuer {artefact.issuer!r})"
        )
    key_id = bytes.fromhex(signer.key_id)
    return artefact.signed(lambda message: key_id + signer.sign(message))


class ConsentVerifier:
    """``verify(message, signature)`` for :class:`~exchange.policy.ConsentState`, backed by the registry.

    Raises :class:`ConsentSignatureError` naming the failed check: the signature layout, the signed issuer and
    time, the key (unknown, not yet valid, expired or revoked at ``issued_at``) or the Ed25519 signature itself.
    """

    __slots__ = ("_registry",)

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __call__(self, message: bytes, signature: bytes) -> None:
        if len(signature) != _KEY_ID_SIZE + _SIGNATURE_SIZE:
            raise ConsentSignatureError(
                f"signature has {len(signature)} bytes, expected a {_KEY_ID_SIZE}-byte key id and a "
                f"{_SIGNATURE_SIZE}-byte Ed25519 signature"
            )
        issued_at = _signed_issue_time(message)
        key_id = signature[:_KEY_ID_SIZE].hex()
        try:
            verifier = self._registry.verifier(CONSENT_ISSUER, key_id, issued_at)
            verifier.verify(message, signature[_KEY_ID_SIZE:])
        except ExchangeError as exc:
            raise ConsentSignatureError(str(exc)) from exc

    def check(self, artefact: ConsentArtefact) -> None:
        """Return None if ``artefact`` carries a valid signature; raise :class:`ConsentSignatureError` if not."""
        artefact.verify_signature(self)


def _signed_issue_time(message: bytes) -> datetime:
    # The signing bytes are a one-line domain tag, then the canonical JSON of the artefact
    # (ConsentArtefact.to_signing_bytes): the issuer and issue time are taken from what was signed.
    _, newline, body = message.partition(b"\n")
    if not newline:
        raise ConsentSignatureError("the signed bytes are not a consent artefact: no domain tag")
    try:
        signed = parse_json(body.decode(), "consent artefact")
        issuer = signed["issuer"]
        issued_at = datetime.fromisoformat(signed["issued_at"])
    except (ValueError, KeyError, TypeError, SafeParseError) as exc:
        raise ConsentSignatureError(f"the signed bytes are not a consent artefact: {exc}") from None
    if issuer != CONSENT_ISSUER:
        raise ConsentSignatureError(f"issuer {issuer!r} does not sign consents (only {CONSENT_ISSUER!r} does)")
    if issued_at.tzinfo is None:
        raise ConsentSignatureError("the signed issue time has no time zone")
    return issued_at
