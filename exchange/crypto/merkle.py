"""RFC 6962 / RFC 9162 Merkle tree hashing: roots, inclusion and consistency proofs, an incremental tree.

The tree hashes with SHA-256, leaves prefixed by ``0x00`` and interior nodes by ``0x01`` (RFC 9162 §2.1.1), so a
leaf can never be confused with a node. Functions here take *leaf hashes* (``leaf_hash(data)``), not raw data:
the envelope's batch tree and the access log both hash their entries once and keep the hashes.

Verification functions return ``None`` (or the computed root) or raise a :class:`~exchange.crypto.errors.MerkleError`
subclass naming the failed check. Proof lengths are checked before any hashing, so a padded or truncated proof is
reported as such instead of as a root mismatch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from exchange.crypto.errors import (
    InvalidIndexError,
    InvalidSizeError,
    MalformedHashError,
    ProofLengthError,
    RootMismatchError,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "consistency_proof",
    "consistency_proof_size",
    "inclusion_proof",
    "inclusion_proof_size",
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of a tree with these leaf hashes; :data:`EMPTY_ROOT` for none."""
    for i, h in enumerate(leaf_hashes):
        _check_hash(h, f"leaf hash {i}")
    return _range_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of all ``leaf_hashes`` (RFC 9162 §2.1.3.1), bottom-up."""
    return _inclusion_proof(index, leaf_hashes, len(leaf_hashes))


def inclusion_proofs(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """The inclusion proof of every leaf at once, with n - 1 node hashes in all (not n per proof).

    For sealing a batch: ``inclusion_proofs(hashes)[i] == inclusion_proof(i, hashes)``.
    """
    for i, h in enumerate(leaf_hashes):
        _check_hash(h, f"leaf hash {i}")
    # Level by level, a last node without a sibling moves up unchanged: the same tree as RFC 9162's split at
    # the largest power of two, so a leaf's path is its sibling on each level where it has one.
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    proofs: list[list[bytes]] = []
    for index in range(len(leaf_hashes)):
        proof: list[bytes] = []
        j = index
        for level in levels[:-1]:
            if j ^ 1 < len(level):
                proof.append(level[j ^ 1])
            j >>= 1
        proofs.append(proof)
    return proofs


def consistency_proof(m: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of the first ``m`` leaves is a prefix of the tree of all (RFC 9162 §2.1.4.1).

    Empty when ``m`` is 0 or the whole tree: those are consistent with no hashes at all.
    """
    return _consistency_proof(m, leaf_hashes, len(leaf_hashes))


def inclusion_proof_size(index: int, size: int) -> int:
    """How many hashes the inclusion proof of leaf ``index`` in a tree of ``size`` leaves has."""
    if not 0 <= index < size:
        raise InvalidIndexError(f"leaf index {index} is outside a tree of size {size}")
    inner, border = _decompose(index, size)
    return inner + border


def consistency_proof_size(m: int, n: int) -> int:
    """How many hashes the consistency proof from tree size ``m`` to tree size ``n`` has."""
    if not 0 <= m <= n:
        raise InvalidSizeError(f"tree sizes {m} -> {n} are not 0 <= m <= n")
    if m in (0, n):
        return 0
    inner, border = _decompose(m - 1, n)
    shift = _trailing_zeros(m)
    # The hash of the largest perfect subtree ending at m is left out when it is the old root itself.
    start = 0 if m == 1 << shift else 1
    return start + (inner - shift) + border


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` (a leaf hash) at ``index`` in a tree of ``size`` leaves.

    For a batch signature: compute the root from the event's proof, then check the signed note names that root.
    Raises :class:`InvalidIndexError`, :class:`ProofLengthError` or :class:`MalformedHashError`.
    """
    _check_hash(leaf, "leaf hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    expected = inclusion_proof_size(index, size)
    if len(proof) != expected:
        raise ProofLengthError(
            f"inclusion proof for leaf {index} of {size} has {len(proof)} hashes, expected {expected}"
        )
    # RFC 9162 §2.1.3.2, steps 2-5.
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofLengthError(f"inclusion proof for leaf {index} of {size} is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofLengthError(f"inclusion proof for leaf {index} of {size} is too short")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> None:
    """Check that ``leaf`` (a leaf hash) is at ``index`` in the tree of ``size`` leaves with root ``expected_root``.

    Raises :class:`InvalidIndexError`, :class:`ProofLengthError`, :class:`MalformedHashError` or
    :class:`RootMismatchError`.
    """
    _check_hash(expected_root, "root")
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    if computed != expected_root:
        raise RootMismatchError(
            f"inclusion proof for leaf {index} of {size} leads to root {computed.hex()}, expected {expected_root.hex()}"
        )


def verify_consistency(m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of size ``m`` with ``root_m`` is a prefix of the tree of size ``n`` with ``root_n``.

    Follows RFC 9162 §2.1.4.2. A tree is consistent with itself (``m == n``: empty proof, equal roots; checked
    first, as transparency-dev/merkle v0.0.2 ``VerifyConsistency`` does, so ``0 -> 0`` needs equal roots) and every
    tree with the empty one (``m == 0``: empty proof, ``root_m`` is :data:`EMPTY_ROOT`).
    Raises :class:`InvalidSizeError`, :class:`ProofLengthError`, :class:`MalformedHashError` or
    :class:`RootMismatchError`.
    """
    _check_hash(root_m, "first root")
    _check_hash(root_n, "second root")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    expected = consistency_proof_size(m, n)
    if len(proof) != expected:
        raise ProofLengthError(f"consistency proof {m} -> {n} has {len(proof)} hashes, expected {expected}")
    if m == n and root_m != root_n:
        raise RootMismatchError(f"roots of two trees of size {m} differ: {root_m.hex()} != {root_n.hex()}")
    if m == 0 and root_m != EMPTY_ROOT:
        raise RootMismatchError(f"first root {root_m.hex()} of the empty tree is not the empty root")
    if m in (0, n):
        return
    fr, sr = _consistency_roots(m, n, root_m, proof)
    if fr != root_m:
        raise RootMismatchError(f"consistency proof {m} -> {n} leads to first root {fr.hex()}, expected {root_m.hex()}")
    if sr != root_n:
        raise RootMismatchError(
            f"consistency proof {m} -> {n} leads to second root {sr.hex()}, expected {root_n.hex()}"
        )


def _consistency_roots(m: int, n: int, root_m: bytes, proof: Sequence[bytes]) -> tuple[bytes, bytes]:
    # RFC 9162 §2.1.4.2, steps 2-6: the roots of size m and size n that the proof leads to (0 < m < n).
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, root_m)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofLengthError(f"consistency proof {m} -> {n} is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofLengthError(f"consistency proof {m} -> {n} is too short")
    return fr, sr


class CompactTree:
    """An append-only Merkle tree kept as its right edge: O(log n) memory for the root of any size.

    The state is the tree size and the roots of its perfect subtrees, largest first (one per set bit of the size,
    the "compact range" ``[0, size)``). The access-log sequencer appends leaf hashes one at a time, persists
    :attr:`state` with each checkpoint and resumes with :meth:`from_state`. Proofs need the leaf hashes
    themselves; pass the log's storage of them (anything indexable) to :meth:`inclusion_proof` and
    :meth:`consistency_proof`.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._nodes: list[bytes] = []

    @classmethod
    def from_state(cls, size: int, nodes: Sequence[bytes]) -> CompactTree:
        """A tree resumed from a saved :attr:`state`; the node count must match the size."""
        if size < 0:
            raise InvalidSizeError(f"tree size {size} is negative")
        if len(nodes) != size.bit_count():
            raise ProofLengthError(f"a tree of size {size} has {size.bit_count()} edge nodes, got {len(nodes)}")
        for i, h in enumerate(nodes):
            _check_hash(h, f"edge node {i}")
        tree = cls()
        tree._size = size
        tree._nodes = list(nodes)
        return tree

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def state(self) -> tuple[int, tuple[bytes, ...]]:
        """``(size, edge nodes)``: everything needed to resume with :meth:`from_state`."""
        return self._size, tuple(self._nodes)

    def append(self, leaf: bytes) -> int:
        """Append one leaf hash; returns its index."""
        _check_hash(leaf, "leaf hash")
        index = self._size
        _push(self._nodes, leaf, index + 1)
        self._size = index + 1
        return index

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The root of the tree as it is now."""
        return _fold(self._nodes)

    def inclusion_proof(self, index: int, leaf_hashes: Sequence[bytes], size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves (default: now).

        ``leaf_hashes`` is the stored log; for the current size the proof is checked against this tree's root,
        so storage that disagrees with the tree raises :class:`RootMismatchError` instead of yielding a bad proof.
        """
        size = self._size if size is None else size
        self._check_storage(leaf_hashes, size)
        proof = _inclusion_proof(index, leaf_hashes, size)
        if size == self._size:
            verify_inclusion(leaf_hashes[index], index, size, proof, self.root())
        return proof

    def consistency_proof(self, m: int, leaf_hashes: Sequence[bytes], n: int | None = None) -> list[bytes]:
        """The consistency proof from tree size ``m`` to ``n`` (default: now), from the stored leaf hashes."""
        n = self._size if n is None else n
        self._check_storage(leaf_hashes, n)
        return _consistency_proof(m, leaf_hashes, n)

    def _check_storage(self, leaf_hashes: Sequence[bytes], size: int) -> None:
        if not 0 <= size <= self._size:
            raise InvalidSizeError(f"tree size {size} is outside 0..{self._size}")
        if len(leaf_hashes) < size:
            raise InvalidSizeError(f"storage holds {len(leaf_hashes)} leaf hashes, tree size {size} needs more")

    def __repr__(self) -> str:
        return f"CompactTree(size={self._size}, root={self.root().hex()})"


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != HASH_SIZE:
        raise MalformedHashError(f"{what} has {len(h)} bytes, expected {HASH_SIZE}")


def _decompose(index: int, size: int) -> tuple[int, int]:
    # Inner part: levels where the leaf's path and the tree's right edge differ; border: left siblings above.
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def _largest_power_of_two_below(n: int) -> int:
    # RFC 9162 §2.1.1: k is the largest power of two smaller than n (n > 1).
    return 1 << ((n - 1).bit_length() - 1)


def _push(nodes: list[bytes], h: bytes, new_size: int) -> None:
    # Appending leaf number new_size merges one pair per trailing zero bit of the new size.
    nodes.append(h)
    while not new_size & 1:
        right = nodes.pop()
        nodes[-1] = node_hash(nodes[-1], right)
        new_size >>= 1


def _fold(nodes: Sequence[bytes]) -> bytes:
    if not nodes:
        return EMPTY_ROOT
    r = nodes[-1]
    for h in reversed(nodes[:-1]):
        r = node_hash(h, r)
    return r


def _range_root(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    nodes: list[bytes] = []
    for i in range(lo, hi):
        _push(nodes, hashes[i], i - lo + 1)
    return _fold(nodes)


def _inclusion_proof(index: int, hashes: Sequence[bytes], size: int) -> list[bytes]:
    if not 0 <= index < size:
        raise InvalidIndexError(f"leaf index {index} is outside a tree of size {size}")
    # RFC 9162 §2.1.3.1: PATH(m, D[n]) ends with the sibling at the top, so collect top-down and reverse.
    top_down: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            top_down.append(_range_root(hashes, lo + k, hi))
            hi = lo + k
        else:
            top_down.append(_range_root(hashes, lo, lo + k))
            lo += k
    top_down.reverse()
    return top_down


def _consistency_proof(m: int, hashes: Sequence[bytes], n: int) -> list[bytes]:
    if not 0 <= m <= n:
        raise InvalidSizeError(f"tree sizes {m} -> {n} are not 0 <= m <= n")
    if m in (0, n):
        return []
    # RFC 9162 §2.1.4.1: SUBPROOF(m, D[lo:hi], b), unrolled; the subtree hashes pile up top-down.
    top_down: list[bytes] = []
    lo, hi, whole = 0, n, True
    rel = m
    while rel != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if rel <= k:
            top_down.append(_range_root(hashes, lo + k, hi))
            hi = lo + k
        else:
            top_down.append(_range_root(hashes, lo, lo + k))
            lo += k
            rel -= k
            whole = False
    proof = [] if whole else [_range_root(hashes, lo, hi)]
    proof.extend(reversed(top_down))
    return proof
