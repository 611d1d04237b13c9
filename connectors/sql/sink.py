"""The SQL sink: a department's deliveries upserted into one table per record type.

A table's columns are ``event_id``, ``agreement_id``, ``event_time``, ``subject`` and one per field that the
department's agreements on the type release (their union, in schema order), typed from the field's Avro type
(:func:`connectors.sql.schema.column_type`). Opening creates missing tables and adds missing field columns (an
agreement that releases a new field); so does a delivery that carries a field the table has no column for yet
(the agreement changed while the sink ran). It never drops or changes a column.

A batch is one database transaction of ``INSERT … ON CONFLICT (event_id, agreement_id) DO UPDATE`` — the same
statement on PostgreSQL and SQLite — so a batch written again after a crash leaves the same rows. A field a
delivery does not carry (a restriction withheld it) is NULL. A row the database refuses (a constraint of the
department's own, a value out of its column's range) rolls the transaction back and is reported as
:class:`~connectors.sdk.BadRecord` naming it; the runtime dead-letters it and writes the rest again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from typing import Any

from connectors.sdk.api import BadRecord, Sink, SinkRecord, SourceContext
from connectors.sql.config import SqlSinkConfig
from connectors.sql.db import ConstraintError, Database, Dialect, quote_column, quote_table
from connectors.sql.schema import DELIVERY_COLUMNS, column_type, delivery_table_ddl, field_node, is_json_column
from exchange.errors import ConfigError
from exchange.log import get_logger
from exchange.policy import PolicySet
from exchange.schemas import Catalogue

__all__ = ["DeliveryTable", "SqlSink", "released_fields"]


def released_fields(policies: PolicySet, recipient: str, record_type: str) -> set[str]:
    """Every field an agreement of ``recipient`` on ``record_type`` releases."""
    return {name for a in policies.agreements if a.recipient == recipient and a.record_type == record_type
            for name in a.fields}


class DeliveryTable:
    """The table of one record type: its columns and the upsert that writes a delivery into it."""

    def __init__(self, dialect: Dialect, table: str, record_type: str, catalogue: Catalogue,
                 fields: AbstractSet[str]) -> None:
        schema = catalogue.current(record_type)
        unknown = sorted(fields - set(schema.field_names))
        if unknown:
            raise ConfigError(f"{record_type}: released fields {unknown} are not fields of {schema.label}")
        clash = sorted(fields & set(DELIVERY_COLUMNS))
        if clash:
            raise ConfigError(f"{record_type}: fields {clash} clash with the delivery columns")
        self.dialect, self.name, self.record_type = dialect, table, record_type
        self.fields = tuple(name for name in schema.field_names if name in fields)
        self.field_set = frozenset(self.fields)
        nodes = {name: field_node(schema, name) for name in self.fields}
        self.columns = {name: column_type(dialect, nodes[name], schema.names) for name in self.fields}
        self._json = frozenset(name for name in self.fields if is_json_column(nodes[name], schema.names))
        quoted = quote_table(table)
        names = [*DELIVERY_COLUMNS, *self.fields]
        columns = ", ".join(quote_column(n) for n in names)
        params = ", ".join(f":c{i}" for i in range(len(names)))
        updates = ", ".join(f"{quote_column(n)} = excluded.{quote_column(n)}" for n in names[2:])
        # S608: table and column names are validated identifiers, quoted; every value is a bound parameter.
        self.upsert = (f"INSERT INTO {quoted} ({columns}) VALUES ({params}) "  # noqa: S608 - as above
                       f"ON CONFLICT (event_id, agreement_id) DO UPDATE SET {updates}")

    def ddl(self) -> str:
        return delivery_table_ddl(self.dialect, self.name, self.columns)

    def row(self, record: SinkRecord) -> dict[str, Any]:
        """The upsert's parameters for ``record``."""
        values: list[Any] = [record.event_id, record.agreement_id, _time(self.dialect, record.event_time),
                             record.subject]
        values += [self._value(name, record.fields.get(name)) for name in self.fields]
        return {f"c{i}": value for i, value in enumerate(values)}

    def _value(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in self._json:
            if self.dialect == "postgresql":
                from psycopg.types.json import Jsonb  # noqa: PLC0415 - optional: only PostgreSQL needs psycopg

                return Jsonb(_jsonable(value))
            return json.dumps(_jsonable(value), sort_keys=True)
        if self.dialect == "sqlite":
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, date):
                return value.isoformat()
            if isinstance(value, bool):
                return int(value)
        return value


class SqlSink(Sink):
    """Upserts each delivery into the table of its record type, a batch per transaction."""

    def __init__(self, config: SqlSinkConfig, catalogue: Catalogue, policies: PolicySet, *,
                 database: Database | None = None) -> None:
        self.config, self._catalogue = config, catalogue
        self.db = database or Database(config.target(), connect_timeout_s=config.connect_timeout_s)
        self._log = get_logger("connectors.sql.sink", connector=config.name)
        self.tables: dict[str, DeliveryTable] = {}
        for record_type in config.record_types:
            fields = released_fields(policies, config.recipient, record_type)
            if not fields:
                raise ConfigError(f"no agreement releases {record_type} to {config.recipient}: nothing to write")
            self.tables[record_type] = DeliveryTable(self.db.dialect, config.table(record_type), record_type,
                                                     catalogue, fields)

    def open(self, context: SourceContext) -> None:
        """Create missing tables and add missing field columns."""
        with self.db.transaction():
            for table in self.tables.values():
                self.db.execute(table.ddl())
                self._add_columns(table)

    def _add_columns(self, table: DeliveryTable) -> None:
        present = self._columns(table.name)
        for name, sql_type in table.columns.items():
            if name not in present:
                self._log.info("adding a column", table=table.name, column=name, type=sql_type)
                self.db.execute(f"ALTER TABLE {quote_table(table.name)} ADD COLUMN {quote_column(name)} {sql_type}")

    def _widen(self, record: SinkRecord) -> None:
        """Add the columns of fields ``record`` carries that its table has none for (released since open)."""
        table = self.tables[record.record_type]
        new = record.fields.keys() - table.field_set
        unknown = sorted(new - set(self._catalogue.current(record.record_type).field_names))
        if unknown:
            raise BadRecord(f"{table.name}: fields {unknown} are not fields of {record.record_type}", record=record)
        widened = DeliveryTable(self.db.dialect, table.name, record.record_type, self._catalogue,
                                table.field_set | new)
        with self.db.transaction():
            self._add_columns(widened)
        self.tables[record.record_type] = widened

    def close(self) -> None:
        self.db.close()

    def write(self, batch: Sequence[SinkRecord]) -> None:
        for record in batch:
            if record.record_type not in self.tables:
                raise BadRecord(f"{record.record_type} is not one of this sink's record types", record=record)
            if not record.fields.keys() <= self.tables[record.record_type].field_set:
                self._widen(record)
        groups: dict[str, list[SinkRecord]] = {}
        for record in batch:
            groups.setdefault(record.record_type, []).append(record)
        try:
            with self.db.transaction():
                for record_type, records in groups.items():
                    table = self.tables[record_type]
                    self.db.executemany(table.upsert, [table.row(r) for r in records])
        except ConstraintError:
            self._write_one_by_one(batch)

    def _write_one_by_one(self, batch: Sequence[SinkRecord]) -> None:
        """The batch again, a row at a time in one transaction, to name the row the database refuses."""
        with self.db.transaction():
            for record in batch:
                table = self.tables[record.record_type]
                try:
                    self.db.execute(table.upsert, table.row(record))
                except ConstraintError as exc:
                    reason = f"{table.name}: the database refused the row: {_first_line(str(exc))}"
                    raise BadRecord(reason, record=record) from None

    def _columns(self, table: str) -> set[str]:
        if self.db.dialect == "sqlite":
            return {str(row[1]) for row in self.db.execute(f"PRAGMA table_info({quote_table(table)})")}
        schema, _, bare = table.rpartition(".")
        query = "SELECT column_name FROM information_schema.columns WHERE table_name = :t AND table_schema = "
        query += ":s" if schema else "ANY (current_schemas(false))"
        rows = self.db.execute(query, {"t": bare, "s": schema})
        return {str(row[0]) for row in rows}


def _time(dialect: Dialect, value: datetime) -> Any:
    return value.isoformat() if dialect == "sqlite" else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "constraint violated"
