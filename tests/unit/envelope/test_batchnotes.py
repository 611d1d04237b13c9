"""BatchNoteVerifier: every event of a signed batch verifies, in any order, and a sibling vouched for by an
earlier proof is refused exactly as a fresh verifier refuses it when anything about it is changed."""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

import pytest

from exchange.crypto.keys import Signer
from exchange.envelope import BadProofError, CommitmentMismatchError, VerificationError
from exchange.envelope.batch import seal
from exchange.envelope.batchnotes import BatchNoteVerifier
from exchange.registry import Registry
from tests.unit.envelope.conftest import T0, RegistryFactory

SOURCE = "tax-board"
MOMENT = T0 + timedelta(minutes=1)


def _batch(signers: dict[str, Signer], size: int) -> tuple[str, list[bytes], list[bytes]]:
    digests = [hashlib.sha256(f"event {size}/{i}".encode()).digest() for i in range(size)]
    sealed = seal(SOURCE, digests, signers[SOURCE])
    return sealed.note, digests, sealed.proofs


@pytest.fixture(scope="module")
def registry(make_registry: RegistryFactory) -> Registry:
    return make_registry()


@pytest.mark.parametrize("size", [*range(1, 18), 31, 32, 33, 64])
def test_every_event_verifies_in_any_order(signers: dict[str, Signer], registry: Registry, size: int) -> None:
    """Each event of a batch of ``size`` verifies, shuffled and each twice, naming the signing key."""
    note, digests, proofs = _batch(signers, size)
    verifier = BatchNoteVerifier(registry)
    order = [*range(size), *range(size)]
    random.Random(size).shuffle(order)
    for i in order:
        assert verifier.verify(note, SOURCE, MOMENT, digests[i], proofs[i]) == signers[SOURCE].key_id


def _outcome(verifier: BatchNoteVerifier, note: str, digest: bytes, proof: bytes) -> tuple[type, str] | None:
    try:
        verifier.verify(note, SOURCE, MOMENT, digest, proof)
    except VerificationError as exc:
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("size", [2, 3, 5, 8, 13])
def test_a_vouched_sibling_is_checked_as_strictly(signers: dict[str, Signer], registry: Registry,
                                                  size: int) -> None:
    """After an event's sibling verified, a changed digest or proof for it fails with the error and message a
    fresh verifier gives, and the untouched event still verifies."""
    note, digests, proofs = _batch(signers, size)
    refusals = 0
    for i in range(size):
        j = i ^ 1
        if j >= size:
            continue
        flipped = bytearray(proofs[i])
        flipped[-1] ^= 1
        changes = [(digests[j], proofs[i]), (digests[i], proofs[j]), (digests[i], bytes(flipped)),
                   (digests[i], proofs[i][:-32]), (digests[i], proofs[i] + proofs[i][-32:]),
                   (hashlib.sha256(b"other").digest(), proofs[i])]
        for digest, proof in changes:
            vouched = BatchNoteVerifier(registry)
            vouched.verify(note, SOURCE, MOMENT, digests[j], proofs[j])
            expected = _outcome(BatchNoteVerifier(registry), note, digest, proof)
            assert _outcome(vouched, note, digest, proof) == expected
            refusals += expected is not None
        vouched = BatchNoteVerifier(registry)
        vouched.verify(note, SOURCE, MOMENT, digests[j], proofs[j])
        assert _outcome(vouched, note, digests[i], proofs[i]) is None
    assert refusals > 0


def test_proof_errors_name_the_check(signers: dict[str, Signer], registry: Registry) -> None:
    """A proof of the wrong length or for another batch size is a bad proof; a valid proof of another leaf is
    a commitment mismatch."""
    note, digests, proofs = _batch(signers, 6)
    verifier = BatchNoteVerifier(registry)
    with pytest.raises(BadProofError):
        verifier.verify(note, SOURCE, MOMENT, digests[0], proofs[0][:-1])
    with pytest.raises(BadProofError):
        verifier.verify(note, SOURCE, MOMENT, digests[0], proofs[0][:4] + b"\x00\x00\x00\x07" + proofs[0][8:])
    with pytest.raises(CommitmentMismatchError):
        verifier.verify(note, SOURCE, MOMENT, digests[0], proofs[2])
