"""The configs of the SQL outbox source (``sql-outbox``) and the SQL sink (``sql-sink``).

::

    name: prc-outbox
    kind: sql-outbox
    agency: population-registry
    url: postgresql://exchange@db.prc.internal:5432/population
    table: outbox
    type_map:                     # aggregatetype -> record type; leave it out when they are the same
      Address: population.address-changed
    batch: 100                    # rows per SELECT (max_batch: records per Kafka transaction)

    name: tcb-sql
    kind: sql-sink
    recipient: tax-board
    url: sqlite:////var/lib/tcb/exchange.db
    table_prefix: exchange_       # exchange_population_address_changed, ...
    record_types: [population.address-changed, vehicle.vehicle-registered]

A password does not belong in the file: libpq reads ``PGPASSWORD`` and ``~/.pgpass``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from connectors.sdk.config import ConnectorConfig, load_config
from connectors.sql.db import Target, parse_url, quote_table
from exchange.errors import ConfigError

__all__ = ["SINK_KIND", "SOURCE_KIND", "SqlOutboxSourceConfig", "SqlSinkConfig", "load_sink_config",
           "load_source_config", "table_name"]

SOURCE_KIND = "sql-outbox"
SINK_KIND = "sql-sink"

_RECORD_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*")
_SLUG = r"^[a-z][a-z0-9-]{0,62}$"
_PG_IDENTIFIER_BYTES = 63


def _check_url(url: str) -> str:
    try:
        parse_url(url)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return url


def _check_record_type(value: str) -> str:
    if _RECORD_TYPE.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a record type (<domain>.<event>)")
    return value


def table_name(prefix: str, record_type: str) -> str:
    """The delivery table of ``record_type``: the prefix, then the type with ``.`` and ``-`` as ``_``."""
    return prefix + record_type.replace(".", "_").replace("-", "_")


class SqlOutboxSourceConfig(ConnectorConfig):
    """A transactional outbox table an agency's application writes its records into."""

    kind: Literal["sql-outbox"] = Field(default="sql-outbox", description="always `sql-outbox`")
    agency: str = Field(pattern=_SLUG, description="the agency whose records the outbox holds, as the trust "
                                                   "registry names it; its signing key must be in the keystore")
    url: str = Field(description="postgresql://user@host:port/db or sqlite:///path (relative) or "
                                 "sqlite:////path (absolute)")
    table: str = Field(default="outbox", description="the outbox table (schema.table on PostgreSQL)")
    type_map: dict[str, str] | None = Field(default=None,
                                            description="aggregatetype -> record type; without it, the "
                                                        "aggregatetype is the record type")
    batch: int = Field(default=100, ge=1, le=10_000, description="rows selected at a time (max_batch is the "
                                                                 "records per Kafka transaction)")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300, description="how long a connection attempt, "
                                     "or a wait for SQLite's write lock, may take")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        try:
            quote_table(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("type_map")
    @classmethod
    def _type_map(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            if not value:
                raise ValueError("type_map is empty: leave it out for the identity")
            for aggregate, record_type in value.items():
                if not aggregate:
                    raise ValueError("an aggregatetype must not be empty")
                _check_record_type(record_type)
        return value

    def target(self) -> Target:
        return parse_url(self.url)

    def record_type(self, aggregatetype: str) -> str | None:
        """The record type of a row's ``aggregatetype``; None if the map has none."""
        if self.type_map is None:
            return aggregatetype
        return self.type_map.get(aggregatetype)


class SqlSinkConfig(ConnectorConfig):
    """A department's database: each record type's deliveries upserted into a table of their own."""

    kind: Literal["sql-sink"] = Field(default="sql-sink", description="always `sql-sink`")
    recipient: str = Field(pattern=_SLUG, description="the department receiving, as the trust registry names it; "
                                                      "its encryption key must be in the keystore")
    url: str = Field(description="as for the outbox source")
    table_prefix: str = Field(default="exchange_", pattern=r"^([a-z_][a-z0-9_]*)?$",
                              description="prepended to each table name")
    record_types: tuple[str, ...] = Field(min_length=1, description="the record types written, one table each; "
                                                                    "a delivery of another type is dead-lettered")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300, description="as for the outbox source")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("record_types")
    @classmethod
    def _record_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for record_type in value:
            _check_record_type(record_type)
        if len(set(value)) != len(value):
            raise ValueError("a record type is listed twice")
        return value

    @model_validator(mode="after")
    def _table_names(self) -> SqlSinkConfig:
        for record_type in self.record_types:
            name = table_name(self.table_prefix, record_type)
            if len(name) > _PG_IDENTIFIER_BYTES:
                raise ValueError(f"table {name!r} is longer than {_PG_IDENTIFIER_BYTES} characters; shorten "
                                 "table_prefix")
        return self

    def target(self) -> Target:
        return parse_url(self.url)

    def table(self, record_type: str) -> str:
        return table_name(self.table_prefix, record_type)


def load_source_config(path: Path | str) -> SqlOutboxSourceConfig:
    """Read an outbox source config; ConnectorConfigError with the file and line of the first problem."""
    return load_config(path, SqlOutboxSourceConfig, kind=SOURCE_KIND)


def load_sink_config(path: Path | str) -> SqlSinkConfig:
    """Read a SQL sink config; ConnectorConfigError with the file and line of the first problem."""
    return load_config(path, SqlSinkConfig, kind=SINK_KIND)
