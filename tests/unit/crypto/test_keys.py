"""Key material: signers and encryption keys that never show their private bytes, public key encodings."""

from __future__ import annotations

import base64
import pickle

import pytest

from exchange.crypto.errors import KeyFormatError
from exchange.crypto.keys import (
    EncryptionKey,
    Signer,
    decode_encryption_public_key,
    decode_signing_public_key,
    encode_public_key,
    encryption_key_id,
    signing_key_id,
)
from exchange.crypto.note import Verifier, compute_key_id


def test_signer_repr_and_str_show_no_private_material() -> None:
    """repr() and str() of a Signer name the key but contain no form of the private key."""
    signer = Signer.generate("tax-board")
    secret = signer.export_private_key_string()
    seed_b64 = secret.split("+", 4)[4]
    seed = base64.b64decode(seed_b64)[1:]
    for shown in (repr(signer), str(signer), f"{signer}", repr([signer])):
        assert "tax-board" in shown
        assert signer.key_id in shown
        for form in (secret, seed_b64, seed.hex(), base64.b64encode(seed).decode(), repr(seed)):
            assert form not in shown


def test_signer_cannot_be_pickled() -> None:
    """Pickling a Signer (which would write its private key somewhere) is refused."""
    with pytest.raises(TypeError):
        pickle.dumps(Signer.generate("tax-board"))
    with pytest.raises(TypeError):
        pickle.dumps(EncryptionKey.generate("tax-board"))


def test_signer_round_trips_through_its_private_key_string() -> None:
    """The exported private key string parses back to a signer with the same key id and signatures."""
    signer = Signer.generate("population-registry")
    again = Signer.from_private_key_string(signer.export_private_key_string() + "\n")
    assert again.key_id == signer.key_id
    assert again.sign(b"m") == signer.sign(b"m")  # Ed25519 is deterministic


def test_signer_key_id_is_the_note_key_id() -> None:
    """A signer's key id is the C2SP key id of its name and public key, and its verifier key parses."""
    signer = Signer.generate("tax-board")
    assert signer.key_id == compute_key_id("tax-board", signer.public_key.public_bytes_raw())
    assert signer.key_id == signing_key_id("tax-board", signer.public_key)
    verifier = Verifier.from_key_string(signer.verifier_key())
    assert verifier == signer.verifier()
    verifier.verify(b"m", signer.sign(b"m"))


def test_tampered_private_key_strings_are_refused_without_echoing_them() -> None:
    """Wrong prefix, wrong key id or bad base64 raise KeyFormatError whose message holds no secret."""
    secret = Signer.generate("tax-board").export_private_key_string()
    prefix, name, key_id, b64 = secret[:12], *secret[12:].split("+", 2)
    bad = [
        "PUBLIC+KEY+" + secret[12:],
        f"{prefix}{name}+00000000+{b64}",
        f"{prefix}{name}+{key_id}+{b64[:-2]}*=",
        f"{prefix}{name}+{key_id}",
        f"{prefix}{name}+{key_id}+{base64.b64encode(b'x' * 33).decode()}",
    ]
    for text in bad:
        with pytest.raises(KeyFormatError) as err:
            Signer.from_private_key_string(text)
        assert b64 not in str(err.value)
        assert err.value.__cause__ is None or b64 not in str(err.value.__cause__)


def test_encryption_key_round_trip_and_agreement() -> None:
    """Encryption keys round-trip through their private string and agree on a shared secret."""
    alice, bob = EncryptionKey.generate("tax-board"), EncryptionKey.generate("exchange-router")
    again = EncryptionKey.from_private_key_string(alice.export_private_key_string())
    assert again.key_id == alice.key_id == encryption_key_id("tax-board", alice.public_key)
    assert alice.exchange(bob.public_key) == bob.exchange(alice.public_key)
    secret = alice.export_private_key_string().split("+", 5)[5]
    assert secret not in repr(alice)
    assert secret not in str(alice)


def test_encryption_and_signing_key_ids_are_domain_separated() -> None:
    """The same name and 32 key bytes give different ids as a signing key and as an encryption key."""
    enc = EncryptionKey.generate("tax-board")
    raw = enc.public_key.public_bytes_raw()
    assert compute_key_id("tax-board", raw) != enc.key_id


def test_public_keys_encode_and_decode() -> None:
    """Public keys encode as base64 of 32 raw bytes and decode back to equal keys."""
    signer, enc = Signer.generate("a"), EncryptionKey.generate("a")
    sig_b64, enc_b64 = encode_public_key(signer.public_key), encode_public_key(enc.public_key)
    assert len(base64.b64decode(sig_b64)) == 32
    assert decode_signing_public_key(sig_b64).public_bytes_raw() == signer.public_key.public_bytes_raw()
    assert decode_encryption_public_key(enc_b64).public_bytes_raw() == enc.public_key.public_bytes_raw()


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"x" * 31).decode(), "A" * 45])
def test_bad_public_keys_are_refused(text: str) -> None:
    """Public keys that are not base64 of exactly 32 bytes raise KeyFormatError."""
    with pytest.raises(KeyFormatError):
        decode_signing_public_key(text)
    with pytest.raises(KeyFormatError):
        decode_encryption_public_key(text)


def test_invalid_key_names_are_refused() -> None:
    """A key cannot be named with a space or a '+', since names appear in notes and key strings."""
    with pytest.raises(KeyFormatError):
        Signer.generate("tax board")
    with pytest.raises(KeyFormatError):
        EncryptionKey.generate("tax+board")
