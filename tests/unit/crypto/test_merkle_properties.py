"""Property tests: every generated Merkle proof verifies, and any flipped byte makes it fail."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.crypto.errors import MerkleError
from exchange.crypto.merkle import (
    CompactTree,
    consistency_proof,
    consistency_proof_size,
    inclusion_proof,
    inclusion_proofs,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)


def _reference_root(hashes: list[bytes]) -> bytes:
    # RFC 9162 §2.1.1 written literally: split at the largest power of two below n.
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


def _hashes(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _flip(data: bytes, position: int, bit: int) -> bytes:
    i = position % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


@given(st.integers(min_value=1, max_value=130))
def test_root_matches_the_rfc_definition(n: int) -> None:
    """The iterative root equals the recursive RFC 9162 definition for any size."""
    hashes = _hashes(n)
    assert root(hashes) == _reference_root(hashes)


@given(st.integers(min_value=0, max_value=70))
def test_compact_tree_agrees_with_root_at_every_prefix(n: int) -> None:
    """The incremental tree's root after each append equals the root of that prefix."""
    hashes = _hashes(n)
    tree = CompactTree()
    for i, h in enumerate(hashes):
        tree.append(h)
        assert tree.root() == root(hashes[: i + 1])


@given(st.data())
def test_every_inclusion_proof_verifies_and_any_flip_fails(data: st.DataObject) -> None:
    """A generated inclusion proof verifies; flipping one bit of the proof or the leaf makes it fail."""
    n = data.draw(st.integers(min_value=1, max_value=100), label="size")
    index = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    hashes = _hashes(n)
    rt = root(hashes)
    proof = inclusion_proof(index, hashes)
    verify_inclusion(hashes[index], index, n, proof, rt)

    bit = data.draw(st.integers(min_value=0, max_value=7), label="bit")
    position = data.draw(st.integers(min_value=0, max_value=31), label="byte")
    with pytest.raises(MerkleError):
        verify_inclusion(_flip(hashes[index], position, bit), index, n, proof, rt)
    with pytest.raises(MerkleError):
        verify_inclusion(hashes[index], index, n, proof, _flip(rt, position, bit))
    if proof:
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="proof hash")
        tampered = list(proof)
        tampered[which] = _flip(tampered[which], position, bit)
        with pytest.raises(MerkleError):
            verify_inclusion(hashes[index], index, n, tampered, rt)


@given(st.integers(min_value=0, max_value=100))
def test_all_proofs_at_once_equal_the_proofs_one_by_one(n: int) -> None:
    """inclusion_proofs() gives, for every leaf, exactly the proof inclusion_proof() gives."""
    hashes = _hashes(n)
    assert inclusion_proofs(hashes) == [inclusion_proof(i, hashes) for i in range(n)]


@given(st.data())
def test_every_consistency_proof_verifies_and_any_flip_fails(data: st.DataObject) -> None:
    """A generated consistency proof verifies; flipping one bit of the proof or a root makes it fail."""
    n = data.draw(st.integers(min_value=1, max_value=100), label="n")
    m = data.draw(st.integers(min_value=1, max_value=n), label="m")
    hashes = _hashes(n)
    root_m, root_n = root(hashes[:m]), root(hashes)
    proof = consistency_proof(m, hashes)
    assert len(proof) == consistency_proof_size(m, n)
    verify_consistency(m, n, root_m, root_n, proof)

    bit = data.draw(st.integers(min_value=0, max_value=7), label="bit")
    position = data.draw(st.integers(min_value=0, max_value=31), label="byte")
    with pytest.raises(MerkleError):
        verify_consistency(m, n, _flip(root_m, position, bit), root_n, proof)
    with pytest.raises(MerkleError):
        verify_consistency(m, n, root_m, _flip(root_n, position, bit), proof)
    if proof:
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="proof hash")
        tampered = list(proof)
        tampered[which] = _flip(tampered[which], position, bit)
        with pytest.raises(MerkleError):
            verify_consistency(m, n, root_m, root_n, tampered)


@given(st.data())
def test_a_proof_for_one_leaf_does_not_prove_another(data: st.DataObject) -> None:
    """An inclusion proof verified at a different index or with a different leaf fails."""
    n = data.draw(st.integers(min_value=2, max_value=64), label="size")
    index = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    other = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda i: i != index), label="other")
    hashes = _hashes(n)
    proof = inclusion_proof(index, hashes)
    with pytest.raises(MerkleError):
        verify_inclusion(hashes[index], other, n, proof, root(hashes))
    with pytest.raises(MerkleError):
        verify_inclusion(hashes[other], index, n, proof, root(hashes))
