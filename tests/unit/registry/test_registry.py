"""Registry lookups: identities, key validity over time, authority, encryption keys, canonical form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from exchange.crypto.errors import UnverifiedNoteError
from exchange.crypto.keys import EncryptionKey, Signer, encode_public_key
from exchange.crypto.note import open_note, sign_note
from exchange.registry import (
    KeyExpiredError,
    KeyNotYetValidError,
    KeyRevokedError,
    NotAuthoritativeError,
    Registry,
    UnknownAgencyError,
    UnknownIdentityError,
    UnknownKeyError,
)
from tests.unit.registry._builders import T0, encryption_entry, signing_entry, small_registry

DAY = timedelta(days=1)
OLD = Signer.generate("population-registry")
NEW = Signer.generate("population-registry")
TAX = Signer.generate("tax-board")
TAX_ENC = EncryptionKey.generate("tax-board")
AUDIT = Signer.generate("exchange-audit")


def _registry(**agency0_keys: Any) -> Registry:
    doc = small_registry()
    # The old key was valid from T0 and revoked at T0 + 10 days; the new one is valid from T0 + 9 days.
    doc["agencies"][0]["signing_keys"] = agency0_keys.get(
        "signing_keys",
        [signing_entry(OLD, revoked_at=T0 + 10 * DAY), signing_entry(NEW, valid_from=T0 + 9 * DAY)],
    )
    doc["agencies"][1]["signing_keys"] = [signing_entry(TAX, valid_until=T0 + 30 * DAY)]
    doc["agencies"][1]["encryption_key"] = encryption_entry(TAX_ENC, revoked_at=T0 + 20 * DAY)
    doc["services"][0]["signing_keys"] = [signing_entry(AUDIT)]
    return Registry.from_yaml(yaml.safe_dump(doc), source="test.yaml")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return _registry()


def test_agency_lookup_fails_closed(registry: Registry) -> None:
    """Known agencies are returned; an unknown id, or a service id, raises UnknownAgencyError."""
    assert registry.agency("tax-board").code == "TCB"
    with pytest.raises(UnknownAgencyError):
        registry.agency("ministry-of-magic")
    with pytest.raises(UnknownAgencyError):
        registry.agency("exchange-audit")
    assert registry.identity("exchange-audit").id == "exchange-audit"
    with pytest.raises(UnknownIdentityError):
        registry.identity("ministry-of-magic")


def test_key_valid_inside_its_window(registry: Registry) -> None:
    """Within [valid_from, valid_until) the registered public key is returned."""
    key = registry.verification_key("tax-board", TAX.key_id, T0 + DAY)
    assert key.public_bytes_raw() == TAX.public_key.public_bytes_raw()
    registry.verification_key("tax-board", TAX.key_id, T0)  # valid_from is inclusive


def test_key_before_valid_from_is_not_yet_valid(registry: Registry) -> None:
    """A time before valid_from raises KeyNotYetValidError."""
    with pytest.raises(KeyNotYetValidError):
        registry.verification_key("tax-board", TAX.key_id, T0 - timedelta(seconds=1))


def test_key_at_valid_until_is_expired(registry: Registry) -> None:
    """valid_until is exclusive: at and after it the key raises KeyExpiredError."""
    registry.verification_key("tax-board", TAX.key_id, T0 + 30 * DAY - timedelta(microseconds=1))
    with pytest.raises(KeyExpiredError):
        registry.verification_key("tax-board", TAX.key_id, T0 + 30 * DAY)


def test_revocation_applies_from_revoked_at_on(registry: Registry) -> None:
    """An event made before the revocation still verifies; at or after revoked_at the key is revoked."""
    before = registry.verification_key("population-registry", OLD.key_id, T0 + 10 * DAY - timedelta(seconds=1))
    assert before.public_bytes_raw() == OLD.public_key.public_bytes_raw()
    with pytest.raises(KeyRevokedError):
        registry.verification_key("population-registry", OLD.key_id, T0 + 10 * DAY)
    with pytest.raises(KeyRevokedError):
        registry.verification_key("population-registry", OLD.key_id, T0 + 11 * DAY)


def test_rotation_overlap_both_keys_verify(registry: Registry) -> None:
    """During a rotation overlap both the old and the new key verify; afterwards only the new one."""
    at = T0 + 9 * DAY + timedelta(hours=1)
    registry.verification_key("population-registry", OLD.key_id, at)
    registry.verification_key("population-registry", NEW.key_id, at)
    registry.verification_key("population-registry", NEW.key_id, T0 + 100 * DAY)


def test_unknown_keys_and_identities_fail_closed(registry: Registry) -> None:
    """An unknown key id raises UnknownKeyError, an unknown identity UnknownIdentityError."""
    with pytest.raises(UnknownKeyError):
        registry.verification_key("tax-board", "00000000", T0)
    with pytest.raises(UnknownKeyError):
        registry.verification_key("tax-board", OLD.key_id, T0)  # another identity's key
    with pytest.raises(UnknownIdentityError):
        registry.verification_key("ministry-of-magic", TAX.key_id, T0)
    with pytest.raises(UnknownKeyError):
        registry.verification_key("statistics-office", TAX.key_id, T0)  # an agency with no keys


def test_naive_time_is_a_programming_error(registry: Registry) -> None:
    """Checking a key at a time without a zone raises ValueError instead of guessing."""
    with pytest.raises(ValueError, match="timezone"):
        registry.verification_key("tax-board", TAX.key_id, datetime(2025, 1, 2))


def test_times_in_other_zones_compare_correctly(registry: Registry) -> None:
    """A time given in another zone is compared as the same instant."""
    tz = timezone(timedelta(hours=2))
    with pytest.raises(KeyNotYetValidError):
        registry.verification_key("tax-board", TAX.key_id, datetime(2025, 1, 1, 1, 59, tzinfo=tz))
    registry.verification_key("tax-board", TAX.key_id, datetime(2025, 1, 1, 2, 0, tzinfo=tz))


def test_decoded_keys_are_cached(registry: Registry) -> None:
    """Repeated lookups return the same decoded key object (no decoding on the per-event path)."""
    first = registry.verification_key("tax-board", TAX.key_id, T0 + DAY)
    assert registry.verification_key("tax-board", TAX.key_id, T0 + 2 * DAY) is first


def test_services_sign_too(registry: Registry) -> None:
    """Exchange services have signing keys looked up the same way as agencies."""
    registry.verification_key("exchange-audit", AUDIT.key_id, T0)


def test_authority(registry: Registry) -> None:
    """Each type has one authoritative agency; others, and types nobody publishes, are refused."""
    assert registry.authoritative_agency("tax.income-assessed") == "tax-board"
    registry.require_authoritative("population-registry", "population.address-changed")
    with pytest.raises(NotAuthoritativeError, match="'population-registry' is"):
        registry.require_authoritative("tax-board", "population.address-changed")
    with pytest.raises(NotAuthoritativeError, match="no agency"):
        registry.require_authoritative("tax-board", "health.coverage-changed")
    with pytest.raises(NotAuthoritativeError):
        registry.authoritative_agency("health.coverage-changed")


def test_encryption_key(registry: Registry) -> None:
    """The recipient's X25519 key is returned, refused when revoked at the given time, missing when absent."""
    key = registry.encryption_key("tax-board")
    assert key.public_bytes_raw() == TAX_ENC.public_key.public_bytes_raw()
    assert registry.encryption_key_entry("tax-board").key_id == TAX_ENC.key_id
    registry.encryption_key("tax-board", at=T0 + DAY)
    with pytest.raises(KeyRevokedError):
        registry.encryption_key("tax-board", at=T0 + 20 * DAY)
    with pytest.raises(UnknownKeyError):
        registry.encryption_key("statistics-office")
    with pytest.raises(UnknownIdentityError):
        registry.encryption_key("ministry-of-magic")


def test_note_verifiers_follow_key_validity(registry: Registry) -> None:
    """A note opens with registry verifiers while its key is valid, and is refused (with the reason) after."""
    note = sign_note("batch root\n", [OLD])
    verifiers = registry.note_verifiers(T0 + DAY)
    assert open_note(note, verifiers).signers == {("population-registry", OLD.key_id)}
    with pytest.raises(UnverifiedNoteError) as err:
        open_note(note, registry.note_verifiers(T0 + 10 * DAY))
    assert isinstance(err.value.ignored[0].__cause__, KeyRevokedError)


def test_note_verifiers_restricted_to_expected_signers(registry: Registry) -> None:
    """With ``identities``, a note signed by another registered identity is refused."""
    note = sign_note("batch root\n", [TAX])
    with pytest.raises(UnverifiedNoteError, match="not an expected signer"):
        open_note(note, registry.note_verifiers(T0 + DAY, identities=["population-registry"]))
    open_note(note, registry.note_verifiers(T0 + DAY, identities=["tax-board"]))


def test_canonical_form_is_json_sorted_and_normalised() -> None:
    """canonical() is JSON-able, sorted by id, with UTC times and raw base64 keys, independent of file order."""
    registry = _registry(
        signing_keys=[signing_entry(OLD, valid_from=datetime(2025, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))))]
    )
    canonical = registry.canonical()
    json.dumps(canonical)
    assert [a["id"] for a in canonical["agencies"]] == sorted(a.id for a in registry.agencies)
    population = next(a for a in canonical["agencies"] if a["id"] == "population-registry")
    assert population["signing_keys"][0]["valid_from"] == "2025-01-01T00:00:00Z"
    assert population["signing_keys"][0]["public_key"] == encode_public_key(OLD.public_key)

    doc = small_registry()
    doc["agencies"].reverse()
    doc["agencies"][-1]["signing_keys"] = [signing_entry(OLD, valid_from=T0.astimezone(UTC))]
    doc["agencies"][1]["signing_keys"] = [signing_entry(TAX, valid_until=T0 + 30 * DAY)]
    doc["agencies"][1]["encryption_key"] = encryption_entry(TAX_ENC, revoked_at=T0 + 20 * DAY)
    doc["services"][0]["signing_keys"] = [signing_entry(AUDIT)]
    reordered = Registry.from_yaml(yaml.safe_dump(doc))
    assert reordered.canonical() == canonical
