"""The sequencer's state: the tree's right edge, the last checkpoint it signed, and the local record of it.

Two copies are kept, on purpose (the Sigsum rule, "refuse to start below what you already signed"):

- the **log state** on ``audit.sequencer`` (one compacted record), written in the same Kafka transaction as the
  sequenced entries, the checkpoint and the consumed offsets, so it is always exactly the log's state;
- the **signed head** in a local file (``<state dir>/<log>.signed``), written atomically after each commit
  that published a checkpoint: the size and root the sequencer has signed and published.

On start the two must agree: the log state's signed head must be the local one or extend it. A log state
behind the local head (a restored or truncated topic), a missing local file while the log has signed
checkpoints (a lost or copied state directory), or a different root at the same size all refuse to start.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from pathlib import Path

from exchange.audit._files import write_atomically
from exchange.audit.errors import SequencerStateError
from exchange.crypto.merkle import HASH_SIZE

__all__ = ["LogState", "SignedHead", "read_signed_head", "write_signed_head"]

_VERSION = b"\x01"
_HEAD = struct.Struct(">cQQB")  # version, size, signed size, node count
_NO_SIGNED = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A tree size and root the sequencer signed in a published checkpoint."""

    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class LogState:
    """Everything the sequencer resumes from: the tree (size and right-edge nodes) and the last signed head."""

    size: int
    nodes: tuple[bytes, ...]
    signed: SignedHead | None

    def encode(self) -> bytes:
        signed_size = _NO_SIGNED if self.signed is None else self.signed.size
        signed_root = bytes(HASH_SIZE) if self.signed is None else self.signed.root
        return _HEAD.pack(_VERSION, self.size, signed_size, len(self.nodes)) + signed_root + b"".join(self.nodes)

    @classmethod
    def decode(cls, value: bytes) -> LogState:
        """Raises :class:`SequencerStateError` unless ``value`` is an encoded state."""
        if len(value) < _HEAD.size + HASH_SIZE or value[:1] != _VERSION:
            raise SequencerStateError("the sequencer's log state is not a state record")
        _, size, signed_size, count = _HEAD.unpack_from(value)
        body = value[_HEAD.size:]
        if len(body) != HASH_SIZE * (1 + count) or count != size.bit_count():
            raise SequencerStateError("the sequencer's log state has the wrong number of tree nodes")
        signed_root, nodes = body[:HASH_SIZE], body[HASH_SIZE:]
        signed = None if signed_size == _NO_SIGNED else SignedHead(signed_size, signed_root)
        if signed is not None and signed.size > size:
            raise SequencerStateError("the sequencer's log state signed more entries than it holds")
        return cls(size, tuple(nodes[i:i + HASH_SIZE] for i in range(0, len(nodes), HASH_SIZE)), signed)


def read_signed_head(path: Path) -> SignedHead | None:
    """The signed head recorded at ``path``, or None if there is no file; SequencerStateError if unreadable."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SequencerStateError(f"{path}: cannot read the signed head: {exc}") from exc
    lines = text.split("\n")
    if len(lines) != 3 or lines[2] != "" or not lines[0].isdigit():
        raise SequencerStateError(f"{path}: not a signed head (size and base64 root, one a line)")
    try:
        root = base64.b64decode(lines[1], validate=True)
    except binascii.Error as exc:
        raise SequencerStateError(f"{path}: the root is not base64") from exc
    if len(root) != HASH_SIZE:
        raise SequencerStateError(f"{path}: the root has {len(root)} bytes, not {HASH_SIZE}")
    return SignedHead(int(lines[0]), root)


def write_signed_head(path: Path, head: SignedHead) -> None:
    """Record ``head`` at ``path`` atomically (write a sibling, fsync, rename, fsync the directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, f"{head.size}\n{base64.b64encode(head.root).decode()}\n".encode())
