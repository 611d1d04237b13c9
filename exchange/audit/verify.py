"""Checking the sequenced log's integrity: contiguous indices, every checkpoint signed and equal to the tree the
entries make. Pure: the entries and checkpoints are passed in (from Kafka, or from an archive).

Every checkpoint is checked against the root recomputed from the entries at its size, so checkpoints that pass
are consistent with each other by construction (they are heads of one tree); one validly signed over another
root at some size — a split view — is caught at that size. The first discrepancy stops the check; it names the
index and the check that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from exchange.audit.errors import AuditError
from exchange.crypto.checkpoint import Checkpoint, open_checkpoint
from exchange.crypto.errors import CryptoError
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.crypto.note import Verifier, Verifiers

__all__ = ["Discrepancy", "IntegrityReport", "LeafHashes", "verify_integrity"]


class LeafHashes(Protocol):
    """A second copy of the tree (the tiles, or an archive's hashes) that names the exact entry at fault when a
    checkpoint's root does not match: trusted only once its own root equals the checkpoint's."""

    def root(self, size: int) -> bytes: ...
    def leaf_hashes(self, start: int, end: int, size: int) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """The first thing found wrong: at which log index (None for a checkpoint on its own), which check, why."""

    index: int | None
    check: str
    detail: str

    def __str__(self) -> str:
        where = "" if self.index is None else f"index {self.index}: "
        return f"{where}{self.check}: {self.detail}"


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    entries: int
    checkpoints: int
    first_error: Discrepancy | None
    decisions_reevaluated: int = 0

    @property
    def ok(self) -> bool:
        return self.first_error is None


def verify_integrity(entries: Iterable[tuple[int, bytes]], checkpoints: Sequence[bytes | str],
                     verifiers: Verifiers | Iterable[Verifier], origin: str, *,
                     check_entry: Callable[[int, bytes], Discrepancy | str | None] | None = None,
                     progress: Callable[[int], None] | None = None,
                     reference: LeafHashes | None = None,
                     prefix_leaves: Sequence[bytes] = ()) -> IntegrityReport:
    """Replay ``entries`` (``(index, value)`` in log order) and check them against ``checkpoints`` (signed
    notes, in publication order). ``check_entry`` may refuse an entry's content, returning why (a string: it
    is not a decision entry) or the discrepancy found in it. With a ``reference`` whose root matches a
    mismatched checkpoint, the first entry whose leaf hash differs from it is named.

    ``prefix_leaves`` are the leaf hashes of entries 0 to I-1 when ``entries`` start at index I (an archive of
    part of the log): the tree starts from them, and every checkpoint of size up to I is checked against their
    root at its size. They are trusted no further: wrong ones also give another root at every later checkpoint.
    """
    opened = _open_all(checkpoints, verifiers if isinstance(verifiers, Verifiers) else list(verifiers), origin)
    if isinstance(opened, Discrepancy):
        return IntegrityReport(0, 0, opened)
    by_size: dict[int, list[Checkpoint]] = {}
    for checkpoint in opened:
        by_size.setdefault(checkpoint.size, []).append(checkpoint)
    empty_root = CompactTree().root()
    checked = sum(1 for c in by_size.get(0, []) if c.root_hash == empty_root)
    if checked != len(by_size.get(0, [])):
        return IntegrityReport(0, 0, Discrepancy(None, "root mismatch",
                                                 "a checkpoint of size 0 signs a non-empty root"))
    tree = CompactTree()
    prefix_checked, error = _prefix(tree, prefix_leaves, by_size)
    checked += prefix_checked
    if error is not None:
        return IntegrityReport(tree.size, checked, error)
    since: list[bytes] = []  # the leaf hashes after the last checkpoint that matched, to name the one at fault
    for index, value in entries:
        error = _entry_error(tree, index, value, check_entry)
        if error is None:
            leaf = leaf_hash(value)
            tree.append(leaf)
            since.append(leaf)
            heads = by_size.get(tree.size, ())
            error = _heads_error(tree, index, heads)
            if error is not None and reference is not None:
                error = _at_fault(reference, heads, tree.size, since) or error
            checked += len(heads)
            if heads:
                since = []
        if error is not None:
            return IntegrityReport(tree.size, checked, error)
        if progress is not None:
            progress(tree.size)
    beyond = [c for c in opened if c.size > tree.size]
    if beyond:
        return IntegrityReport(tree.size, checked, Discrepancy(
            tree.size, "missing index", f"a checkpoint of size {beyond[0].size} covers more than the "
            f"{tree.size} entries present (the log's tail was dropped)"))
    return IntegrityReport(tree.size, checked, None)


def _open_all(notes: Sequence[bytes | str], verifiers: Verifiers | list[Verifier],
              origin: str) -> list[Checkpoint] | Discrepancy:
    """Every checkpoint opened, in publication order, never smaller than the one before."""
    opened: list[Checkpoint] = []
    for number, note in enumerate(notes):
        try:
            checkpoint = open_checkpoint(note, verifiers, origin=origin)
        except CryptoError as exc:
            return Discrepancy(None, "bad checkpoint signature", f"checkpoint {number}: {exc}")
        if opened and checkpoint.size < opened[-1].size:
            return Discrepancy(None, "inconsistent checkpoints", f"checkpoint {number} has size {checkpoint.size}, "
                               f"after one of size {opened[-1].size}")
        opened.append(checkpoint)
    return opened


def _prefix(tree: CompactTree, leaves: Sequence[bytes],
            by_size: dict[int, list[Checkpoint]]) -> tuple[int, Discrepancy | None]:
    """Append the leaf hashes before the first entry, checking each checkpoint they reach; how many passed."""
    checked = 0
    for leaf in leaves:
        tree.append(leaf)
        heads = by_size.get(tree.size, ())
        if heads and any(c.root_hash != tree.root() for c in heads):
            return checked, Discrepancy(tree.size - 1, "root mismatch", f"the checkpoint of size {tree.size} signs "
                                        f"another root than the leaf hashes of entries 0 to {tree.size - 1} given "
                                        "before the first entry make")
        checked += len(heads)
    return checked, None


def _entry_error(tree: CompactTree, index: int, value: bytes,
                 check_entry: Callable[[int, bytes], Discrepancy | str | None] | None) -> Discrepancy | None:
    if index != tree.size:
        check = "duplicate index" if index < tree.size else "missing index"
        return Discrepancy(tree.size, check, f"expected index {tree.size}, found {index}")
    refusal = check_entry(index, value) if check_entry is not None else None
    if isinstance(refusal, str):
        return Discrepancy(index, "not a decision entry", refusal)
    return refusal


def _heads_error(tree: CompactTree, index: int, heads: Sequence[Checkpoint]) -> Discrepancy | None:
    if not heads:
        return None
    root = tree.root()
    if any(c.root_hash != root for c in heads):
        return Discrepancy(index, "root mismatch", f"the checkpoint of size {tree.size} signs another root than "
                           f"the entries up to index {index} make (an entry at or before it was altered, dropped, "
                           "reordered or inserted, or the checkpoint is a split view)")
    return None


def _at_fault(reference: LeafHashes, heads: Sequence[Checkpoint], size: int, since: list[bytes]) -> Discrepancy | None:
    """The first entry of ``since`` (the leaves up to ``size`` after the last matching checkpoint) whose hash
    differs from the reference's, if the reference's root is the checkpoint's."""
    try:
        if any(reference.root(size) != c.root_hash for c in heads):
            return None
        hashes = reference.leaf_hashes(size - len(since), size, size)
    except (AuditError, CryptoError, OSError):
        return None
    for at, (found, expected) in enumerate(zip(since, hashes, strict=True), start=size - len(since)):
        if found != expected:
            return Discrepancy(at, "leaf hash", f"entry {at} is not the entry the checkpoint of size {size} covers "
                               "(its leaf hash differs from the signed tree's): it was altered, or entries were "
                               "dropped, reordered or inserted here")
    return None
