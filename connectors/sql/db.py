"""One database connection for the SQL connectors, on PostgreSQL (psycopg 3) or SQLite (the standard library).

Both are used the same way: the connection is in autocommit mode and every unit of work is an explicit
:meth:`Database.transaction`; statements name their parameters ``:name`` (translated to psycopg's ``%(name)s``).
A failure that passes — the server unreachable or restarting, a serialization failure or deadlock, SQLite's
``database is locked`` — becomes :class:`~connectors.sdk.Retryable` and the connection is dropped, so the next
call connects again. A constraint violation or a value the column refuses is :class:`ConstraintError`; anything
else (a missing table, a syntax error) propagates as the driver raised it.

URLs: ``postgresql://user@host:port/db`` (or ``postgres://``, any libpq URI; prefer ``PGPASSWORD`` or
``~/.pgpass`` to a password in the URL) and ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from connectors.sdk.api import Retryable
from exchange.errors import ConfigError, ExchangeError

if TYPE_CHECKING:
    import psycopg

__all__ = ["ConstraintError", "Database", "Dialect", "Target", "parse_url", "quote_table"]

Dialect = Literal["postgresql", "sqlite"]

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# SQLite's primary result codes that pass: BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL.
_SQLITE_PASSING = frozenset({5, 6, 7, 10, 13, 14, 15})


class ConstraintError(ExchangeError):
    """The database refused a row: a constraint it violates or a value its column cannot hold."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a database is: its dialect and what its driver connects with (a libpq URI, or a file path)."""

    dialect: Dialect
    dsn: str

    def describe(self) -> str:
        """The target without credentials, for logs and errors."""
        if self.dialect == "sqlite":
            return f"sqlite {self.dsn}"
        parts = urlsplit(self.dsn)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql {host}{port}{parts.path or '/'}"


def parse_url(url: str) -> Target:
    """The :class:`Target` of ``url``; :class:`~exchange.errors.ConfigError` for anything else."""
    if url.startswith(("postgresql://", "postgres://")):
        return Target("postgresql", url)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if not path or path == ":memory:" or "?" in path:
            raise ConfigError("a sqlite URL names a database file: sqlite:///relative.db or sqlite:////abs/path.db")
        return Target("sqlite", path)
    raise ConfigError("the database URL must start with postgresql:// (or postgres://) or sqlite:///")


def quote_table(name: str) -> str:
    """``name`` (``table`` or ``schema.table``) as a quoted SQL identifier; ConfigError if it is not one."""
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ConfigError(f"{name!r} is not a table name (letters, digits and _, optionally schema.table)")
    return ".".join(f'"{p}"' for p in parts)


def quote_column(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{name!r} cannot be a column name")
    return f'"{name}"'


class Database:
    """A connection to ``target``, opened on first use and again after a passing failure."""

    def __init__(self, target: Target, *, connect_timeout_s: float = 10.0) -> None:
        self.target = target
        self.dialect: Dialect = target.dialect
        self._timeout = connect_timeout_s
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lite: sqlite3.Connection | None = None
        self._depth = 0
        self._broken = False

    # -- statements -----------------------------------------------------------------------------------------

    def sql(self, statement: str) -> str:
        """``statement`` in the driver's parameter style."""
        return _PARAM.sub(r"%(\1)s", statement) if self.dialect == "postgresql" else statement

    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returns (none for a statement without a result)."""
        with self._errors():
            if self.dialect == "postgresql":
                cursor = self._postgres().execute(self.sql(statement), params or {})
                return cursor.fetchall() if cursor.description is not None else []
            lite = self._sqlite().execute(statement, params or {})
            return lite.fetchall()

    def executemany(self, statement: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement once per parameter mapping in ``rows``."""
        if not rows:
            return
        with self._errors():
            if self.dialect == "postgresql":
                with self._postgres().cursor() as cursor:
                    cursor.executemany(self.sql(statement), rows)
            else:
                self._sqlite().executemany(statement, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One database transaction: committed if the block ends normally, rolled back if it raises.

        On SQLite it is ``BEGIN IMMEDIATE``: the write lock is taken at the start, so two writers queue (up to the
        busy timeout) instead of failing at their first write."""
        if self._depth:
            raise RuntimeError("transactions do not nest")
        self._depth = 1
        try:
            with self._errors():
                if self.dialect == "postgresql":
                    with self._postgres().transaction():
                        yield
                    return
                lite = self._sqlite()
                lite.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    lite.execute("COMMIT")
                except BaseException:
                    if lite.in_transaction:
                        lite.execute("ROLLBACK")
                    raise
        finally:
            self._depth = 0
            if self._broken:
                self.close()

    def close(self) -> None:
        self._broken = False
        pg, lite, self._pg, self._lite = self._pg, self._lite, None, None
        if pg is not None:
            pg.close()
        if lite is not None:
            lite.close()

    # -- connections and errors -----------------------------------------------------------------------------

    def _postgres(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._pg is None or self._pg.closed:
            import psycopg  # noqa: PLC0415 - optional: only a PostgreSQL target needs the `sql` extra

            self._pg = psycopg.connect(self.target.dsn, autocommit=True, connect_timeout=max(1, int(self._timeout)))
        return self._pg

    def _sqlite(self) -> sqlite3.Connection:
        if self._lite is None:
            path = Path(self.target.dsn)
            if not path.parent.is_dir():
                raise ConfigError(f"{self.target.describe()}: the directory {path.parent} does not exist")
            self._lite = sqlite3.connect(path, timeout=self._timeout, isolation_level=None)
        return self._lite

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._classify_sqlite(exc) from exc
        except Exception as exc:
            mapped = self._classify_postgres(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def _classify_sqlite(self, exc: sqlite3.Error) -> Exception:
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
            return ConstraintError(str(exc))
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in _SQLITE_PASSING:
            self._drop()
            return Retryable(f"{self.target.describe()}: {exc}")
        return exc

    def _classify_postgres(self, exc: Exception) -> Exception | None:
        if self.dialect != "postgresql":
            return None
        import psycopg  # noqa: PLC0415 - as above

        if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
            return ConstraintError(str(exc).strip())
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            self._drop()
            return Retryable(f"{self.target.describe()}: {str(exc).strip() or type(exc).__name__}")
        return None

    def _drop(self) -> None:
        """Connect again next time: now, or when the open transaction has unwound."""
        if self._depth:
            self._broken = True
        else:
            self.close()
