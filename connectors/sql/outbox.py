"""The transactional outbox source: rows an agency's application commits with its own change, published once.

Selecting
    Rows with ``dispatched_at IS NULL`` that no instance has claimed, ``ORDER BY id LIMIT batch``; on PostgreSQL
    ``FOR UPDATE SKIP LOCKED``, on SQLite inside ``BEGIN IMMEDIATE`` (SQLite has no row locks: one instance per
    database file is the model there). There is no ``id > last`` watermark: ids come from a sequence and the
    transactions that take them commit in any order, so a row with a lower id can become visible after a higher
    one was published; it is simply selected next time.

The offset
    The runtime stores one offset per Kafka transaction (the offset of the batch's last record, in the same
    transaction) and, after a restart, polls after it. So the offset must tell, by itself, which rows were
    published. In the database transaction that selects the rows, each row is *claimed*: it gets ``claimed_by``
    (the connector's name), ``claim_batch`` (a random id for one run of claims) and ``claim_seq`` (1, 2, 3 … in
    the order the rows are handed to the runtime, across every SELECT of the claim). A record's offset is
    ``{"batch": <id>, "seq": <n>, "id": <row id>}`` (under 80 bytes, whatever the batch size; ``id`` is there for
    people reading a dead letter). The runtime commits, in order, a prefix of what it was handed, so a committed
    ``(batch, seq)`` means exactly: the rows of that claim with ``claim_seq <= seq``.

    A claim goes on while the runtime polls from where the last row handed out ends — within a Kafka
    transaction, and, while its acknowledgement has not come, into the next — and a new one starts after the
    acknowledgement of its last row, or when the runtime polls from anywhere else: at a start, or from the
    committed offset after a transaction that was not committed. So a claim is one Kafka transaction, unless
    acknowledgements come late.

Settling
    :meth:`acknowledge` (after the commit) marks the committed prefix ``dispatched_at``; nothing else, so an
    acknowledgement that comes late, out of order or twice marks only committed rows. A new claim starts by
    marking the prefix the offset it is polled after names and releasing every other claim of the connector —
    in the same database transaction that claims its rows — so after a crash between the Kafka commit and the
    update (or acknowledgements that never came), the restart marks the committed rows and does not publish
    them again, while rows handed out in a Kafka transaction that was aborted (or never committed) are released
    and published again: no duplicate, no gap. A row that was dead-lettered is part of its claim and is marked
    dispatched too (its dead letter names it). Claims and marks are kept on dispatched rows (a purge job may
    delete those rows); to publish a row again, set its ``dispatched_at`` and ``claimed_by`` to NULL.

Two instances
    With the same name they share the transactional id ``connector.<name>``: the second fences the first, which
    stops at its next transaction, and it settles the claims of that name from the committed offset. With
    different names (each its own offsets topic) on one PostgreSQL table, ``SKIP LOCKED`` keeps them from
    selecting the same row at the same time and the committed claim keeps the other away afterwards, so no row
    is published twice; each settles only its own claims.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from connectors.sdk.api import BadRecord, Offset, OffsetError, Source, SourceContext, SourceRecord
from connectors.sdk.jsonrecord import JsonRecordError, parse_json_object, read_json_record
from connectors.sql.config import SqlOutboxSourceConfig
from connectors.sql.db import Database, quote_table
from exchange.schemas import Catalogue, UnknownSchemaError

__all__ = ["OutboxPlace", "SqlOutboxSource", "outbox_offset", "parse_outbox_offset"]

_NOW = {"postgresql": "now()", "sqlite": "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"}


class OutboxPlace(NamedTuple):
    """A place in the outbox: the ``seq``-th row handed out in claim ``batch`` (row ``row_id``)."""

    batch: str
    seq: int
    row_id: int


def outbox_offset(place: OutboxPlace) -> Offset:
    return {"batch": place.batch, "seq": place.seq, "id": place.row_id}


def parse_outbox_offset(offset: Offset | None) -> OutboxPlace | None:
    """The place ``offset`` names; OffsetError if it is not an outbox offset."""
    if offset is None:
        return None
    batch, seq, row_id = offset.get("batch"), offset.get("seq"), offset.get("id")
    if (set(offset) != {"batch", "seq", "id"} or not isinstance(batch, str) or len(batch) != 32
            or not isinstance(seq, int) or seq < 1 or not isinstance(row_id, int)):
        raise OffsetError(f"{dict(offset)!r} is not an outbox offset ({{'batch': 32 hex digits, 'seq': n >= 1, "
                          "'id': row id}})")
    return OutboxPlace(batch, seq, row_id)


class _Row(NamedTuple):
    seq: int
    row_id: int
    aggregatetype: str
    payload: Any


@dataclass
class _Batch:
    """The claim being handed to the runtime: rows claimed so far, the ``seq`` of the last one handed out, those
    not handed out yet."""

    batch: str
    claimed: int = 0
    handed: int = 0
    pending: deque[_Row] = field(default_factory=deque)


class SqlOutboxSource(Source):
    """Publishes the rows of an outbox table (see the module docstring for how nothing is lost or repeated)."""

    def __init__(self, config: SqlOutboxSourceConfig, catalogue: Catalogue, *,
                 database: Database | None = None) -> None:
        self.config, self._catalogue = config, catalogue
        self.db = database or Database(config.target(), connect_timeout_s=config.connect_timeout_s)
        self._table = quote_table(config.table)
        self._me = config.name
        self._open: _Batch | None = None
        self._checked = False
        now = _NOW[self.db.dialect]
        lock = " FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgresql" else ""
        t = self._table
        # S608 below: the table name is a validated identifier, quoted; every value is a bound parameter.
        self._sql_any = (f"SELECT 1 FROM {t} WHERE dispatched_at IS NULL "  # noqa: S608 - as above
                         "AND (claimed_by IS NULL OR claimed_by = :me) LIMIT 1")
        self._sql_mark = (f"UPDATE {t} SET dispatched_at = {now} WHERE claimed_by = :me "  # noqa: S608 - as above
                          "AND claim_batch = :batch AND claim_seq <= :seq AND dispatched_at IS NULL")
        self._sql_release = (f"UPDATE {t} SET claimed_by = NULL, claim_batch = NULL, "  # noqa: S608 - as above
                             "claim_seq = NULL WHERE claimed_by = :me AND dispatched_at IS NULL")
        self._sql_select = (f"SELECT id, aggregatetype, payload FROM {t} "  # noqa: S608 - as above
                            f"WHERE dispatched_at IS NULL AND claimed_by IS NULL ORDER BY id LIMIT :n{lock}")
        self._sql_claim = (f"UPDATE {t} SET claimed_by = :me, claim_batch = :batch, "  # noqa: S608 - as above
                           "claim_seq = :seq WHERE id = :id")

    def open(self, context: SourceContext) -> None:
        if context.name != self.config.name:
            raise ValueError(f"the source is configured as {self.config.name!r}, the runtime runs "
                             f"{context.name!r}")

    def close(self) -> None:
        self.db.close()

    def poll(self, after: Offset | None) -> Iterator[SourceRecord]:
        place = parse_outbox_offset(after)
        batch = self._open
        if batch is not None and place is not None and (place.batch, place.seq) == (batch.batch, batch.handed):
            if not batch.pending:  # the claim goes on: within a Kafka transaction, or after one was committed
                with self.db.transaction():
                    self._claim(batch)
        else:  # from the committed offset, after a start or a Kafka transaction that was not committed
            self._open = None
            if not self._checked:
                self._check_committed(place)
            if not self.db.execute(self._sql_any, {"me": self._me}):
                return
            batch = _Batch(uuid.uuid4().hex)
            with self.db.transaction():
                self._settle(place)
                self._claim(batch)
            self._open = batch
        while batch.pending:
            row = batch.pending.popleft()
            batch.handed = row.seq
            yield self._record(batch.batch, row)

    def acknowledge(self, upto: Offset) -> None:
        """Mark the rows ``upto`` names dispatched, and end the claim if nothing was handed out after them. An
        acknowledgement that comes late (after rows of a later transaction were handed out), out of order or
        twice marks only committed rows and leaves the claim going on; one that never comes is made good by the
        next start (see :meth:`_settle`)."""
        place = parse_outbox_offset(upto)
        if place is None:
            return
        batch = self._open
        if batch is not None and (place.batch, place.seq) == (batch.batch, batch.handed):
            self._open = None  # nothing was handed out since: the next rows start a claim of their own
        with self.db.transaction():
            self.db.execute(self._sql_mark, {"me": self._me, "batch": place.batch, "seq": place.seq})

    # -- the claim protocol ---------------------------------------------------------------------------------

    def _check_committed(self, committed: OutboxPlace | None) -> None:
        """Refuse a committed offset that names a row id the table's id sequence never reached: the database is
        not the one the offset was committed against (restored from an older backup, or another one)."""
        if committed is not None:
            reached = self._ids_reached()
            if reached is not None and committed.row_id > reached:
                raise OffsetError(f"connector {self._me}: the committed offset names outbox row "
                                  f"{committed.row_id}, but the ids of {self.config.table} reach only {reached}; "
                                  f"is this the database the connector published from? If it was recreated on "
                                  f"purpose, reset the offset (`exchange connector reset-offset {self._me}`)")
        self._checked = True

    def _ids_reached(self) -> int | None:
        """The highest id the table has given out: its largest row, or its id counter if that is higher (rows
        may have been purged); None if neither is known."""
        largest = self.db.execute(f"SELECT max(id) FROM {self._table}")[0][0]  # noqa: S608 - quoted identifier
        known = [int(v) for v in (largest, self._id_counter()) if v is not None]
        return max(known) if known else None

    def _id_counter(self) -> int | None:
        """What the id sequence (PostgreSQL) or AUTOINCREMENT counter (SQLite) has given out: 0 if nothing yet,
        None if the table has none, or its sequence may not be read."""
        if self.db.dialect == "postgresql":
            rows = self.db.execute(
                "SELECT CASE WHEN s IS NULL THEN NULL WHEN has_sequence_privilege(s, 'SELECT, USAGE') "
                "THEN coalesce(pg_sequence_last_value(s), 0) END FROM pg_get_serial_sequence(:t, 'id') AS s",
                {"t": self._table})
            return None if not rows or rows[0][0] is None else int(rows[0][0])
        bare = self.config.table.rsplit(".", 1)[-1]
        ddl = self.db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t", {"t": bare})
        if not ddl or "AUTOINCREMENT" not in str(ddl[0][0]).upper():
            return None
        counter = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = :t", {"t": bare})
        return int(counter[0][0]) if counter else 0

    def _settle(self, committed: OutboxPlace | None) -> None:
        """Mark the rows ``committed`` names dispatched and release every other claim of this connector."""
        if committed is not None:
            self.db.execute(self._sql_mark, {"me": self._me, "batch": committed.batch, "seq": committed.seq})
        self.db.execute(self._sql_release, {"me": self._me})

    def _claim(self, batch: _Batch) -> None:
        """Claim up to ``batch`` more rows for ``batch``: no more than one Kafka transaction takes while the claim
        is in its first, ``batch`` at a time once it goes on past it (acknowledgements came late)."""
        room = self.config.max_batch - batch.claimed
        rows = self.db.execute(self._sql_select, {"n": min(self.config.batch, room) if room > 0 else
                                                  self.config.batch})
        claims = [{"me": self._me, "batch": batch.batch, "seq": batch.claimed + i, "id": row[0]}
                  for i, row in enumerate(rows, start=1)]
        self.db.executemany(self._sql_claim, claims)
        for claim, (row_id, aggregatetype, payload) in zip(claims, rows, strict=True):
            batch.pending.append(_Row(claim["seq"], int(row_id), str(aggregatetype), payload))
        batch.claimed += len(rows)

    def _record(self, batch: str, row: _Row) -> SourceRecord:
        offset = outbox_offset(OutboxPlace(batch, row.seq, row.row_id))
        record_type = self.config.record_type(row.aggregatetype)
        if record_type is None:
            raise BadRecord(f"outbox row {row.row_id}: aggregatetype {_shown(row.aggregatetype)} is not in "
                            "type_map", offset=offset, original=_original(row.payload))
        try:
            schema = self._catalogue.current(record_type)
        except UnknownSchemaError:
            raise BadRecord(f"outbox row {row.row_id}: {record_type!r} is not a record type of the catalogue",
                            offset=offset, original=_original(row.payload)) from None
        try:
            body = parse_json_object(row.payload)
        except JsonRecordError as exc:
            raise BadRecord(f"outbox row {row.row_id}: the payload is {exc}", offset=offset,
                            original=_original(row.payload)) from None
        try:
            values = read_json_record(schema, body)
        except JsonRecordError as exc:
            raise BadRecord(f"outbox row {row.row_id}: {schema.label}: {exc}", offset=offset,
                            original=_original(row.payload)) from None
        return SourceRecord(record_type, values, offset)


def _original(payload: Any) -> bytes:
    if isinstance(payload, memoryview | bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8", "replace")
    return json.dumps(payload, sort_keys=True, default=str).encode()


def _shown(name: str) -> str:
    shown = name.encode("unicode_escape").decode("ascii")
    return repr(shown if len(shown) <= 64 else shown[:61] + "...")
