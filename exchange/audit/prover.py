"""Proving one entry of the access log included, from the sequencer's tiles (``exchange audit prove --index`` and
the data tracker's proof links): the proof is against the tiles' ``checkpoint``, the newest published one, with
the witnesses' cosignatures, and it is checked against that root before it is handed out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exchange.audit._files import read_bounded
from exchange.audit.errors import AuditError
from exchange.audit.proof import InclusionProof, format_proof
from exchange.audit.tiles import CHECKPOINT_PATH, TileError, TileReader
from exchange.crypto.checkpoint import Checkpoint, parse_checkpoint
from exchange.crypto.errors import MalformedCheckpointError, MerkleError
from exchange.crypto.merkle import leaf_hash, verify_inclusion

__all__ = ["NotYetProvableError", "ProvedEntry", "TilesError", "prove_entry", "unverified_checkpoint"]

_MAX_CHECKPOINT = 1 << 16


class TilesError(AuditError):
    """The tiles directory cannot prove anything: missing, unreadable, or not matching its checkpoint."""


class NotYetProvableError(AuditError):
    """The entry is not in the newest published checkpoint yet: prove it after the next one."""


@dataclass(frozen=True, slots=True)
class ProvedEntry:
    index: int
    entry: bytes
    """The entry's bytes (not in the proof; ``check-proof --entry`` checks them against its leaf hash)."""
    proof: str
    """The C2SP tlog-proof text, with the entry's leaf hash as ``extra``."""
    checkpoint: Checkpoint


def unverified_checkpoint(note: str, what: str) -> Checkpoint:
    """The checkpoint a signed note carries, its signatures NOT checked (a prover picks and cross-checks; the
    verifier of the proof checks them)."""
    split = note.rfind("\n\n")
    if split < 0:
        raise TilesError(f"{what} is not a signed checkpoint: no empty line before its signatures")
    try:
        return parse_checkpoint(note[:split + 1])
    except MalformedCheckpointError as exc:
        raise TilesError(f"{what} is not a signed checkpoint: {exc}") from None


def prove_entry(reader: TileReader, index: int, note: str | None = None) -> ProvedEntry:
    """The inclusion proof of entry ``index`` against ``note`` (default: the tiles' own checkpoint)."""
    if index < 0:
        raise NotYetProvableError(f"entry {index} does not exist")
    if note is None:
        note = _read_note(reader.directory)
    checkpoint = unverified_checkpoint(note, f"the checkpoint in {reader.directory}")
    if index >= checkpoint.size:
        raise NotYetProvableError(f"entry {index} is not in the newest checkpoint (size {checkpoint.size}) yet: "
                                  "prove it after the next checkpoint is published")
    try:
        entry = reader.entry(index, checkpoint.size)
        hashes = reader.inclusion_proof(index, checkpoint.size)
        leaf = leaf_hash(entry)
        verify_inclusion(leaf, index, checkpoint.size, hashes, checkpoint.root_hash)
    except (TileError, MerkleError, OSError) as exc:
        raise TilesError(f"the tiles in {reader.directory} do not match their checkpoint (entry {index}): {exc}"
                         ) from exc
    return ProvedEntry(index, entry, format_proof(InclusionProof(index, tuple(hashes), note, leaf)), checkpoint)


def _read_note(directory: Path) -> str:
    path = directory / CHECKPOINT_PATH
    try:
        data = read_bounded(path, _MAX_CHECKPOINT)
    except OSError as exc:
        raise TilesError(f"cannot read the tiles' checkpoint {path}: {exc.strerror}") from None
    if data is None:
        raise TilesError(f"the tiles' checkpoint {path} is larger than {_MAX_CHECKPOINT} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise TilesError(f"the checkpoint in {directory} is not UTF-8 text") from None
