"""The integrity check of the sequenced log: every kind of tampering stops it at the right index, by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from exchange.audit import Discrepancy, LogState, SequencerStateError, SignedHead, verify_integrity
from exchange.audit.state import read_signed_head, write_signed_head
from exchange.crypto.checkpoint import Checkpoint, sign_checkpoint
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.crypto.note import Verifier

ORIGIN = "test.local/access-log"
SIGNER = Signer.generate("exchange-audit")
VERIFIERS = [Verifier(SIGNER.name, SIGNER.public_key)]
Tamper = Callable[[list[tuple[int, bytes]]], list[tuple[int, bytes]]]
VALUES = [f"entry {i}".encode() for i in range(50)]


def _checkpoints(values: list[bytes], sizes: tuple[int, ...] = (10, 25, 50)) -> list[str]:
    tree, notes = CompactTree(), []
    for value in values:
        tree.append(leaf_hash(value))
        if tree.size in sizes:
            notes.append(sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), [SIGNER]))
    return notes


def _error(entries: list[tuple[int, bytes]], notes: list[str] | None = None) -> Discrepancy | None:
    return verify_integrity(entries, _checkpoints(VALUES) if notes is None else notes, VERIFIERS, ORIGIN).first_error


def _log() -> list[tuple[int, bytes]]:
    return list(enumerate(VALUES))


def test_an_untouched_log_verifies() -> None:
    report = verify_integrity(_log(), _checkpoints(VALUES), VERIFIERS, ORIGIN)
    assert (report.ok, report.entries, report.checkpoints) == (True, 50, 3)


def test_a_flipped_byte_fails_at_the_first_checkpoint_after_it() -> None:
    log = _log()
    log[30] = (30, b"entrz 30")
    error = _error(log)
    assert error is not None
    assert (error.index, error.check) == (49, "root mismatch")


@pytest.mark.parametrize(("tamper", "index", "check"), [
    (lambda log: log[:5] + log[6:], 5, "missing index"),
    (lambda log: [*log[:8], log[7], *log[8:]], 8, "duplicate index"),
    (lambda log: [*log[:3], log[4], log[3], *log[5:]], 3, "missing index"),
    (lambda log: log[:40], 40, "missing index"),
])
def test_dropped_duplicated_reordered_and_truncated_entries_are_named(tamper: Tamper, index: int, check: str) -> None:
    error = _error(tamper(_log()))
    assert error is not None
    assert (error.index, error.check) == (index, check)


def test_renumbered_tampering_fails_at_the_covering_checkpoint() -> None:
    """Entries reordered, or one forged and inserted, with the indices rewritten to look contiguous."""
    swapped = [*VALUES[:3], VALUES[4], VALUES[3], *VALUES[5:]]
    forged = [*VALUES[:12], b"a forged PERMIT", *VALUES[12:-1]]
    for values, index in ((swapped, 9), (forged, 24)):
        error = _error(list(enumerate(values)))
        assert error is not None
        assert (error.index, error.check) == (index, "root mismatch")


def test_checkpoint_tampering_and_a_split_view() -> None:
    notes = _checkpoints(VALUES)
    altered = [notes[0], notes[1].replace("\n25\n", "\n26\n"), notes[2]]
    error = _error(_log(), altered)
    assert error is not None
    assert error.check == "bad checkpoint signature"
    other = [*VALUES[:20], b"what another reader was shown", *VALUES[21:]]
    split = [notes[0], _checkpoints(other)[1], notes[2]]  # validly signed, over a different root at size 25
    error = _error(_log(), split)
    assert error is not None
    assert (error.index, error.check) == (24, "root mismatch")
    error = _error(_log(), [notes[1], notes[0]])
    assert error is not None
    assert error.check == "inconsistent checkpoints"
    stranger = Signer.generate("exchange-audit")
    foreign = [sign_checkpoint(Checkpoint(ORIGIN, 10, CompactTree().root()), [stranger])]
    error = _error(_log(), foreign)
    assert error is not None
    assert error.check == "bad checkpoint signature"


def test_the_log_state_round_trips_and_refuses_garbage(tmp_path: Path) -> None:
    tree = CompactTree()
    for value in VALUES[:13]:
        tree.append(leaf_hash(value))
    size, nodes = tree.state
    state = LogState(size, nodes, SignedHead(10, bytes(range(32))))
    assert LogState.decode(state.encode()) == state
    assert LogState.decode(LogState(0, (), None).encode()) == LogState(0, (), None)
    for bad in (b"", state.encode()[:-1], b"\x02" + state.encode()[1:]):
        with pytest.raises(SequencerStateError):
            LogState.decode(bad)
    path = tmp_path / "log.signed"
    assert read_signed_head(path) is None
    write_signed_head(path, SignedHead(13, tree.root()))
    assert read_signed_head(path) == SignedHead(13, tree.root())
    path.write_text("13\nnot base64!\n")
    with pytest.raises(SequencerStateError):
        read_signed_head(path)
