"""C2SP tlog checkpoints (https://c2sp.org/tlog-checkpoint): a log's tree head as the text of a signed note.

::

    <origin>\\n
    <tree size, decimal>\\n
    <base64 root hash>\\n
    [<extension line>\\n ...]

The access-log sequencer signs one every N entries or T seconds; auditors and citizens open it with the
sequencer's verifier and check consistency between successive checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.errors import MalformedCheckpointError
from exchange.crypto.merkle import HASH_SIZE
from exchange.crypto.note import NoteSigner, Verifier, Verifiers, VerifierSet, open_note, sign_note

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

MAX_TREE_SIZE = 2**64 - 1
"""The largest tree size: sizes are uint64, as transparency-dev/formats/log reads them (``strconv.ParseUint``)."""

# No sign, no leading zero, no space, at most 20 digits (so int() never sees a huge string); the range is
# checked after conversion.
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, tree size and RFC 6962 root hash, plus optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or not _is_line(self.origin):
            raise MalformedCheckpointError("checkpoint origin must be a non-empty line without control characters")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise MalformedCheckpointError(f"checkpoint tree size {self.size} is outside 0..2^64-1")
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedCheckpointError(f"checkpoint root hash has {len(self.root_hash)} bytes, not {HASH_SIZE}")
        for ext in self.extensions:
            if not ext or not _is_line(ext):
                raise MalformedCheckpointError("checkpoint extension lines must be non-empty single lines")


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The note text of a checkpoint, ending in a newline."""
    lines = [
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode(),
        *checkpoint.extensions,
    ]
    return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse the (already verified) note text of a checkpoint; raises :class:`MalformedCheckpointError`."""
    if not text.endswith("\n"):
        raise MalformedCheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedCheckpointError(f"checkpoint has {len(lines)} lines, at least 3 are needed")
    origin, size_line, root_line, *extensions = lines
    if not _SIZE.fullmatch(size_line):
        shown = size_line if len(size_line) <= 40 else size_line[:40] + "..."
        raise MalformedCheckpointError(f"checkpoint tree size {shown!r} is not a uint64 decimal without leading zeros")
    try:
        root_hash = b64decode_strict(root_line)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCheckpointError("checkpoint root hash is not valid base64") from exc
    if base64.b64encode(root_hash).decode() != root_line:
        raise MalformedCheckpointError("checkpoint root hash is not canonical base64")
    return Checkpoint(origin, int(size_line), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """The checkpoint as a signed note."""
    return sign_note(format_checkpoint(checkpoint), signers)


def open_checkpoint(
    note: str | bytes,
    verifiers: Verifiers | Iterable[Verifier],
    *,
    origin: str | None = None,
    log_key: Verifier | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint (see :func:`~exchange.crypto.note.open_note`) and parse its text.

    With ``origin``, a checkpoint of another log is refused with :class:`MalformedCheckpointError`. With
    ``log_key`` (trusted in addition to ``verifiers``), the log's own signature is required, as in
    transparency-dev/formats/log ``ParseCheckpoint``: a checkpoint that only other trusted keys (witnesses)
    signed is refused with :class:`MalformedCheckpointError`.
    """
    if log_key is not None:
        verifiers = _WithLogKey(log_key, verifiers if isinstance(verifiers, Verifiers) else VerifierSet(verifiers))
    opened = open_note(note, verifiers)
    if log_key is not None and (log_key.name, log_key.key_id) not in opened.signers:
        raise MalformedCheckpointError(f"checkpoint has no signature by the log key {log_key.name}+{log_key.key_id}")
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise MalformedCheckpointError(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


class _WithLogKey:
    # A trust store that knows the log's key first, then whatever the caller trusts.
    __slots__ = ("_log", "_others")

    def __init__(self, log_key: Verifier, others: Verifiers) -> None:
        self._log = log_key
        self._others = others

    def verifier(self, name: str, key_id: str) -> Verifier:
        if (name, key_id) == (self._log.name, self._log.key_id):
            return self._log
        return self._others.verifier(name, key_id)


def _is_line(s: str) -> bool:
    return not any(ord(c) < 0x20 for c in s)
