"""Offline proofs about the access log: one entry's inclusion (C2SP tlog-proof) and two checkpoints' consistency.

**Inclusion**, as https://c2sp.org/tlog-proof defines it::

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque data>]
    index <entry index, decimal, no leading zeros>
    <base64 hash>            the RFC 6962 inclusion proof, one hash a line, from the leaf's sibling up
    ...
    <empty line>
    <the checkpoint note, verbatim: origin, size, root, an empty line, the log's signature and cosignatures>

The spec leaves ``extra`` to the application. The exchange puts the entry's 32-byte RFC 6962 leaf hash there:
the proof then shows, by itself, which leaf the signed tree holds at the index, and the entry's bytes (given
separately; they are not in the proof) are checked against it. ``extra`` is not trusted as such: the inclusion
proof authenticates the leaf hash against the signed root.

**Consistency**, a format of the exchange's own in the same spirit::

    exchange.local/consistency-proof@v1
    old <size A>
    new <size B, larger than A>
    <base64 hash>            the RFC 9162 consistency proof from A to B, one hash a line
    ...
    <empty line>
    <the checkpoint note of size B, verbatim>
    <empty line>
    <the checkpoint note of size A, verbatim>

Both notes are embedded so that a verifier can check, offline, that the log signed (and the witnesses cosigned)
both roots. Neither a checkpoint's text nor its signature lines can be empty, so the empty line between the
notes is unambiguous.

Both parsers are strict: UTF-8, ``\\n`` line ends, canonical base64 of exactly 32-byte hashes, no more hashes
than any tree of at most 2^64 - 1 entries needs, each note a well-formed signed checkpoint. Anything else raises
:class:`MalformedProofError`. :func:`check_proof` and :func:`check_consistency_proof` verify the signatures
and the Merkle proofs; every failure is a :class:`ProofError` whose message gives the reason. Nothing here does
I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from exchange.audit.errors import AuditError
from exchange.crypto.checkpoint import MAX_TREE_SIZE, Checkpoint, parse_checkpoint
from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.errors import (
    InvalidSignatureError,
    MalformedCheckpointError,
    MalformedNoteError,
    MerkleError,
    NoteError,
    UnverifiedNoteError,
)
from exchange.crypto.merkle import HASH_SIZE, leaf_hash, verify_consistency, verify_inclusion
from exchange.crypto.note import Verifier, VerifierSet, open_note

__all__ = ["CONSISTENCY_HEADER", "MAX_CONSISTENCY_HASHES", "MAX_INCLUSION_HASHES", "PROOF_HEADER",
           "CheckedConsistency", "CheckedInclusion", "ConsistencyProof", "EntryMismatchError", "InclusionProof",
           "MalformedProofError", "ProofError", "ProofHashError", "ProofSignatureError", "ProofSizeError",
           "ProofWitnessError", "check_consistency_proof", "check_proof", "format_consistency_proof", "format_proof",
           "parse_consistency_proof", "parse_proof"]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_HEADER = "exchange.local/consistency-proof@v1"
MAX_INCLUSION_HASHES = 64
"""No leaf of a tree of at most 2^64 - 1 entries has a longer inclusion proof."""
MAX_CONSISTENCY_HASHES = 65
"""No two trees of at most 2^64 - 1 entries have a longer consistency proof."""

_NUMBER = r"(0|[1-9][0-9]{0,19})"  # uint64 decimal, no sign or leading zero; the range is checked after int()
_INDEX = re.compile(f"index {_NUMBER}", re.ASCII)
_OLD = re.compile(f"old {_NUMBER}", re.ASCII)
_NEW = re.compile(f"new {_NUMBER}", re.ASCII)


class ProofError(AuditError):
    """A proof cannot be read, or does not prove what it claims; the message says why."""


class MalformedProofError(ProofError):
    """Not a well-formed proof of its format (header, lines, base64, hash sizes, the embedded note)."""


class ProofSignatureError(ProofError):
    """A checkpoint is not signed by the log's key, a trusted signature on it fails, or it is for another log."""


class ProofWitnessError(ProofSignatureError):
    """A checkpoint lacks a valid cosignature by a witness the reader requires."""


class ProofSizeError(ProofError):
    """The index is not below the checkpoint's size, or the sizes a consistency proof names are not its
    checkpoints' sizes."""


class ProofHashError(ProofError):
    """The hashes do not lead to the signed root: too few or too many for the index and size, or altered."""


class EntryMismatchError(ProofError):
    """The entry given is not the one the proof is for (its leaf hash differs)."""


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """A parsed tlog-proof: the entry's index, the inclusion proof, the checkpoint note verbatim and ``extra``
    (None when the proof has no ``extra`` line; the exchange's proofs carry the entry's leaf hash there)."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index <= MAX_TREE_SIZE:
            raise MalformedProofError(f"index {self.index} is outside 0..2^64-1")
        _check_hashes(self.hashes, MAX_INCLUSION_HASHES, "inclusion")
        _note_checkpoint(self.checkpoint, "the checkpoint")


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """A parsed consistency proof: sizes ``old_size < new_size``, the hashes and both checkpoint notes verbatim."""

    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]
    new_checkpoint: str
    old_checkpoint: str

    def __post_init__(self) -> None:
        if not 0 <= self.old_size < self.new_size <= MAX_TREE_SIZE:
            raise MalformedProofError(f"sizes {self.old_size} -> {self.new_size} are not 0 <= old < new <= 2^64-1")
        _check_hashes(self.hashes, MAX_CONSISTENCY_HASHES, "consistency")
        _note_checkpoint(self.new_checkpoint, "the new checkpoint")
        _note_checkpoint(self.old_checkpoint, "the old checkpoint")


@dataclass(frozen=True, slots=True)
class CheckedInclusion:
    """What a checked inclusion proof established: ``leaf_hash`` is entry ``index`` of the tree ``checkpoint``,
    signed by ``log_key`` and cosigned by every key of ``witnesses`` (``name+key id``); ``entry_checked`` says
    whether the entry's bytes were given and match."""

    checkpoint: Checkpoint
    index: int
    leaf_hash: bytes
    entry_checked: bool
    log_key: str
    witnesses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckedConsistency:
    """What a checked consistency proof established: the tree ``old`` is a prefix of the tree ``new``, both
    signed by the log and cosigned by every key of ``witnesses``."""

    old: Checkpoint
    new: Checkpoint
    log_key: str
    witnesses: tuple[str, ...]


def format_proof(proof: InclusionProof) -> str:
    """The tlog-proof text of ``proof``."""
    lines = [PROOF_HEADER]
    if proof.extra is not None:
        lines.append(f"extra {base64.b64encode(proof.extra).decode()}")
    lines.append(f"index {proof.index}")
    lines += (base64.b64encode(h).decode() for h in proof.hashes)
    return "\n".join(lines) + "\n\n" + proof.checkpoint


def parse_proof(text: str | bytes) -> InclusionProof:
    """Parse a tlog-proof strictly; raises :class:`MalformedProofError` naming what is wrong."""
    lines = _Lines(text, PROOF_HEADER, "tlog-proof")
    line = lines.next("the index line")
    extra = None
    if line.startswith("extra "):
        extra = _b64(line.removeprefix("extra "), "the extra data")
        line = lines.next("the index line")
    index = _number(_INDEX, line, lines.number, "index N")
    hashes = lines.hashes(MAX_INCLUSION_HASHES, "inclusion")
    return InclusionProof(index, hashes, lines.rest("the checkpoint"), extra)


def format_consistency_proof(proof: ConsistencyProof) -> str:
    """The text of a consistency proof (format in the module docstring)."""
    lines = [CONSISTENCY_HEADER, f"old {proof.old_size}", f"new {proof.new_size}"]
    lines += (base64.b64encode(h).decode() for h in proof.hashes)
    return "\n".join(lines) + "\n\n" + proof.new_checkpoint + "\n" + proof.old_checkpoint


def parse_consistency_proof(text: str | bytes) -> ConsistencyProof:
    """Parse a consistency proof strictly; raises :class:`MalformedProofError` naming what is wrong."""
    lines = _Lines(text, CONSISTENCY_HEADER, "consistency proof")
    old = _number(_OLD, lines.next("the old line"), lines.number, "old N")
    new = _number(_NEW, lines.next("the new line"), lines.number, "new N")
    if old >= new:
        raise MalformedProofError(f"old size {old} is not smaller than new size {new}")
    hashes = lines.hashes(MAX_CONSISTENCY_HASHES, "consistency")
    notes = lines.rest("the new checkpoint")
    # The new note is its text, an empty line and its signatures; an empty line then starts the old note.
    text_end = notes.find("\n\n")
    split = notes.find("\n\n", text_end + 2) if text_end >= 0 else -1
    if split < 0 or not notes[split + 2:]:
        raise MalformedProofError("the consistency proof has no old checkpoint after the new one and an empty line")
    return ConsistencyProof(old, new, hashes, notes[:split + 1], notes[split + 2:])


def check_proof(
    proof: str | bytes | InclusionProof,
    entry: bytes | None,
    log_keys: Verifier | Iterable[Verifier],
    witness_keys: Iterable[Verifier] = (),
    *,
    origin: str,
) -> CheckedInclusion:
    """Check that the proof's checkpoint is the log's, signed by one of ``log_keys`` and cosigned by every one of
    ``witness_keys``, for ``origin``; that the index is below its size; and that the inclusion proof leads from
    the leaf to its root. The leaf hash is the entry's when ``entry`` is given (and must then equal the one in
    ``extra``, if any), else the one in ``extra``. Returns what was proved; raises a :class:`ProofError`."""
    parsed = proof if isinstance(proof, InclusionProof) else parse_proof(proof)
    checkpoint, log_key, witnesses = _open(parsed.checkpoint, _keys(log_keys), tuple(witness_keys), origin,
                                           "the checkpoint")
    if parsed.index >= checkpoint.size:
        raise ProofSizeError(f"index {parsed.index} is not in the checkpoint's tree of size {checkpoint.size}")
    claimed = parsed.extra
    if claimed is not None and len(claimed) != HASH_SIZE:
        raise MalformedProofError(f"the extra data has {len(claimed)} bytes, not a {HASH_SIZE}-byte leaf hash")
    if entry is not None:
        leaf = leaf_hash(entry)
        if claimed is not None and claimed != leaf:
            raise EntryMismatchError(f"the entry's leaf hash is {leaf.hex()}, the proof is for {claimed.hex()}")
    elif claimed is not None:
        leaf = claimed
    else:
        raise MalformedProofError("the proof carries no leaf hash (no extra line): give the entry to check it")
    try:
        verify_inclusion(leaf, parsed.index, checkpoint.size, parsed.hashes, checkpoint.root_hash)
    except MerkleError as exc:
        another = " (an altered hash, or another entry)" if entry is not None and claimed is None else ""
        raise ProofHashError(f"{exc}{another}") from exc
    return CheckedInclusion(checkpoint, parsed.index, leaf, entry is not None, log_key, witnesses)


def check_consistency_proof(
    proof: str | bytes | ConsistencyProof,
    log_keys: Verifier | Iterable[Verifier],
    witness_keys: Iterable[Verifier] = (),
    *,
    origin: str,
) -> CheckedConsistency:
    """Check that both checkpoints are the log's (signed by one of ``log_keys``, cosigned by every one of
    ``witness_keys``, for ``origin``), have the sizes the proof names, and that the hashes prove the old tree a
    prefix of the new one. Returns what was proved; raises a :class:`ProofError`."""
    parsed = proof if isinstance(proof, ConsistencyProof) else parse_consistency_proof(proof)
    logs, required = _keys(log_keys), tuple(witness_keys)
    new, log_key, witnesses = _open(parsed.new_checkpoint, logs, required, origin, "the new checkpoint")
    old, _, _ = _open(parsed.old_checkpoint, logs, required, origin, "the old checkpoint")
    for what, named, signed in (("old", parsed.old_size, old.size), ("new", parsed.new_size, new.size)):
        if named != signed:
            raise ProofSizeError(f"the proof names {what} size {named}, its {what} checkpoint has size {signed}")
    try:
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash, parsed.hashes)
    except MerkleError as exc:
        raise ProofHashError(str(exc)) from exc
    return CheckedConsistency(old, new, log_key, witnesses)


def _keys(log_keys: Verifier | Iterable[Verifier]) -> tuple[Verifier, ...]:
    keys = (log_keys,) if isinstance(log_keys, Verifier) else tuple(log_keys)
    if not keys:
        raise ValueError("checking a proof needs at least one log key")
    return keys


def _open(note: str, logs: tuple[Verifier, ...], witnesses: tuple[Verifier, ...], origin: str,
          what: str) -> tuple[Checkpoint, str, tuple[str, ...]]:
    # The checkpoint, the log key that signed it and the witnesses that cosigned it; every required one must.
    # Keys that clash (one name and key id, two keys) raise AmbiguousKeyError here: the reader's mistake.
    store = VerifierSet((*logs, *witnesses))
    try:
        opened = open_note(note, store)
    except InvalidSignatureError as exc:
        by_witness = any((w.name, w.key_id) == (exc.name, exc.key_id) for w in witnesses)
        raise (ProofWitnessError if by_witness else ProofSignatureError)(f"{what}: {exc}") from exc
    except NoteError as exc:  # no signature by a trusted key
        raise ProofSignatureError(f"{what} is not signed by the log key: {exc}") from exc
    signed = [k for k in logs if (k.name, k.key_id) in opened.signers]
    if not signed:
        keys = ", ".join(f"{k.name}+{k.key_id}" for k in logs)
        raise ProofSignatureError(f"{what} has no signature by the log key ({keys}), only by witnesses")
    for w in witnesses:
        if (w.name, w.key_id) not in opened.signers:
            raise ProofWitnessError(f"{what} has no cosignature by the witness {w.name}+{w.key_id}")
    checkpoint = parse_checkpoint(opened.text)  # well-formed: the parser checked it
    if checkpoint.origin != origin:
        raise ProofSignatureError(f"{what} is for the log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint, f"{signed[0].name}+{signed[0].key_id}", tuple(f"{w.name}+{w.key_id}" for w in witnesses)


class _Lines:
    # A strict reader of a proof's lines: the header, then one line at a time, then the note(s) after them.
    __slots__ = ("_rest", "kind", "number")

    def __init__(self, text: str | bytes, header: str, kind: str) -> None:
        if isinstance(text, bytes):
            try:
                text = text.decode()
            except UnicodeDecodeError:
                raise MalformedProofError(f"the {kind} is not UTF-8 text") from None
        self.kind, self.number, self._rest = kind, 0, text
        first = self.next("the header")
        if first != header:
            shown = first if len(first) <= 60 else first[:60] + "..."
            raise MalformedProofError(f"the first line is {shown!r}, not {header!r}")

    def next(self, what: str) -> str:
        line, sep, self._rest = self._rest.partition("\n")
        self.number += 1
        if not sep:
            raise MalformedProofError(f"the {self.kind} ends before {what} (line {self.number})")
        return line

    def hashes(self, limit: int, kind: str) -> tuple[bytes, ...]:
        found: list[bytes] = []
        while line := self.next("the empty line before the checkpoint"):
            if len(found) == limit:
                raise MalformedProofError(f"more than {limit} {kind} proof hashes: no tree needs that many")
            raw = _b64(line, f"line {self.number}")
            if len(raw) != HASH_SIZE:
                raise MalformedProofError(f"line {self.number} is a {len(raw)}-byte value, not a {HASH_SIZE}-byte hash")
            found.append(raw)
        return tuple(found)

    def rest(self, what: str) -> str:
        if not self._rest:
            raise MalformedProofError(f"the {self.kind} has no {what.removeprefix('the ')} after the empty line")
        return self._rest


def _number(pattern: re.Pattern[str], line: str, number: int, form: str) -> int:
    found = pattern.fullmatch(line)
    if found is None:
        shown = line if len(line) <= 60 else line[:60] + "..."
        raise MalformedProofError(f"line {number} is {shown!r}, not {form!r} (a decimal without leading zeros)")
    value = int(found[1])
    if value > MAX_TREE_SIZE:
        raise MalformedProofError(f"line {number}: {value} exceeds 2^64-1")
    return value


def _b64(text: str, what: str) -> bytes:
    try:
        return b64decode_strict(text)
    except (binascii.Error, ValueError):
        raise MalformedProofError(f"{what} is not canonical base64") from None


def _check_hashes(hashes: tuple[bytes, ...], limit: int, kind: str) -> None:
    if len(hashes) > limit:
        raise MalformedProofError(f"more than {limit} {kind} proof hashes: no tree needs that many")
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise MalformedProofError(f"{kind} proof hash {i} has {len(h)} bytes, not {HASH_SIZE}")


def _note_checkpoint(note: str, what: str) -> None:
    # A well-formed signed note whose text is a checkpoint. Opening it with no trusted key runs the note parser
    # (MalformedNoteError) and then refuses it for want of a trusted signature, which is expected here: the
    # signatures are checked later, against the reader's keys.
    try:
        open_note(note, VerifierSet(()))
    except UnverifiedNoteError:
        pass
    except MalformedNoteError as exc:
        raise MalformedProofError(f"{what} is not a signed note: {exc}") from None
    try:
        parse_checkpoint(note[:note.rfind("\n\n") + 1])
    except MalformedCheckpointError as exc:
        raise MalformedProofError(f"{what} is not a checkpoint: {exc}") from None
