"""Consent signatures: made with the exchange-consent key, checked against the registry at the issue time."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from exchange.consent import ConsentSigningError, ConsentVerifier, sign_artefact
from exchange.crypto.keys import Signer
from exchange.policy import ConsentSignatureError, ConsentStatus
from exchange.registry import Registry

from .support import NOW, artefact, make_registry


def test_signed_artefact_verifies(registry: Registry, signer: Signer) -> None:
    """A signature by the registered key carries that key's id and verifies."""
    signed = artefact(signer)
    assert signed.signature is not None
    raw = base64.b64decode(signed.signature)
    assert raw[:4].hex() == signer.key_id
    assert len(raw) == 68
    ConsentVerifier(registry).check(signed)  # raises if it does not verify


@pytest.mark.parametrize(
    "change",
    [
        {"status": ConsentStatus.ACTIVE, "version": 2},
        {"recipient": "police-board"},
        {"expiry": NOW + timedelta(days=3650)},
        {"record_types": ("tax.income-assessed", "social.benefit-granted")},
        {"fields": ("person_id",)},
        {"issued_at": NOW},
    ],
)
def test_tampered_artefact_is_refused(registry: Registry, signer: Signer, change: dict[str, Any]) -> None:
    """Changing any signed field after signing makes the signature fail."""
    tampered = artefact(signer, status=ConsentStatus.REVOKED).model_copy(update=change)
    with pytest.raises(ConsentSignatureError, match="does not verify"):
        ConsentVerifier(registry).check(tampered)


def test_signature_by_an_unregistered_key_is_refused(registry: Registry) -> None:
    """A key of the right name that the registry does not list does not verify."""
    stranger = Signer.generate("exchange-consent")
    with pytest.raises(ConsentSignatureError, match="no signing key"):
        ConsentVerifier(registry).check(artefact(stranger))


def test_key_must_be_valid_at_issue_time(signer: Signer) -> None:
    """Artefacts issued before the key's validity, or after its revocation, are refused."""
    revoked = make_registry(signer, revoked_at=(NOW - timedelta(days=10)).isoformat())
    with pytest.raises(ConsentSignatureError, match="revoked"):
        ConsentVerifier(revoked).check(artefact(signer))
    earlier = artefact(signer, issued_at=NOW - timedelta(days=20), start=NOW - timedelta(days=20))
    ConsentVerifier(revoked).check(earlier)  # signed before the revocation: still verifies
    not_yet = make_registry(signer, valid_from=NOW.isoformat())
    with pytest.raises(ConsentSignatureError, match="valid from"):
        ConsentVerifier(not_yet).check(artefact(signer))


def test_malformed_signatures_are_refused(registry: Registry, signer: Signer) -> None:
    """A bare 64-byte signature (no key id), or a missing one, is refused."""
    bare = artefact(None).signed(signer.sign)
    with pytest.raises(ConsentSignatureError, match="64 bytes"):
        ConsentVerifier(registry).check(bare)
    with pytest.raises(ConsentSignatureError, match="no signature"):
        ConsentVerifier(registry).check(artefact(None))


def test_verifier_reads_issuer_and_time_from_the_signed_bytes(registry: Registry, signer: Signer) -> None:
    """Bytes that are not a signed artefact, or name another issuer, are refused before any key is chosen."""
    verify = ConsentVerifier(registry)
    signature = b"\x00" * 68
    with pytest.raises(ConsentSignatureError, match="no domain tag"):
        verify(b"{}", signature)
    with pytest.raises(ConsentSignatureError, match="not a consent artefact"):
        verify(b"tag\n[1, 2]", signature)
    with pytest.raises(ConsentSignatureError, match="does not sign consents"):
        verify(b'tag\n{"issuer":"tax-board","issued_at":"2026-01-01T00:00:00Z"}', signature)


def test_only_the_consent_key_signs(signer: Signer) -> None:
    """An agency's key cannot sign a consent artefact."""
    with pytest.raises(ConsentSigningError, match="exchange-consent"):
        sign_artefact(artefact(None), Signer.generate("tax-board"))
