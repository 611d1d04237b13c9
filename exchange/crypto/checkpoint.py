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
from exchange.crypto.note import NoteSigner, Verifier, Verifiers, open_note, sign_note

__all__ = ["Checkpoint", "format_checkpoint", "open_checkpoint", "parse_checkpoint", "sign_checkpoint"]

_SIZE = re.compile(r"0|[1-9][0-9]*", re.ASCII)


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
        if self.size < 0:
            raise MalformedCheckpointError(f"checkpoint tree size {self.size} is negative")
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
        raise MalformedCheckpointError(f"checkpoint tree size {size_line!r} is not a decimal without leading zeros")
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
    note: str | bytes, verifiers: Verifiers | Iterable[Verifier], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint (see :func:`~exchange.crypto.note.open_note`) and parse its text.

    With ``origin``, a checkpoint of another log is refused with :class:`MalformedCheckpointError`.
    """
    opened = open_note(note, verifiers)
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise MalformedCheckpointError(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


def _is_line(s: str) -> bool:
    return not any(ord(c) < 0x20 for c in s)
