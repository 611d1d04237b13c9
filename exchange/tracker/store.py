"""The tracker's index: every access-log entry about a subject, in a real database.

SQLite (one file, the default) or PostgreSQL (a ``postgresql://`` URL, with ``psycopg`` installed). Four tables:

``tracker_entries``
    every entry the indexer has read, by log index: PERMIT, DENY and REJECT, for auditors and operators;
``tracker_rows``
    what a citizen's page lists: the PERMIT entries about a subject whose time to be shown has come;
``tracker_hidden``
    the PERMIT entries of an agreement with ``notify_subject_after`` whose time has not come yet;
``tracker_state``
    how far the index has read (the next log index and the ``audit.log`` offset after it).

A citizen's query reads ``tracker_rows`` only, so a hidden row costs it nothing that could be counted or timed.
:meth:`TrackerStore.release` moves the rows whose time has come into it, in one transaction, before a query
that needs it. Every write is keyed by log index and inserts only what is not there yet, so indexing the same
entries twice gives the same rows; a batch and the position after it commit together, so a crash leaves the
index at a batch boundary. Times are integer microseconds since the epoch, UTC.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from exchange.errors import ConfigError, ExchangeError

__all__ = ["MIGRATIONS", "AccessRow", "Page", "Position", "StoreError", "TrackerStore"]

MAX_LIMIT = 200
"""The most rows one page may ask for."""


class StoreError(ExchangeError):
    """The tracker's database cannot be opened, migrated or used."""


@dataclass(frozen=True, slots=True)
class AccessRow:
    """One indexed access-log entry."""

    log_index: int
    subject_ref: str | None
    decided_at: int
    """Microseconds since the epoch (UTC)."""
    recipient: str | None
    recipient_name: str | None
    record_type: str | None
    event_id: str | None
    agreement_id: str | None
    purpose: str | None
    legal_basis: str | None
    consent_ref: str | None
    outcome: str
    fields: tuple[str, ...]
    reasons: tuple[str, ...]
    visible_from: int
    """When the subject may see it (microseconds); ``decided_at`` unless the agreement hides it for a while."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where the index stands: the next log index to read, and the ``audit.log`` offset to read it from."""

    next_index: int = 0
    next_offset: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    rows: tuple[AccessRow, ...]


# Each migration is a list of statements in the SQL both databases speak; the version is its place + 1.
# {INDEX_KEY} is a log index as the primary key: a 64-bit integer, which on SQLite is the table's rowid itself
# (INTEGER PRIMARY KEY), not a second index beside it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE tracker_entries (
            log_index {INDEX_KEY},
            subject_ref TEXT,
            decided_at BIGINT NOT NULL,
            recipient TEXT,
            recipient_name TEXT,
            record_type TEXT,
            event_id TEXT,
            agreement_id TEXT,
            purpose TEXT,
            legal_basis TEXT,
            consent_ref TEXT,
            outcome TEXT NOT NULL,
            fields TEXT NOT NULL,
            reasons TEXT NOT NULL,
            visible_from BIGINT NOT NULL
        )""",
        "CREATE INDEX tracker_entries_subject ON tracker_entries (subject_ref, log_index)",
        """CREATE TABLE tracker_rows (
            log_index {INDEX_KEY},
            subject_ref TEXT NOT NULL,
            decided_at BIGINT NOT NULL,
            recipient TEXT NOT NULL
        )""",
        "CREATE INDEX tracker_rows_page ON tracker_rows (subject_ref, decided_at, log_index)",
        "CREATE TABLE tracker_hidden (log_index {INDEX_KEY}, visible_from BIGINT NOT NULL)",
        "CREATE INDEX tracker_hidden_due ON tracker_hidden (visible_from)",
        "CREATE TABLE tracker_state (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    ),
)

_COLUMNS = ("log_index", "subject_ref", "decided_at", "recipient", "recipient_name", "record_type", "event_id",
            "agreement_id", "purpose", "legal_basis", "consent_ref", "outcome", "fields", "reasons", "visible_from")

_ENTRY_COLUMNS = ", ".join(f"e.{c}" for c in _COLUMNS)
_INSERT_ENTRY = (f"INSERT INTO tracker_entries ({', '.join(_COLUMNS)}) "  # noqa: S608 - fixed column names
                 f"VALUES ({', '.join('?' * len(_COLUMNS))}) ON CONFLICT (log_index) DO NOTHING")


class _Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


class TrackerStore:
    """The index in SQLite or PostgreSQL; safe to share between threads (one connection, one lock)."""

    def __init__(self, connection: Any, *, postgres: bool, where: str) -> None:
        self._db = connection
        self._pg = postgres
        self.where = where
        self._lock = threading.Lock()
        self._index_key = "BIGINT PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY"

    @classmethod
    def open(cls, url: str | None = None, path: Path | None = None) -> TrackerStore:
        """``url`` (``postgresql://…``) when given, else the SQLite file ``path``; migrated to the newest schema."""
        if url:
            store = cls._postgres(url)
        elif path is not None:
            store = cls._sqlite(path)
        else:
            raise ConfigError("the tracker needs a database: a SQLite path or EXCHANGE_TRACKER_DATABASE_URL")
        store.migrate()
        return store

    @classmethod
    def _sqlite(cls, path: Path) -> TrackerStore:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            # A batch's rows land on pages all over the subject indexes: a cache that holds them (64 MiB) and a
            # checkpoint every 64 MiB of log, not 4, write each page once per many batches instead of once per
            # batch. Durability is as before (synchronous=NORMAL: only a checkpoint syncs).
            db.execute("PRAGMA cache_size=-65536")
            db.execute("PRAGMA wal_autocheckpoint=16384")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the tracker database {path}: {exc}") from exc
        return cls(db, postgres=False, where=str(path))

    @classmethod
    def _postgres(cls, url: str) -> TrackerStore:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("EXCHANGE_TRACKER_DATABASE_URL must be a postgresql:// URL")
        try:
            import psycopg  # noqa: PLC0415 - only a PostgreSQL deployment needs the driver
        except ImportError:
            raise ConfigError("a PostgreSQL tracker database needs psycopg: pip install 'exchange[sql]'") from None
        try:
            db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the tracker database: {_first_line(exc)}") from None
        return cls(db, postgres=True, where="PostgreSQL")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> TrackerStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the schema -------------------------------------------------------------------------------------------

    def version(self) -> int:
        with self._tx() as cur:
            return self._version(cur)

    def migrate(self) -> int:
        """Apply every migration not applied yet, each in its own transaction; the schema version after."""
        with self._tx() as cur:
            cur.execute(self._sql("CREATE TABLE IF NOT EXISTS tracker_migrations "
                                  "(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"))
        for version, statements in enumerate(MIGRATIONS, start=1):
            with self._tx() as cur:
                if self._version(cur) >= version:
                    continue
                for statement in statements:
                    cur.execute(statement.replace("{INDEX_KEY}", self._index_key))
                cur.execute(self._sql("INSERT INTO tracker_migrations (version, applied_at) VALUES (?, ?)"),
                            (version, _now_micros()))
        return self.version()

    def _version(self, cur: _Cursor) -> int:
        cur.execute("SELECT max(version) FROM tracker_migrations")
        found = cur.fetchone()[0]
        if found is not None and found > len(MIGRATIONS):
            raise StoreError(f"the tracker database {self.where} has schema version {found}, newer than this "
                             f"exchange knows ({len(MIGRATIONS)}): upgrade the exchange")
        return int(found or 0)

    # -- writing ----------------------------------------------------------------------------------------------

    def position(self) -> Position:
        with self._tx() as cur:
            cur.execute("SELECT name, value FROM tracker_state")
            found = dict(cur.fetchall())
        return Position(int(found.get("next_index", 0)), int(found.get("next_offset", 0)))

    def add(self, rows: Sequence[AccessRow], after: Position, *, now: int | None = None) -> None:
        """Index ``rows`` and move the position to ``after``, in one transaction; rows already there stay."""
        current = _now_micros() if now is None else now
        entries = [_values(row) for row in rows]
        shown: list[tuple[int, str | None, int, str]] = []
        hidden: list[tuple[int, int]] = []
        for r in rows:
            if r.outcome == "PERMIT" and r.subject_ref is not None and r.recipient is not None:  # for the citizen
                if r.visible_from <= current:
                    shown.append((r.log_index, r.subject_ref, r.decided_at, r.recipient))
                else:
                    hidden.append((r.log_index, r.visible_from))
        with self._tx(write=True) as cur:
            if entries:
                cur.executemany(self._sql(_INSERT_ENTRY), entries)
            if shown:
                cur.executemany(self._sql("INSERT INTO tracker_rows (log_index, subject_ref, decided_at, recipient) "
                                          "VALUES (?, ?, ?, ?) ON CONFLICT (log_index) DO NOTHING"), shown)
            if hidden:
                # A row already released stays released: a re-index must not hide it again.
                cur.executemany(self._sql(
                    "INSERT INTO tracker_hidden (log_index, visible_from) SELECT ?, ? WHERE NOT EXISTS "
                    "(SELECT 1 FROM tracker_rows WHERE log_index = ?) ON CONFLICT (log_index) DO NOTHING"),
                    [(index, due, index) for index, due in hidden])
            self._set_position(cur, after)

    def _set_position(self, cur: _Cursor, after: Position) -> None:
        upsert = self._sql("INSERT INTO tracker_state (name, value) VALUES (?, ?) "
                           "ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        cur.executemany(upsert, [("next_index", after.next_index), ("next_offset", after.next_offset)])

    def reset(self) -> None:
        """Forget everything indexed (a rebuild starts from log index 0)."""
        with self._tx(write=True) as cur:
            for table in ("tracker_rows", "tracker_hidden", "tracker_entries", "tracker_state"):
                cur.execute(f"DELETE FROM {table}")  # noqa: S608 - table names from the fixed list above

    def release(self, now: int | None = None) -> int:
        """Show the hidden rows whose time has come (``visible_from <= now``); how many were released."""
        current = _now_micros() if now is None else now
        with self._tx() as cur:
            cur.execute("SELECT min(visible_from) FROM tracker_hidden")
            due = cur.fetchone()[0]
        if due is None or due > current:
            return 0
        with self._tx(write=True) as cur:
            cur.execute(self._sql(
                "INSERT INTO tracker_rows (log_index, subject_ref, decided_at, recipient) "
                "SELECT e.log_index, e.subject_ref, e.decided_at, COALESCE(e.recipient, '') FROM tracker_hidden h "
                "JOIN tracker_entries e ON e.log_index = h.log_index WHERE h.visible_from <= ? "
                "ON CONFLICT (log_index) DO NOTHING"), (current,))
            cur.execute(self._sql("DELETE FROM tracker_hidden WHERE visible_from <= ?"), (current,))
            return int(cur.rowcount or 0)

    # -- reading ----------------------------------------------------------------------------------------------

    def page(self, subject_ref: str, *, start: int | None = None, end: int | None = None,
             recipient: str | None = None, offset: int = 0, limit: int = 20) -> Page:
        """The subject's shown rows in ``[start, end)``, newest first, from ``offset``: their total and a page.

        Call :meth:`release` first for the page to include what has just become visible."""
        if not 0 <= offset <= 2**31 or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"offset must be 0 or more and limit 1 to {MAX_LIMIT}")
        where, params = self._filter(subject_ref, start, end, recipient)
        with self._tx() as cur:
            cur.execute(self._sql(f"SELECT count(*) FROM tracker_rows r WHERE {where}"), params)  # noqa: S608
            total = int(cur.fetchone()[0])
            # The page's indices first, from the rows' index alone, then only those joined to their entries: a
            # join in the same SELECT would look up every row the offset skips.
            cur.execute(self._sql(
                f"SELECT {_ENTRY_COLUMNS} FROM (SELECT r.log_index, r.decided_at FROM tracker_rows r WHERE {where} "  # noqa: S608 - fixed clauses, bound values
                "ORDER BY r.decided_at DESC, r.log_index DESC LIMIT ? OFFSET ?) p "
                "JOIN tracker_entries e ON e.log_index = p.log_index ORDER BY p.decided_at DESC, p.log_index DESC"),
                (*params, limit, offset))
            rows = tuple(_row(found) for found in cur.fetchall())
        return Page(total, rows)

    def shown(self, log_index: int, subject_ref: str) -> AccessRow | None:
        """The row at ``log_index`` if the subject may see it now (released, theirs), else None."""
        with self._tx() as cur:
            cur.execute(self._sql(f"SELECT {_ENTRY_COLUMNS} FROM tracker_rows r JOIN tracker_entries e "  # noqa: S608
                                  "ON e.log_index = r.log_index WHERE r.log_index = ? AND r.subject_ref = ?"),
                        (log_index, subject_ref))
            found = cur.fetchone()
        return None if found is None else _row(found)

    def owner(self, log_index: int) -> str | None:
        """The subject reference of the entry at ``log_index`` (None: not indexed, or about no subject)."""
        with self._tx() as cur:
            cur.execute(self._sql("SELECT subject_ref FROM tracker_entries WHERE log_index = ?"), (log_index,))
            found = cur.fetchone()
        return None if found is None else found[0]

    def entries(self, subject_ref: str) -> list[AccessRow]:
        """Every indexed entry about the subject, hidden or not, any outcome, in log order (for operators)."""
        with self._tx() as cur:
            cur.execute(self._sql(f"SELECT {', '.join(_COLUMNS)} FROM tracker_entries "  # noqa: S608
                                  "WHERE subject_ref = ? ORDER BY log_index"), (subject_ref,))
            return [_row(found) for found in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        """How many rows each table holds (for status output and tests)."""
        with self._tx() as cur:
            out = {}
            for table in ("tracker_entries", "tracker_rows", "tracker_hidden"):
                cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
                out[table.removeprefix("tracker_")] = int(cur.fetchone()[0])
            return out

    def _filter(self, subject_ref: str, start: int | None, end: int | None,
                recipient: str | None) -> tuple[str, tuple[Any, ...]]:
        clauses, params = ["r.subject_ref = ?"], list[Any]([subject_ref])
        if start is not None:
            clauses.append("r.decided_at >= ?")
            params.append(start)
        if end is not None:
            clauses.append("r.decided_at < ?")
            params.append(end)
        if recipient is not None:
            clauses.append("r.recipient = ?")
            params.append(recipient)
        return " AND ".join(clauses), tuple(params)

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self._pg else text

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[_Cursor]:
        with self._lock:
            try:
                if self._pg:
                    with self._db.transaction(), self._db.cursor() as cur:
                        yield cur
                    return
                cur = self._db.cursor()
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield cur
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"the tracker database {self.where}: {exc}") from exc
            except Exception as exc:
                if self._pg and type(exc).__module__.startswith("psycopg"):
                    raise StoreError(f"the tracker database: {_first_line(exc)}") from exc
                raise


def _values(row: AccessRow) -> tuple[Any, ...]:
    return (row.log_index, row.subject_ref, row.decided_at, row.recipient, row.recipient_name, row.record_type,
            row.event_id, row.agreement_id, row.purpose, row.legal_basis, row.consent_ref, row.outcome,
            _json(row.fields), _json(row.reasons), row.visible_from)


_JSON: dict[tuple[str, ...], str] = {}
"""The JSON of the few lists of field names and reason codes entries hold, made once each."""


def _json(names: tuple[str, ...]) -> str:
    try:
        found = _JSON.get(names)
    except TypeError:  # not a tuple of strings after all: nothing to remember it by
        return json.dumps(list(names))
    if found is None:
        if len(_JSON) >= 4096:
            _JSON.clear()
        found = _JSON[names] = json.dumps(list(names))
    return found


def _row(found: Sequence[Any]) -> AccessRow:
    values = list(found)
    values[12], values[13] = tuple(json.loads(values[12])), tuple(json.loads(values[13]))
    return AccessRow(*values)


def _now_micros() -> int:
    return time.time_ns() // 1000


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
