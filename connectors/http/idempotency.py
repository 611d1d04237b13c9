"""Idempotency-Key answers in SQLite: a retried POST gets the first answer, and no second event.

One row per agency and key (the key's SHA-256: a client may put anything in a key, so it is not stored). A
request *claims* its key by inserting the row as ``pending`` in one ``BEGIN IMMEDIATE`` transaction, so of two
concurrent requests with one key exactly one goes on to publish; the other learns the key is in progress. The
owner then *completes* the row with its answer (kept ``ttl_s`` seconds) or *releases* it (the record was refused
or not delivered: a retry may publish). A pending row whose owner vanished (the process died) may be claimed
again after ``pending_lease_s``.

The file is written with ``synchronous=FULL``: an answer given is not forgotten by a power cut.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exchange.errors import ConfigError

__all__ = ["Claimed", "Conflict", "IdempotencyStore", "InProgress", "Outcome", "Replay"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    agency      TEXT    NOT NULL,
    key_sha256  TEXT    NOT NULL,
    record_type TEXT    NOT NULL,
    body_sha256 TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    token       TEXT    NOT NULL,
    status      INTEGER,
    answer      TEXT,
    expires_at  REAL    NOT NULL,
    PRIMARY KEY (agency, key_sha256)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS answers_expiry ON answers (expires_at);
"""
_VERSION = 1
_PURGE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Claimed:
    """The key is this request's: publish, then :meth:`IdempotencyStore.complete` or ``release`` with ``token``."""

    token: str


@dataclass(frozen=True, slots=True)
class Replay:
    """The key was answered before, for the same request: give that answer again."""

    status: int
    answer: str


@dataclass(frozen=True, slots=True)
class InProgress:
    """Another request with this key and body is being published; its outcome is not known yet."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """The key was used for a different request (``reason`` says how; it names no value)."""

    reason: str


Outcome = Claimed | Replay | InProgress | Conflict


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class IdempotencyStore:
    """The answers of one SQLite file; safe to call from several threads (one connection behind a lock)."""

    def __init__(self, path: Path, *, ttl_s: float, pending_lease_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self.pending_lease_s = pending_lease_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_purge = 0.0
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _VERSION):
                raise ConfigError(f"{path}: idempotency store version {version}; this connector reads {_VERSION}")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{path}: cannot open the idempotency store: {exc}") from exc

    def claim(self, agency: str, key: str, record_type: str, body_sha256: str) -> Outcome:
        """Take ``key`` for this request, or say what became of it (see the module doc)."""
        key_sha = _digest(key)
        with self._lock:
            now = self._clock()
            self._purge(now)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT record_type, body_sha256, state, status, answer, expires_at FROM answers "
                    "WHERE agency = ? AND key_sha256 = ?", (agency, key_sha)).fetchone()
                outcome = self._judge(row, now, record_type, body_sha256)
                if isinstance(outcome, Claimed):
                    self._db.execute(
                        "INSERT OR REPLACE INTO answers (agency, key_sha256, record_type, body_sha256, state, token, "
                        "expires_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                        (agency, key_sha, record_type, body_sha256, outcome.token, now + self.pending_lease_s))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return outcome

    @staticmethod
    def _judge(row: tuple[str, str, str, int | None, str | None, float] | None, now: float, record_type: str,
               body_sha256: str) -> Outcome:
        if row is None or row[5] <= now:
            return Claimed(secrets.token_hex(16))
        stored_type, stored_body, state, status, answer, _ = row
        if stored_type != record_type:
            return Conflict("the Idempotency-Key was used for another record type")
        if stored_body != body_sha256:
            return Conflict("the Idempotency-Key was used with a different request body")
        if state == "pending" or status is None or answer is None:
            return InProgress()
        return Replay(status, answer)

    def complete(self, agency: str, key: str, token: str, status: int, answer: str) -> bool:
        """Record the answer of the claim ``token``; False if the claim was lost (its lease ran out and another
        request took the key)."""
        with self._lock:
            now = self._clock()
            cursor = self._db.execute(
                "UPDATE answers SET state = 'done', status = ?, answer = ?, expires_at = ? "
                "WHERE agency = ? AND key_sha256 = ? AND token = ? AND state = 'pending'",
                (status, answer, now + self.ttl_s, agency, _digest(key), token))
            return cursor.rowcount == 1

    def release(self, agency: str, key: str, token: str) -> None:
        """Give the key back (nothing was published, or it was not delivered): a retry may publish."""
        with self._lock:
            self._db.execute("DELETE FROM answers WHERE agency = ? AND key_sha256 = ? AND token = ? "
                             "AND state = 'pending'", (agency, _digest(key), token))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _purge(self, now: float) -> None:
        if now - self._last_purge >= _PURGE_EVERY_S:
            self._db.execute("DELETE FROM answers WHERE expires_at <= ?", (now,))
            self._last_purge = now
