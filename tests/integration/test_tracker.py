"""The data tracker on the real broker, on SQLite and on a real PostgreSQL server: decisions routed, sequenced
into audit.log with tiles, indexed by `exchange tracker index` (killed with SIGKILL halfway and restarted,
rebuilt, indexed afresh: the same rows every time), then served by `exchange tracker serve`: the citizen's rows
are exactly the PERMIT decisions about them in the log, hidden ones excepted until their time; an operator's
`exchange tracker show` is itself logged, listed to the citizen, and `exchange audit verify` accepts it."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from exchange.audit import read_log_entries
from exchange.audit.proof import check_proof
from exchange.router import RouterConfig, RouterThread, build_router
from exchange.runner import ServiceThread
from exchange.schemas.samples import sample_person_id
from exchange.settings import Settings
from exchange.tracker.indexer import Indexer
from exchange.tracker.store import StoreError, TrackerStore
from exchange.tracker.tokens import load_issuer_signing_key, mint_token
from tests.integration.postgres import Db, postgres_server  # noqa: F401 - a fixture, asked for by name
from tests.integration.router_world import World
from tests.integration.sequencing import sequence

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
TYPES = {"population.person-registered": "population-registry", "tax.income-assessed": "tax-board",
         "population.address-changed": "population-registry"}
HIDING = "pbb-address-changed-law-enforcement"


def _run(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([EXCHANGE, *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _route(world: World, persons: list[str], per_type: int) -> int:
    rng = random.Random(5)
    published = 0
    for record_type, agency in TYPES.items():
        records = world.records(record_type, per_type, seed=len(record_type))
        for record in records:
            record["person_id"] = rng.choice(persons)
        published += len(world.publish(agency, record_type, records))
    router = RouterThread(build_router(RouterConfig(router_id="tracker-router", group_id="tracker-routers"),
                                       world.settings))
    try:
        router.wait_events(published)
    finally:
        router.stop()
    return router.router.stats.audit_entries


@dataclass
class Index:
    """One tracker database, as the commands are pointed at it and as the test reads it (its driver directly)."""

    env: dict[str, str]
    db: Db

    def open(self, kind: type[TrackerStore] = TrackerStore) -> TrackerStore:
        url = self.env.get("EXCHANGE_TRACKER_DATABASE_URL")
        return kind.open(url, Path(self.env.get("EXCHANGE_TRACKER_DATABASE", "unused")))

    def tables(self) -> tuple[list[Any], ...]:
        return tuple(self.db.query(f"SELECT * FROM {t} ORDER BY log_index")  # noqa: S608 - fixed names
                     for t in ("tracker_entries", "tracker_rows", "tracker_hidden"))

    def position(self) -> int | None:
        try:
            found = self.db.query("SELECT value FROM tracker_state WHERE name = 'next_index'")
        except Exception:  # noqa: BLE001 - sqlite3 or psycopg: the table is not created yet
            return None
        return int(found[0][0]) if found else None


class FailingTwice(TrackerStore):
    """A database that fails two writes midway (a full disk, a lost connection)."""

    failures = 2

    def add(self, rows: Any, after: Any, *, now: int | None = None) -> None:
        if rows and self.failures and after.next_index > 300:
            self.failures -= 1
            raise StoreError("the disk is full")
        super().add(rows, after, now=now)


@pytest.fixture(params=["sqlite", "postgresql"])
def indexes(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Index, Index]:
    """Two empty tracker databases of one kind."""
    if request.param == "sqlite":
        return tuple(Index({"EXCHANGE_TRACKER_DATABASE": str(tmp_path / f"{n}.sqlite")},  # type: ignore[return-value]
                           Db(f"sqlite:///{tmp_path / f'{n}.sqlite'}")) for n in ("killed", "fresh"))
    server = request.getfixturevalue("postgres_server")
    urls = [server.create_database() for _ in range(2)]
    return tuple(Index({"EXCHANGE_TRACKER_DATABASE_URL": url}, Db(url)) for url in urls)  # type: ignore[return-value]


def _wait_for_position(index: Index, process: subprocess.Popen[str], above: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        found = index.position()
        if found is not None and found > above:
            return found
        time.sleep(0.01)  # polling the index's committed position, the condition checked above
    raise AssertionError(f"the indexer ended or stalled before passing entry {above}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _expected(settings: Settings, world: World, *, hidden_too: bool = False) -> tuple[dict[str, list[int]], int]:
    """From the log itself: each subject's PERMIT entries, newest first (without the hidden ones unless
    ``hidden_too``), and how many are hidden."""
    shown: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    hidden = 0
    for index, value in read_log_entries(settings):
        entry = world.context.catalogue.decode(value)[1]
        if entry["outcome"] != "PERMIT" or entry["subject_ref"] is None:
            continue
        if entry["agreement_id"] == HIDING:
            hidden += 1
            if not hidden_too:
                continue
        shown[entry["subject_ref"].decode()].append((entry["decided_at"], index))
    return {s: [i for _, i in sorted(rows, reverse=True)] for s, rows in shown.items()}, hidden


def _rows(store: TrackerStore, subject: str, count: int) -> list[int]:
    return [r.log_index for offset in range(0, count + 50, 50)
            for r in store.page(subject, offset=offset, limit=50).rows]


def test_the_tracker_lists_exactly_the_permits_of_the_log(bootstrap: str, tmp_path: Path,
                                                          indexes: tuple[Index, Index]) -> None:
    world = World.create(bootstrap, tmp_path)
    settings = world.settings.model_copy(update={"audit_state_dir": tmp_path / "audit-state"})
    rng = random.Random(11)
    persons = [sample_person_id(rng) for _ in range(6)]
    decisions = _route(world, persons, per_type=120)
    tiles = tmp_path / "tiles"
    log_key = sequence(settings, world.context.keystore, decisions, every=200, tiles=tiles)
    env = {**world.env(), "EXCHANGE_AUDIT_STATE_DIR": str(tmp_path / "audit-state"),
           "EXCHANGE_AUDIT_TILES_DIR": str(tiles)}
    expected, hidden = _expected(settings, world)
    assert hidden > 0

    # Killed halfway, then restarted: the rows of an index made in one go.
    killed, fresh = indexes
    process = subprocess.Popen([EXCHANGE, "tracker", "index", "--batch", "1"], env={**os.environ, **env, **killed.env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    at = _wait_for_position(killed, process, decisions // 4)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert at < decisions, "the indexer finished before it could be killed"
    resumed = json.loads(_run({**env, **killed.env}, "tracker", "index").stdout)
    assert resumed["next_index"] == decisions
    assert resumed["indexed"] <= decisions - at + 1
    made = json.loads(_run({**env, **fresh.env}, "tracker", "index").stdout)
    assert made["entries"] == decisions
    assert made["hidden"] == hidden
    assert killed.tables() == fresh.tables()
    _run({**env, **fresh.env}, "tracker", "index", "--rebuild")
    assert killed.tables() == fresh.tables()

    with fresh.open() as store:
        for subject, indices in expected.items():
            assert _rows(store, subject, len(indices)) == indices

    # A database failing twice midway is waited out: the index that results is the same.
    with killed.open() as store:
        store.reset()
    with killed.open(FailingTwice) as store:
        following = ServiceThread(Indexer(store, settings, world.context.registry, world.context.catalogue,
                                          batch=50), "tracker-indexer")
        try:
            following.wait_for(lambda i: i.stats.indexed >= decisions and i.stats.next_index == decisions,
                               timeout=120)
        finally:
            following.stop()
        assert store.failures == 0  # type: ignore[attr-defined]
    assert killed.tables() == fresh.tables()

    # Hidden rows appear at their time: 180 days after each decision, not a microsecond before.
    everything, _ = _expected(settings, world, hidden_too=True)
    with killed.open() as store:
        due = sorted(v for (v,) in killed.db.query("SELECT visible_from FROM tracker_hidden"))
        assert len(due) == hidden
        assert store.release(now=due[0] - 1) == 0
        assert store.release(now=due[-1]) == hidden
        for subject, indices in everything.items():
            assert _rows(store, subject, len(indices)) == indices

    # Served: a citizen's API answer is their rows, with proofs that check against the log's key.
    person = persons[0]
    subject = world.context.pseudonymiser.subject(person)
    token = _run(env, "tracker", "token", "--person", person).stdout.strip()
    jwk = Path(world.settings.keystore) / "tracker-issuer.jwt-issuer.jwk.json"
    serving = {**env, **fresh.env, "EXCHANGE_TRACKER_ISSUER_KEY": str(jwk)}
    port = _free_port()
    server = subprocess.Popen([EXCHANGE, "tracker", "serve", "--port", str(port), "--no-index"],
                              env={**os.environ, **serving}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = httpx2.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
    try:
        _wait_until_serving(client, server)
        answers = [client.get("/api/v1/usages", params={"limit": 50, "offset": offset}).json()
                   for offset in range(0, len(expected[subject]) + 50, 50)]
        assert {a["total"] for a in answers} == {len(expected[subject])}
        assert [i["log_index"] for a in answers for i in a["items"]] == expected[subject]
        newest = answers[0]["items"][0]
        proof = client.get(newest["proof"])
        entry = client.get(newest["entry"])
        checked = check_proof(proof.text, entry.content, [log_key], [], origin=settings.audit_origin)
        assert checked.index == newest["log_index"]
        other = world.context.pseudonymiser.subject(persons[1])
        assert client.get(f"/api/v1/subjects/{other}/usages").status_code == 403
        issuer = load_issuer_signing_key(world.settings.keystore)
        forged = {"bad signature": token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
                  "expired": mint_token(issuer, "https://id.exchange.local", person, "exchange-tracker", 60,
                                        now=time.time() - 3600),
                  "wrong issuer": mint_token(issuer, "https://id.elsewhere", person, "exchange-tracker", 600)}
        for why, bad in forged.items():
            refused = httpx2.get(f"http://127.0.0.1:{port}/api/v1/usages", headers={"Authorization": f"Bearer {bad}"})
            assert refused.status_code == 401, why
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
        client.close()
    assert server.returncode == 0, err[-2000:]
    assert person not in out + err

    # An operator's lookup is an access of its own: logged, verified, listed to the citizen.
    shown = json.loads(_run(env | fresh.env, "tracker", "show", "--person", person,
                            "--operator", "population-registry", "--basis", "GDPR Art. 15, request 2026/117",
                            "--json").stdout)
    assert shown["subject_ref"] == subject
    assert len(shown["entries"]) == sum(1 for i, v in read_log_entries(settings)
                                        if world.context.catalogue.decode(v)[1]["subject_ref"] == subject.encode())
    sequence(settings, world.context.keystore, decisions + 1, every=200, tiles=tiles)
    _run({**env, **fresh.env}, "tracker", "index")
    with fresh.open() as store:
        newest_row = store.page(subject, limit=1).rows[0]
    assert (newest_row.log_index, newest_row.purpose, newest_row.recipient) == (
        decisions, "subject-access-request", "population-registry")
    verified = json.loads(_run(env, "audit", "verify", "--json").stdout)
    assert verified["ok"], verified
    assert verified["entries"] == decisions + 1


def _wait_until_serving(client: httpx2.Client, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the tracker exited: {server.stderr.read() if server.stderr else ''}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx2.TransportError:
            pass  # not listening yet
        time.sleep(0.05)  # polling the server's readiness, the condition checked above
    raise AssertionError("the tracker did not answer within 60s")
