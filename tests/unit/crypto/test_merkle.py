"""RFC 6962 / RFC 9162 Merkle tree: published vectors, typed errors, the incremental tree."""

from __future__ import annotations

import pytest

from exchange.crypto.errors import (
    InvalidIndexError,
    InvalidSizeError,
    MalformedHashError,
    MerkleError,
    ProofLengthError,
    RootMismatchError,
)
from exchange.crypto.merkle import (
    EMPTY_ROOT,
    CompactTree,
    consistency_proof,
    consistency_proof_size,
    inclusion_proof,
    inclusion_proof_size,
    inclusion_proofs,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

# Test vectors of the RFC 6962 reference tree used by certificate-transparency, trillian and transparency-dev:
# github.com/transparency-dev/merkle, proof/verify_test.go (leaves, roots, inclusionProofs, consistencyProofs)
# and rfc6962/rfc6962_test.go (hasher vectors).
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes.fromhex("5051525354555657"),
    bytes.fromhex("606162636465666768696a6b6c6d6e6f"),
]
HASHES = [leaf_hash(leaf) for leaf in LEAVES]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


# (0-based leaf index, tree size, proof); the Go source numbers leaves from 1.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]

# (size1, size2, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_hasher_vectors() -> None:
    """Leaf, node and empty-tree hashes match the transparency-dev rfc6962 hasher vectors."""
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


def test_empty_tree_root_is_hash_of_empty_string() -> None:
    """The root of no leaves is SHA-256 of the empty string, not the hash of an empty leaf."""
    assert root([]) == EMPTY_ROOT
    assert root([]) != leaf_hash(b"")


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_published_vectors(size: int) -> None:
    """The root of the first ``size`` reference leaves is the published one."""
    assert root(HASHES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_published_vectors(index: int, size: int, proof: list[bytes]) -> None:
    """Generated inclusion proofs equal the published ones and verify against the published roots."""
    assert inclusion_proof(index, HASHES[:size]) == proof
    assert inclusion_proofs(HASHES[:size])[index] == proof
    assert inclusion_proof_size(index, size) == len(proof)
    verify_inclusion(HASHES[index], index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("m", "n", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_published_vectors(m: int, n: int, proof: list[bytes]) -> None:
    """Generated consistency proofs equal the published ones and verify against the published roots."""
    assert consistency_proof(m, HASHES[:n]) == proof
    assert consistency_proof_size(m, n) == len(proof)
    verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], proof)


_Probe = tuple[int, int, bytes, bytes, list[bytes]]


def _inclusion_probes(index: int, size: int, proof: list[bytes], rt: bytes, leaf: bytes) -> list[_Probe]:
    # The corruptions of transparency-dev's corruptInclusionProof.
    probes: list[_Probe] = [
        (index - 1, size, rt, leaf, proof),
        (index + 1, size, rt, leaf, proof),
        (index ^ 2, size, rt, leaf, proof),
        (index, size * 2, rt, leaf, proof),
        (index, size // 2, rt, leaf, proof),
        (index, size, rt, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, rt, leaf, [*proof, b""]),
        (index, size, rt, leaf, [*proof, rt]),
        (index, size, rt, leaf, [b"", *proof]),
        (index, size, rt, leaf, [rt, *proof]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, rt, leaf, flipped))
    if proof:
        probes.append((index, size, rt, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, rt, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS[1:])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[bytes]) -> None:
    """Every corruption of a good inclusion proof (index, size, leaf, root, extra/missing/flipped hashes) fails."""
    for i, s, rt, leaf, p in _inclusion_probes(index, size, proof, ROOTS[size - 1], HASHES[index]):
        with pytest.raises(MerkleError):
            verify_inclusion(leaf, i, s, p, rt)


@pytest.mark.parametrize(("m", "n", "proof"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_corrupted_consistency_proofs_fail(m: int, n: int, proof: list[bytes]) -> None:
    """Every corruption of a good consistency proof (sizes, roots, extra/missing/flipped hashes) fails."""
    r1, r2 = ROOTS[m - 1], ROOTS[n - 1]
    probes: list[_Probe] = [
        (m - 1, n, r1, r2, proof),
        (m + 1, n, r1, r2, proof),
        (m ^ 2, n, r1, r2, proof),
        (m, n * 2, r1, r2, proof),
        (m, n // 2, r1, r2, proof),
        (m, n, SOME_HASH, r2, proof),
        (m, n, r1, SOME_HASH, proof),
        (m, n, r2, r1, proof),
        (m, n, r1, r2, []),
        (m, n, r1, r2, [*proof, r1]),
        (m, n, r1, r2, [*proof, r2]),
        (m, n, r1, r2, [r1, *proof]),
        (m, n, r1, r2, [proof[0], *proof]),
        (m, n, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((m, n, r1, r2, flipped))
    for m2, n2, a, b, p in probes:
        with pytest.raises(MerkleError):
            verify_consistency(m2, n2, a, b, p)


def test_inclusion_errors_name_the_failed_check() -> None:
    """Index outside the tree, wrong proof length, bad hash size and wrong root each raise their own type."""
    proof = INCLUSION_VECTORS[1][2]
    with pytest.raises(InvalidIndexError):
        verify_inclusion(HASHES[0], 8, 8, proof, ROOTS[7])
    with pytest.raises(InvalidIndexError):
        verify_inclusion(HASHES[0], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofLengthError):
        verify_inclusion(HASHES[0], 0, 8, proof[:2], ROOTS[7])
    with pytest.raises(ProofLengthError):
        verify_inclusion(HASHES[0], 0, 8, [*proof, SOME_HASH], ROOTS[7])
    with pytest.raises(MalformedHashError):
        verify_inclusion(b"short", 0, 8, proof, ROOTS[7])
    with pytest.raises(MalformedHashError):
        verify_inclusion(HASHES[0], 0, 1, [], b"")
    with pytest.raises(RootMismatchError):
        verify_inclusion(HASHES[1], 0, 8, proof, ROOTS[7])


def test_single_leaf_tree_root_is_the_leaf_hash() -> None:
    """In a one-leaf tree the root is the leaf hash and the proof is empty."""
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)
    assert root_from_inclusion_proof(h, 0, 1, []) == h
    with pytest.raises(RootMismatchError):
        verify_inclusion(h, 0, 1, [], SOME_HASH)


def test_consistency_edge_cases() -> None:
    """Equal sizes need equal roots and no proof; size 0 is consistent with any tree; shrinking is refused."""
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    # Equal sizes are checked before size 0 (transparency-dev/merkle VerifyConsistency): 0 -> 0 needs equal roots.
    with pytest.raises(RootMismatchError):
        verify_consistency(0, 0, EMPTY_ROOT, SOME_HASH, [])
    with pytest.raises(RootMismatchError):
        verify_consistency(0, 0, SOME_HASH, SOME_HASH, [])
    with pytest.raises(RootMismatchError):
        verify_consistency(1, 1, ROOTS[0], ROOTS[1], [])
    with pytest.raises(RootMismatchError):
        verify_consistency(0, 5, SOME_HASH, ROOTS[4], [])
    with pytest.raises(ProofLengthError):
        verify_consistency(1, 1, ROOTS[0], ROOTS[0], [EMPTY_ROOT])
    with pytest.raises(ProofLengthError):
        verify_consistency(0, 1, EMPTY_ROOT, ROOTS[0], [EMPTY_ROOT])
    with pytest.raises(ProofLengthError):
        verify_consistency(1, 2, ROOTS[0], ROOTS[1], [])
    with pytest.raises(InvalidSizeError):
        verify_consistency(2, 1, ROOTS[1], ROOTS[0], [])
    with pytest.raises(InvalidSizeError):
        consistency_proof(9, HASHES)


def test_compact_tree_roots_match_vectors_at_every_size() -> None:
    """Appending the reference leaves one by one gives the published root after each append."""
    tree = CompactTree()
    assert tree.root() == EMPTY_ROOT
    for i, h in enumerate(HASHES):
        assert tree.append(h) == i
        assert tree.size == i + 1
        assert tree.root() == ROOTS[i]
        assert len(tree.state[1]) == tree.size.bit_count()


def test_compact_tree_resumes_from_its_state() -> None:
    """A tree rebuilt from a saved state continues to the same roots as one that never stopped."""
    tree = CompactTree()
    tree.extend(HASHES[:5])
    size, nodes = tree.state
    resumed = CompactTree.from_state(size, nodes)
    resumed.extend(HASHES[5:])
    assert resumed.root() == ROOTS[7]
    with pytest.raises(ProofLengthError):
        CompactTree.from_state(5, nodes[:1])
    with pytest.raises(MalformedHashError):
        CompactTree.from_state(1, [b"x"])


def test_compact_tree_proofs_from_stored_leaf_hashes() -> None:
    """The tree produces the published proofs from its stored leaf hashes, for now and for past sizes."""
    tree = CompactTree()
    tree.extend(HASHES)
    assert tree.inclusion_proof(5, HASHES) == INCLUSION_VECTORS[2][2]
    assert tree.inclusion_proof(1, HASHES, size=5) == INCLUSION_VECTORS[4][2]
    assert tree.consistency_proof(6, HASHES) == CONSISTENCY_VECTORS[2][2]
    assert tree.consistency_proof(6, HASHES, n=7) == CONSISTENCY_VECTORS[4][2]


def test_compact_tree_refuses_storage_that_disagrees() -> None:
    """Stored leaf hashes that do not match the tree raise instead of producing a proof that cannot verify."""
    tree = CompactTree()
    tree.extend(HASHES)
    tampered = list(HASHES)
    tampered[3] = SOME_HASH
    with pytest.raises(RootMismatchError):
        tree.inclusion_proof(0, tampered)
    with pytest.raises(InvalidSizeError):
        tree.inclusion_proof(0, HASHES[:4])
    with pytest.raises(InvalidSizeError):
        tree.consistency_proof(2, HASHES, n=9)
