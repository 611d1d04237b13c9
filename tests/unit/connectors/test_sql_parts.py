"""The SQL connectors' parts without a broker: URLs and names, configs, column types, payloads, offsets, and the
outbox's claim protocol and the sink's upsert on SQLite, driven as the runtimes drive them."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.sdk import BadRecord, ConnectorConfigError, OffsetError, Retryable, SinkRecord, SourceContext
from connectors.sdk.api import offset_bytes
from connectors.sdk.jsonrecord import JsonRecordError, parse_json_object, read_json_record
from connectors.sql import SqlOutboxSourceConfig, SqlSinkConfig, create_outbox, load_source_config, outbox_ddl
from connectors.sql.db import Database, Target, parse_url, quote_table
from connectors.sql.outbox import OutboxPlace, SqlOutboxSource, outbox_offset, parse_outbox_offset
from connectors.sql.schema import column_type
from connectors.sql.sink import SqlSink, released_fields
from exchange.errors import ConfigError
from exchange.policy import PolicySet, load_policies
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record

TYPE = "population.address-changed"
AGENCY = "population-registry"


@pytest.fixture(scope="module")
def policies(repo_root: Path) -> PolicySet:
    return load_policies(repo_root / "policies")


# -- URLs, names, offsets, configs ----------------------------------------------------------------------------


def test_urls_name_a_dialect_and_never_show_a_password() -> None:
    pg = parse_url("postgresql://exchange:s3cret@db.internal:5433/population")
    assert pg == Target("postgresql", "postgresql://exchange:s3cret@db.internal:5433/population")
    assert pg.describe() == "postgresql db.internal:5433/population"
    assert parse_url("postgres://h/db").dialect == "postgresql"
    assert parse_url("sqlite:///data/agency.db") == Target("sqlite", "data/agency.db")
    assert parse_url("sqlite:////var/lib/agency.db") == Target("sqlite", "/var/lib/agency.db")
    for bad in ("mysql://h/db", "sqlite://relative.db", "sqlite:///:memory:", "sqlite:///", "outbox.db"):
        with pytest.raises(ConfigError):
            parse_url(bad)


def test_table_names_are_quoted_identifiers_or_refused() -> None:
    assert quote_table("outbox") == '"outbox"'
    assert quote_table("agency.outbox") == '"agency"."outbox"'
    for bad in ('outbox"; DROP TABLE x; --', "a.b.c", "1outbox", "", "x" * 64):
        with pytest.raises(ConfigError):
            quote_table(bad)


def test_an_outbox_offset_is_small_and_read_back_exactly() -> None:
    place = OutboxPlace("ab" * 16, 100_000, 2**62)
    offset = outbox_offset(place)
    assert len(offset_bytes(offset)) < 100  # whatever the batch size
    assert parse_outbox_offset(offset) == place
    assert parse_outbox_offset(None) is None
    batch = "ab" * 16
    malformed: list[dict[str, str | int]] = [
        {"i": 3}, {"batch": "x", "seq": 1, "id": 1}, {"batch": batch, "seq": 0, "id": 1},
        {"batch": batch, "seq": "1", "id": 1}, {"batch": batch, "seq": 1, "id": 1, "more": 1}]
    for bad in malformed:
        with pytest.raises(OffsetError, match="not an outbox offset"):
            parse_outbox_offset(bad)


def test_source_config_from_yaml_with_errors_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "outbox.yaml"
    path.write_text("name: prc-outbox\nkind: sql-outbox\nagency: population-registry\n"
                    "url: sqlite:///agency.db\ntype_map:\n  Address: population.address-changed\n")
    config = load_source_config(path)
    assert (config.table, config.batch, config.target().dialect) == ("outbox", 100, "sqlite")
    assert config.record_type("Address") == TYPE
    assert config.record_type("Other") is None
    assert SqlOutboxSourceConfig(name="x", agency=AGENCY, url="sqlite:///a.db").record_type("a.b") == "a.b"
    path.write_text("name: prc-outbox\nkind: sql-outbox\nagency: population-registry\n"
                    "url: mysql://h/db\n")
    with pytest.raises(ConnectorConfigError, match=r"outbox.yaml:4: url: .*postgresql://"):
        load_source_config(path)
    path.write_text("name: prc-outbox\nkind: sql-outbox\nagency: population-registry\nurl: sqlite:///a.db\n"
                    "type_map:\n  Address: not-a-type\n")
    with pytest.raises(ConnectorConfigError, match=r":5: type_map: .*not a record type"):
        load_source_config(path)
    path.write_text("name: prc-outbox\nkind: sql-sink\n")
    with pytest.raises(ConnectorConfigError, match="this connector is 'sql-outbox'"):
        load_source_config(path)


def test_sink_config_names_tables_and_refuses_what_cannot_be_one() -> None:
    config = SqlSinkConfig(name="tcb-sql", recipient="tax-board", url="sqlite:///t.db",
                           record_types=(TYPE, "vehicle.vehicle-registered"))
    assert config.table(TYPE) == "exchange_population_address_changed"
    with pytest.raises(ValueError, match="listed twice"):
        SqlSinkConfig(name="s", recipient="tax-board", url="sqlite:///t.db", record_types=(TYPE, TYPE))
    with pytest.raises(ValueError, match="longer than 63"):
        SqlSinkConfig(name="s", recipient="tax-board", url="sqlite:///t.db", record_types=(TYPE,),
                      table_prefix="p" * 40)
    with pytest.raises(ValueError, match="table_prefix"):
        SqlSinkConfig(name="s", recipient="tax-board", url="sqlite:///t.db", record_types=(TYPE,),
                      table_prefix="Bad-Prefix")


# -- column types and payloads --------------------------------------------------------------------------------


@pytest.mark.parametrize(("avro", "postgresql", "sqlite"), [
    ("string", "TEXT", "TEXT"),
    ("int", "INTEGER", "INTEGER"),
    ("long", "BIGINT", "INTEGER"),
    ("float", "REAL", "REAL"),
    ("double", "DOUBLE PRECISION", "REAL"),
    ("boolean", "BOOLEAN", "INTEGER"),
    ("bytes", "BYTEA", "BLOB"),
    ({"type": "fixed", "name": "F", "size": 4}, "BYTEA", "BLOB"),
    ({"type": "enum", "name": "E", "symbols": ["A"]}, "TEXT", "TEXT"),
    ({"type": "int", "logicalType": "date"}, "DATE", "TEXT"),
    ({"type": "long", "logicalType": "timestamp-micros"}, "TIMESTAMPTZ", "TEXT"),
    (["null", {"type": "int", "logicalType": "date"}], "DATE", "TEXT"),
    (["null", "string", "int"], "JSONB", "TEXT"),
    ({"type": "array", "items": "string"}, "JSONB", "TEXT"),
    ({"type": "map", "values": "long"}, "JSONB", "TEXT"),
])
def test_column_types_follow_the_avro_types(avro: Any, postgresql: str, sqlite: str) -> None:
    assert column_type("postgresql", avro, {}) == postgresql
    assert column_type("sqlite", avro, {}) == sqlite


def _json(record: dict[str, Any]) -> str:
    return json.dumps({k: v.isoformat() if isinstance(v, date) else v for k, v in record.items()})


def read_payload(schema: Any, raw: Any) -> dict[str, Any]:
    """A payload column read as the outbox reads it: the connectors' one JSON reading."""
    return read_json_record(schema, parse_json_object(raw))


def test_a_payload_is_read_as_its_record_type(catalogue: Catalogue) -> None:
    schema = catalogue.current(TYPE)
    record = sample_record(TYPE, random.Random(1))
    assert read_payload(schema, _json(record)) == record
    assert read_payload(schema, json.loads(_json(record))) == record  # a JSONB column reads as a dict
    assert read_payload(schema, _json(record).encode()) == record
    del record["dwelling_type"]
    assert read_payload(schema, _json(record))["dwelling_type"] is None  # a field with a default


@pytest.mark.parametrize(("payload", "problem"), [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object but an array"),
    (b"\xff\xfe", "not UTF-8"),
    ('{"person_id": "x"}', "field 'street_address': missing"),
])
def test_a_payload_that_is_not_a_record_is_refused(catalogue: Catalogue, payload: Any, problem: str) -> None:
    with pytest.raises(JsonRecordError, match=problem):
        read_payload(catalogue.current(TYPE), payload)


def test_a_bad_field_is_named_and_its_value_not_repeated(catalogue: Catalogue) -> None:
    record = json.loads(_json(sample_record(TYPE, random.Random(2))))
    for change, problem in (({"moved_on": "31.12.2024"}, "field 'moved_on': expected a date"),
                            ({"moved_on": "2024-02-30"}, "field 'moved_on': not a valid calendar date"),
                            ({"postal_code": 4242424}, "field 'postal_code': expected a string, got a number"),
                            ({"secret_extra": "x"}, "field 'secret_extra': not a field of this record type")):
        with pytest.raises(JsonRecordError, match=problem) as caught:
            read_payload(catalogue.current(TYPE), json.dumps({**record, **change}))
        value = next(iter(change.values()))
        assert value == "x" or str(value) not in str(caught.value)


# -- the outbox on SQLite, driven as the source runtime drives it -----------------------------------------------


class Outbox:
    def __init__(self, tmp: Path, catalogue: Catalogue) -> None:
        self.path, self.catalogue = tmp / "agency.db", catalogue
        self.url = f"sqlite:///{self.path}"
        create_outbox(self.url)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.rng = random.Random(5)

    def insert(self, n: int = 1, payload: str | None = None, aggregatetype: str = TYPE) -> list[int]:
        ids = []
        for _ in range(n):
            body = payload if payload is not None else _json(sample_record(TYPE, self.rng))
            cursor = self.conn.execute("INSERT INTO outbox (aggregatetype, aggregateid, type, payload) "
                                       "VALUES (?, 'a', 'Changed', ?)", (aggregatetype, body))
            ids.append(int(cursor.lastrowid or 0))
        return ids

    def source(self, name: str = "outbox", **config: Any) -> SqlOutboxSource:
        settings = {"batch": 3, "max_batch": 5, "connect_timeout_s": 0.2, **config}
        return SqlOutboxSource(SqlOutboxSourceConfig(name=name, agency=AGENCY, url=self.url, **settings),
                               self.catalogue)

    def dispatched(self) -> list[int]:
        return [i for (i,) in self.conn.execute("SELECT id FROM outbox WHERE dispatched_at IS NOT NULL ORDER BY id")]

    def claimed(self) -> list[tuple[int, str | None]]:
        return list(self.conn.execute("SELECT id, claimed_by FROM outbox WHERE dispatched_at IS NULL ORDER BY id"))


@pytest.fixture
def outbox(tmp_path: Path, catalogue: Catalogue) -> Iterator[Outbox]:
    made = Outbox(tmp_path, catalogue)
    yield made
    made.conn.close()


def _ids(records: list[Any]) -> list[int]:
    return [int(r.offset["id"]) for r in records]


def test_the_ddl_makes_the_documented_table(outbox: Outbox) -> None:
    columns = [row[1] for row in outbox.conn.execute("PRAGMA table_info(outbox)")]
    assert columns == ["id", "aggregatetype", "aggregateid", "type", "payload", "dispatched_at", "claimed_by",
                       "claim_batch", "claim_seq"]
    assert "WHERE dispatched_at IS NULL" in outbox_ddl("postgresql")[1]
    assert "FOR UPDATE" not in " ".join(outbox_ddl("postgresql"))
    create_outbox(outbox.url)  # again: nothing changes


def test_a_batch_spans_selects_up_to_max_batch_and_is_marked_on_acknowledge(outbox: Outbox) -> None:
    ids = outbox.insert(7)
    source = outbox.source()
    first = list(source.poll(None))
    second = list(source.poll(first[-1].offset))  # max_batch 5 reached: the runtime commits now
    assert _ids(first + second) == ids[:5]
    assert [r.offset["seq"] for r in first + second] == [1, 2, 3, 4, 5]
    assert len({r.offset["batch"] for r in first + second}) == 1
    assert outbox.dispatched() == []  # nothing is marked before the commit
    source.acknowledge(second[-1].offset)
    assert outbox.dispatched() == ids[:5]
    rest = list(source.poll(second[-1].offset))
    assert _ids(rest) == ids[5:]
    assert rest[0].offset["seq"] == 1
    assert rest[0].offset["batch"] != first[0].offset["batch"]


def test_a_restart_after_the_commit_marks_the_committed_rows_and_skips_them(outbox: Outbox) -> None:
    ids = outbox.insert(6)
    crashed = outbox.source()
    batch = list(crashed.poll(None))  # committed to Kafka, then the process died before acknowledge
    committed = batch[-1].offset
    restarted = outbox.source()
    again = list(restarted.poll(committed))
    assert _ids(again) == ids[3:]
    assert outbox.dispatched() == ids[:3]


def test_an_aborted_batch_is_polled_again(outbox: Outbox) -> None:
    ids = outbox.insert(4)
    source = outbox.source()
    aborted = list(source.poll(None))  # the Kafka transaction failed: the runtime polls after the committed offset
    again = list(source.poll(None))
    assert _ids(aborted) == _ids(again) == ids[:3]
    assert again[0].offset["batch"] != aborted[0].offset["batch"]
    assert outbox.dispatched() == []


def test_a_claim_goes_on_past_max_batch_while_its_acknowledgement_has_not_come(outbox: Outbox) -> None:
    ids = outbox.insert(8)
    source = outbox.source()
    first = list(source.poll(None))
    first += list(source.poll(first[-1].offset))  # 5 rows: max_batch, committed; its acknowledge comes late
    later = list(source.poll(first[-1].offset))  # the next transaction goes on with the claim
    assert _ids(later) == ids[5:]
    assert [r.offset["seq"] for r in later] == [6, 7, 8]
    assert {r.offset["batch"] for r in first + later} == {first[0].offset["batch"]}
    source.acknowledge(first[-1].offset)  # late: rows of the open transaction stay claimed, unmarked
    assert outbox.dispatched() == ids[:5]
    assert outbox.claimed() == [(i, "outbox") for i in ids[5:]]
    source.acknowledge(later[-1].offset)
    assert outbox.dispatched() == ids


def test_acknowledging_a_prefix_marks_it_and_the_rest_is_published_again(outbox: Outbox) -> None:
    ids = outbox.insert(3)
    source = outbox.source()
    batch = list(source.poll(None))
    source.acknowledge(batch[0].offset)  # errors_tolerance none stopped after the first
    assert outbox.dispatched() == ids[:1]
    assert outbox.claimed() == [(ids[1], "outbox"), (ids[2], "outbox")]  # until the next claim releases them
    again = list(source.poll(batch[0].offset))
    assert _ids(again) == ids[1:]
    assert again[0].offset["batch"] != batch[0].offset["batch"]


def test_a_late_acknowledge_leaves_a_newer_batch_alone(outbox: Outbox) -> None:
    ids = outbox.insert(3)
    source = outbox.source()
    old = list(source.poll(None))
    new = list(source.poll(None))  # the first batch's transaction was aborted: its rows are claimed anew
    source.acknowledge(old[-1].offset)  # an acknowledge for the aborted batch, late
    assert outbox.dispatched() == []
    assert outbox.claimed() == [(i, "outbox") for i in ids]
    source.acknowledge(new[-1].offset)
    assert outbox.dispatched() == ids


def test_a_bad_row_is_a_bad_record_with_its_offset_and_the_batch_goes_on(outbox: Outbox) -> None:
    good = outbox.insert(1)
    (bad,) = outbox.insert(1, payload='{"person_id": 7}')
    (unmapped,) = outbox.insert(1, aggregatetype="Other")
    later = outbox.insert(1)
    source = outbox.source(type_map={TYPE: TYPE})
    polled = source.poll(None)
    assert _ids([next(polled)]) == good
    with pytest.raises(BadRecord) as caught:
        next(polled)
    assert (caught.value.offset or {})["id"] == bad
    assert caught.value.original == b'{"person_id": 7}'
    assert "field 'person_id': expected a string, got a number; field 'street_address': missing" in caught.value.reason
    with pytest.raises(BadRecord, match="aggregatetype 'Other' is not in type_map") as unknown:
        list(source.poll(caught.value.offset))
    assert (unknown.value.offset or {})["id"] == unmapped
    tail = list(source.poll(unknown.value.offset))
    assert _ids(tail) == later
    source.acknowledge(tail[-1].offset)
    assert outbox.dispatched() == [*good, bad, unmapped, *later]  # a dead-lettered row is done too


def test_an_offset_beyond_the_ids_the_table_gave_out_is_refused(outbox: Outbox) -> None:
    ids = outbox.insert(2)
    with pytest.raises(OffsetError, match=r"names outbox row 99, but the ids of outbox reach only 2"):
        list(outbox.source().poll(outbox_offset(OutboxPlace("ab" * 16, 1, 99))))
    outbox.conn.execute("DELETE FROM outbox")  # purged: the counter still knows the ids
    assert list(outbox.source().poll(outbox_offset(OutboxPlace("ab" * 16, 1, ids[-1])))) == []


def test_two_names_settle_only_their_own_claims(outbox: Outbox) -> None:
    ids = outbox.insert(6)
    first, second = outbox.source("first"), outbox.source("second")
    a = list(first.poll(None))
    b = list(second.poll(None))
    assert _ids(a) == ids[:3]
    assert _ids(b) == ids[3:]
    second.acknowledge(b[-1].offset)
    assert outbox.claimed() == [(i, "first") for i in ids[:3]]
    first.acknowledge(a[-1].offset)
    assert outbox.dispatched() == ids


def test_a_locked_database_is_retryable(outbox: Outbox) -> None:
    outbox.insert(1)
    outbox.conn.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(Retryable, match="database is locked"):
            list(outbox.source().poll(None))
    finally:
        outbox.conn.execute("ROLLBACK")


def test_an_unreachable_postgresql_is_retryable() -> None:
    pytest.importorskip("psycopg", reason="the `sql` extra is not installed")
    db = Database(parse_url("postgresql://nobody@127.0.0.1:1/none"), connect_timeout_s=1)
    with pytest.raises(Retryable, match=r"postgresql 127\.0\.0\.1:1/none"):
        db.execute("SELECT 1")


def test_the_context_must_be_the_configured_connector(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="configured as 'outbox'"):
        outbox.source().open(SourceContext("another", AGENCY))


# -- the sink on SQLite -----------------------------------------------------------------------------------------


def _delivery(i: int, **fields: Any) -> SinkRecord:
    values = {"person_id": f"p{i}", "street_address": f"Street {i}", "postal_code": "10115",
              "municipality_code": "0784", "moved_on": date(2025, 1, 1 + i)}
    return SinkRecord(f"event-{i}", "tcb-address-changed-tax", TYPE, {**values, **fields}, f"subject-{i}",
                      datetime(2026, 1, 1, 8, i, tzinfo=UTC), AGENCY)


def _sink(tmp_path: Path, catalogue: Catalogue, policies: PolicySet) -> tuple[SqlSink, sqlite3.Connection]:
    config = SqlSinkConfig(name="tcb-sql", recipient="tax-board", url=f"sqlite:///{tmp_path / 'tcb.db'}",
                           record_types=(TYPE,))
    sink = SqlSink(config, catalogue, policies)
    sink.open(SourceContext("tcb-sql", "tax-board"))
    return sink, sqlite3.connect(tmp_path / "tcb.db")


def test_the_table_has_a_column_per_released_field(tmp_path: Path, catalogue: Catalogue,
                                                   policies: PolicySet) -> None:
    assert released_fields(policies, "tax-board", TYPE) == {"person_id", "street_address", "postal_code",
                                                            "municipality_code", "moved_on"}
    sink, conn = _sink(tmp_path, catalogue, policies)
    columns = [(r[1], r[2], r[5]) for r in conn.execute("PRAGMA table_info(exchange_population_address_changed)")]
    assert columns == [("event_id", "TEXT", 1), ("agreement_id", "TEXT", 2), ("event_time", "TEXT", 0),
                       ("subject", "TEXT", 0), ("person_id", "TEXT", 0), ("street_address", "TEXT", 0),
                       ("postal_code", "TEXT", 0), ("municipality_code", "TEXT", 0), ("moved_on", "TEXT", 0)]
    sink.close()


def test_a_batch_written_twice_leaves_the_same_rows(tmp_path: Path, catalogue: Catalogue,
                                                    policies: PolicySet) -> None:
    sink, conn = _sink(tmp_path, catalogue, policies)
    batch = [_delivery(i) for i in range(5)] + [_delivery(5, street_address=None, postal_code=None)]
    sink.write(batch)
    first = conn.execute("SELECT * FROM exchange_population_address_changed ORDER BY event_id").fetchall()
    sink.write(batch)
    assert conn.execute("SELECT * FROM exchange_population_address_changed ORDER BY event_id").fetchall() == first
    assert first[0] == ("event-0", "tcb-address-changed-tax", "2026-01-01T08:00:00+00:00", "subject-0", "p0",
                        "Street 0", "10115", "0784", "2025-01-01")
    assert first[5][5:7] == (None, None)
    sink.close()


def test_a_refused_row_is_a_bad_record_naming_it(tmp_path: Path, catalogue: Catalogue,
                                                 policies: PolicySet) -> None:
    sink, conn = _sink(tmp_path, catalogue, policies)
    conn.execute("CREATE UNIQUE INDEX one_per_person ON exchange_population_address_changed (person_id)")
    conn.commit()
    batch = [_delivery(0), _delivery(1), _delivery(2, person_id="p0")]
    with pytest.raises(BadRecord, match="UNIQUE constraint failed") as caught:
        sink.write(batch)
    assert caught.value.record is batch[2]
    assert conn.execute("SELECT count(*) FROM exchange_population_address_changed").fetchone() == (0,)
    sink.write(batch[:2])
    with pytest.raises(BadRecord, match="not one of this sink's record types"):
        sink.write([SinkRecord("e", "a", "vehicle.vehicle-registered", {}, "s", datetime.now(UTC), "x")])
    sink.close()


def test_a_field_released_since_open_gets_its_column(tmp_path: Path, catalogue: Catalogue,
                                                     policies: PolicySet) -> None:
    sink, conn = _sink(tmp_path, catalogue, policies)
    sink.write([_delivery(0, dwelling_type="HOUSE")])
    assert conn.execute("SELECT dwelling_type FROM exchange_population_address_changed").fetchall() == [("HOUSE",)]
    with pytest.raises(BadRecord, match=r"fields \['nonsense'\] are not fields"):
        sink.write([_delivery(1, nonsense=1)])
    sink.close()
    again, _ = _sink(tmp_path, catalogue, policies)  # an existing table is kept as it is
    again.write([_delivery(2)])
    again.close()


def test_a_type_no_agreement_releases_is_a_config_error(tmp_path: Path, catalogue: Catalogue,
                                                        policies: PolicySet) -> None:
    config = SqlSinkConfig(name="s", recipient="tax-board", url=f"sqlite:///{tmp_path / 'x.db'}",
                           record_types=("health.coverage-changed",))
    with pytest.raises(ConfigError, match=r"no agreement releases health\.coverage-changed to tax-board"):
        SqlSink(config, catalogue, policies)
