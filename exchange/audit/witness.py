"""The witness: cosigns a log's checkpoints only if they extend what it cosigned before (C2SP tlog-witness).

A witness is run by someone other than the log (a data protection authority, an auditor). For each log it knows
(by origin, with the log's verifier keys) it keeps the latest checkpoint it cosigned. It cosigns a new checkpoint
only if the log signed it and a consistency proof shows it extends that one, so a log that shows two readers two
different histories cannot get both cosigned by the same witness.

An ``add-checkpoint`` request (https://c2sp.org/tlog-witness) is::

    old <size the client believes the witness has cosigned>\\n
    <base64 consistency proof hash>\\n      (0 to 63 lines)
    \\n
    <the signed checkpoint note>

The answers, each a :class:`WitnessError` with the HTTP status the spec gives it: 400 malformed request, or
``old`` above the checkpoint's size; 403 no valid signature by a key of the log; 404 unknown origin; 409
``old`` is not the size last cosigned (the error carries that size); 413 request too large; 422 the proof does not
verify, a non-empty proof from size 0, another root at the same size, or a size-0 checkpoint with a non-empty root.

State: one file per origin, ``<state dir>/<sha256(origin) hex>.checkpoint``, holding the checkpoint last cosigned
with the log's verified signatures and the witness's cosignature. It is written atomically (a sibling, fsync,
rename, fsync of the directory) before the cosignature is returned, under a lock per origin, so two concurrent
requests can never roll the state back. A lock file keeps a second witness process off the same directory.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from exchange.audit._files import write_atomically
from exchange.audit.errors import AuditError
from exchange.crypto.checkpoint import MAX_TREE_SIZE, Checkpoint, parse_checkpoint
from exchange.crypto.cosignature import MAX_TIMESTAMP, Cosignature, Cosigner
from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.errors import (
    InvalidSignatureError,
    MalformedCheckpointError,
    MalformedNoteError,
    MerkleError,
    UnverifiedNoteError,
)
from exchange.crypto.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from exchange.crypto.note import Verifier, VerifierSet, open_note

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "AddCheckpointRequest",
    "ConflictError",
    "InconsistentCheckpointError",
    "LogSignatureError",
    "MalformedRequestError",
    "RequestTooLargeError",
    "UnknownLogError",
    "Witness",
    "WitnessError",
    "WitnessStateError",
    "WitnessedCheckpoint",
    "format_add_checkpoint",
    "origin_hash",
    "parse_add_checkpoint",
]

MAX_PROOF_LINES = 63
"""The most consistency proof lines a request may carry (tlog-witness)."""

MAX_REQUEST_BYTES = 64 * 1024
"""The largest request body: 63 proof lines and a checkpoint with 100 signatures need less than 20 KiB."""

_OLD_LINE = re.compile(rb"old (0|[1-9][0-9]{0,19})", re.ASCII)


class WitnessError(AuditError):
    """A checkpoint the witness does not cosign; ``status`` is the HTTP status tlog-witness answers with."""

    status: ClassVar[int] = 500


class MalformedRequestError(WitnessError):
    """The request is not ``old``, proof lines, a blank line and a checkpoint note; or ``old`` exceeds its size."""

    status = 400


class LogSignatureError(WitnessError):
    """The checkpoint has no valid signature by a key of its log, or a signature by one of them fails."""

    status = 403


class UnknownLogError(WitnessError):
    """The witness does not know the checkpoint's origin."""

    status = 404


class ConflictError(WitnessError):
    """``old`` is not the size the witness last cosigned for the log; ``size`` is that size."""

    status = 409

    def __init__(self, origin: str, old_size: int, size: int) -> None:
        self.origin = origin
        self.old_size = old_size
        self.size = size
        super().__init__(f"{origin}: old size {old_size} is not the size last cosigned, {size}")


class RequestTooLargeError(WitnessError):
    """The request body exceeds the witness's limit."""

    status = 413


class InconsistentCheckpointError(WitnessError):
    """The checkpoint is validly signed but not shown consistent with the one last cosigned (evidence: ``note``)."""

    status = 422

    def __init__(self, message: str, note: bytes) -> None:
        self.note = note
        super().__init__(message)


class WitnessStateError(WitnessError):
    """The witness's state cannot be read, written or locked: it cosigns nothing until that is fixed."""

    status = 500


@dataclass(frozen=True, slots=True)
class AddCheckpointRequest:
    """A parsed ``add-checkpoint`` body: old size, consistency proof and the signed checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    """The checkpoint last cosigned for a log: size, root, cosignature timestamp and the cosigned note."""

    origin: str
    size: int
    root_hash: bytes
    timestamp: int
    note: str


def origin_hash(origin: str) -> str:
    """Lower-case hex SHA-256 of an origin: its state file's name and its path in the monitoring API."""
    return hashlib.sha256(origin.encode()).hexdigest()


def parse_add_checkpoint(body: bytes, *, max_bytes: int = MAX_REQUEST_BYTES) -> AddCheckpointRequest:
    """Parse an ``add-checkpoint`` body; raises :class:`MalformedRequestError` or :class:`RequestTooLargeError`."""
    if len(body) > max_bytes:
        raise RequestTooLargeError(f"request body has {len(body)} bytes, more than {max_bytes}")
    head, sep, rest = body.partition(b"\n")
    match = _OLD_LINE.fullmatch(head)
    if not sep or match is None:
        raise MalformedRequestError("the request must start with 'old <size>' and a newline")
    old_size = int(match.group(1))
    if old_size > MAX_TREE_SIZE:
        raise MalformedRequestError(f"old size {old_size} exceeds 2^64-1")
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition(b"\n")
        if not sep:
            raise MalformedRequestError("the proof lines must end with an empty line before the checkpoint")
        if not line:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise MalformedRequestError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            hash_ = b64decode_strict(line)
        except (binascii.Error, ValueError):
            raise MalformedRequestError(f"consistency proof line {len(proof) + 1} is not base64") from None
        if len(hash_) != HASH_SIZE:
            raise MalformedRequestError(f"consistency proof line {len(proof) + 1} is not a {HASH_SIZE}-byte hash")
        proof.append(hash_)
    if not rest:
        raise MalformedRequestError("the request has no checkpoint after the blank line")
    return AddCheckpointRequest(old_size, tuple(proof), rest)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str | bytes) -> bytes:
    """An ``add-checkpoint`` body; :class:`ValueError` for a size, proof or note a witness would refuse."""
    if not 0 <= old_size <= MAX_TREE_SIZE:
        raise ValueError(f"old size {old_size} is outside 0..2^64-1")
    if len(proof) > MAX_PROOF_LINES or any(len(h) != HASH_SIZE for h in proof):
        raise ValueError(f"a consistency proof is at most {MAX_PROOF_LINES} hashes of {HASH_SIZE} bytes")
    data = note.encode() if isinstance(note, str) else note
    if not data.endswith(b"\n"):
        raise ValueError("a signed checkpoint note ends with a newline")
    lines = [f"old {old_size}\n".encode(), *(base64.b64encode(h) + b"\n" for h in proof), b"\n"]
    return b"".join(lines) + data


class Witness:
    """Cosigns checkpoints of the configured logs; thread-safe, one lock per origin.

    ``logs`` maps each origin to the verifier keys of its log (several during a key rotation). ``clock`` gives
    POSIX seconds. Use as a context manager, or call :meth:`close` to release the state directory.
    """

    def __init__(
        self,
        cosigner: Cosigner,
        logs: Mapping[str, Iterable[Verifier]],
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.cosigner = cosigner
        self.max_request_bytes = max_request_bytes
        self._clock = clock
        self._logs: dict[str, VerifierSet] = {}
        for origin, keys in logs.items():
            Checkpoint(origin, 0, EMPTY_ROOT)  # the origin must be a valid checkpoint origin line
            key_list = list(keys)
            if not key_list:
                raise ValueError(f"log {origin!r} has no verifier key")
            self._logs[origin] = VerifierSet(key_list)
        if not self._logs:
            raise ValueError("a witness needs at least one log")
        self._by_hash = {origin_hash(origin): origin for origin in self._logs}
        self._locks = {origin: threading.Lock() for origin in self._logs}
        self._dir = state_dir
        self._lock_fd = _lock_directory(state_dir)
        try:
            self._heads = {origin: self._load(origin) for origin in self._logs}
        except BaseException:
            self.close()
            raise

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins of the logs this witness cosigns."""
        return tuple(self._logs)

    def latest(self, origin: str) -> WitnessedCheckpoint | None:
        """The checkpoint last cosigned for ``origin`` (None if none yet); :class:`UnknownLogError` if unknown."""
        if origin not in self._logs:
            raise UnknownLogError(f"unknown log {origin!r}")
        return self._heads[origin]

    def latest_by_hash(self, hex_hash: str) -> WitnessedCheckpoint | None:
        """As :meth:`latest`, by the hex SHA-256 of the origin (the monitoring API's path); None if unknown."""
        origin = self._by_hash.get(hex_hash)
        return None if origin is None else self._heads[origin]

    def handle(self, body: bytes) -> list[str]:
        """Parse an ``add-checkpoint`` body and answer it: the cosignature lines, or a :class:`WitnessError`."""
        return self.add_checkpoint(parse_add_checkpoint(body, max_bytes=self.max_request_bytes))

    def add_checkpoint(self, request: AddCheckpointRequest) -> list[str]:
        """Cosign ``request.note`` if it extends the last checkpoint cosigned for its log; the signature lines."""
        origin_line, sep, _ = request.note.partition(b"\n")
        try:
            origin = origin_line.decode()
        except UnicodeDecodeError:
            raise MalformedRequestError("the checkpoint's origin line is not UTF-8") from None
        if not sep:
            raise MalformedRequestError("the checkpoint note has no origin line")
        keys = self._logs.get(origin)
        if keys is None:
            raise UnknownLogError(f"unknown log {origin!r}")
        try:
            opened = open_note(request.note, keys)  # signatures by unknown keys are ignored, as the spec says
            checkpoint = parse_checkpoint(opened.text)
        except (InvalidSignatureError, UnverifiedNoteError) as exc:
            raise LogSignatureError(f"{origin}: {exc}") from exc
        except (MalformedNoteError, MalformedCheckpointError) as exc:
            raise MalformedRequestError(f"{origin}: {exc}") from exc
        if request.old_size > checkpoint.size:
            raise MalformedRequestError(f"{origin}: old size {request.old_size} exceeds the size {checkpoint.size}")
        with self._locks[origin]:
            last = self._heads[origin]
            self._check(origin, last, request, checkpoint)
            timestamp = min(max(int(self._clock()), 1, last.timestamp if last else 1), MAX_TIMESTAMP)
            cosignature = self.cosigner.cosign(opened.text, timestamp)
            log_lines = "".join(s.line() for s in opened.signatures)
            note = opened.text + "\n" + log_lines + cosignature.line()
            head = WitnessedCheckpoint(origin, checkpoint.size, checkpoint.root_hash, timestamp, note)
            _write_atomic(self._path(origin), note.encode())
            self._heads[origin] = head
        return [cosignature.line()]

    def close(self) -> None:
        """Release the state directory's lock (idempotent)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Witness:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Witness({self.cosigner.name}+{self.cosigner.key_id}, logs={sorted(self._logs)})"

    @staticmethod
    def _check(origin: str, last: WitnessedCheckpoint | None, request: AddCheckpointRequest,
               checkpoint: Checkpoint) -> None:
        size = 0 if last is None else last.size
        if request.old_size != size:
            raise ConflictError(origin, request.old_size, size)
        note = request.note
        if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            raise InconsistentCheckpointError(f"{origin}: a checkpoint of size 0 must have the empty root", note)
        if last is None or size == 0:
            if request.proof:
                raise InconsistentCheckpointError(f"{origin}: the proof from size 0 must be empty", note)
            return
        try:
            verify_consistency(size, checkpoint.size, last.root_hash, checkpoint.root_hash, request.proof)
        except MerkleError as exc:
            raise InconsistentCheckpointError(f"{origin}: not consistent with size {size}: {exc}", note) from exc

    def _path(self, origin: str) -> Path:
        return self._dir / f"{origin_hash(origin)}.checkpoint"

    def _load(self, origin: str) -> WitnessedCheckpoint | None:
        path = self._path(origin)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise WitnessStateError(f"{path}: cannot read the witness state: {exc.strerror}") from exc
        try:
            note = data.decode()
            split = note.rfind("\n\n")
            checkpoint = parse_checkpoint(note[: split + 1]) if split > 0 else None
        except (UnicodeDecodeError, MalformedCheckpointError):
            checkpoint = None
        if checkpoint is None or checkpoint.origin != origin:
            raise WitnessStateError(f"{path}: not a checkpoint of {origin!r}; refusing to cosign from it")
        # The state is the witness's own record: the log's signature is not checked again (its key may have
        # rotated since); the witness's cosignature gives the timestamp, which never goes back.
        timestamp = 0
        try:
            opened = open_note(note, [self.cosigner.verifier()])
            timestamp = Cosignature.from_note_signature(opened.signatures[0]).timestamp
        except UnverifiedNoteError:
            pass  # cosigned with an earlier key of this witness
        except (InvalidSignatureError, MalformedNoteError) as exc:
            raise WitnessStateError(f"{path}: the witness's cosignature does not verify: {exc}") from exc
        return WitnessedCheckpoint(origin, checkpoint.size, checkpoint.root_hash, timestamp, note)


def _lock_directory(state_dir: Path) -> int | None:
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(state_dir / ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise WitnessStateError(f"{state_dir}: cannot open the witness state: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise WitnessStateError(f"{state_dir}: another witness holds this state directory") from None
    return fd


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        write_atomically(path, data)
    except OSError as exc:
        raise WitnessStateError(f"{path}: cannot record the cosigned checkpoint: {exc.strerror}") from exc
