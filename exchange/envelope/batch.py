"""Batch signatures: many event digests, one Ed25519 signature (C2SP signed note over an RFC 6962 root).

The note text names the batch's source agency, its size and its Merkle root::

    exchange.batch/v1
    <source agency id>
    <size>
    <base64 root>

Each event carries the note and its inclusion proof, encoded as ``index (u32) ‖ size (u32) ‖ hashes``. A batch
of one has an empty proof; its root is the leaf hash of the single digest.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.merkle import HASH_SIZE, inclusion_proofs, leaf_hash, root
from exchange.crypto.note import NoteSigner, sign_note
from exchange.envelope.errors import BadProofError, MalformedEnvelopeError

__all__ = ["BATCH_ORIGIN", "BatchNote", "SealedBatch", "decode_proof", "encode_proof", "parse_batch_text", "seal"]

BATCH_ORIGIN = "exchange.batch/v1"
_PROOF_HEAD = struct.Struct(">II")


@dataclass(frozen=True, slots=True)
class BatchNote:
    """What a batch note's text says."""

    source: str
    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A signed batch: the note and, per event in order, its encoded inclusion proof."""

    note: str
    proofs: list[bytes]


def batch_text(source: str, size: int, tree_root: bytes) -> str:
    return f"{BATCH_ORIGIN}\n{source}\n{size}\n{base64.b64encode(tree_root).decode()}\n"


def parse_batch_text(text: str) -> BatchNote:
    """Parse a batch note's (already verified) text; raises MalformedEnvelopeError."""
    lines = text.split("\n")
    if len(lines) != 5 or lines[0] != BATCH_ORIGIN or lines[4] != "":
        raise MalformedEnvelopeError("the batch note is not an exchange.batch/v1 note")
    try:
        size = int(lines[2])
        tree_root = b64decode_strict(lines[3])
    except (ValueError, binascii.Error) as exc:
        raise MalformedEnvelopeError(f"the batch note's size or root is not well-formed: {exc}") from exc
    if size < 1 or len(tree_root) != HASH_SIZE:
        raise MalformedEnvelopeError("the batch note's size or root is out of range")
    return BatchNote(lines[1], size, tree_root)


def seal(source: str, digests: Sequence[bytes], signer: NoteSigner) -> SealedBatch:
    """Sign a batch of event digests as ``source``; returns the note and every event's proof."""
    leaves = [leaf_hash(d) for d in digests]
    note = sign_note(batch_text(source, len(leaves), root(leaves)), [signer])
    size = len(leaves)
    proofs = [encode_proof(i, size, path) for i, path in enumerate(inclusion_proofs(leaves))]
    return SealedBatch(note, proofs)


def encode_proof(index: int, size: int, hashes: Sequence[bytes]) -> bytes:
    return _PROOF_HEAD.pack(index, size) + b"".join(hashes)


def decode_proof(raw: bytes) -> tuple[int, int, list[bytes]]:
    """``(index, size, hashes)``; raises BadProofError when the bytes cannot be a proof."""
    if len(raw) < _PROOF_HEAD.size or (len(raw) - _PROOF_HEAD.size) % HASH_SIZE:
        raise BadProofError(f"the inclusion proof has {len(raw)} bytes, which is not 8 + 32·k")
    index, size = _PROOF_HEAD.unpack_from(raw)
    body = raw[_PROOF_HEAD.size:]
    return index, size, [body[i:i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
