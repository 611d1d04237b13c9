"""SQL connectors for PostgreSQL and SQLite: a transactional outbox source and a sink of deliveries.

- ``sql-outbox`` (:class:`SqlOutboxSource`): the rows an agency's application commits into an outbox table
  (Debezium's columns) are published once, marked ``dispatched_at`` after the Kafka commit.
- ``sql-sink`` (:class:`SqlSink`): a department's deliveries upserted into a table per record type.

PostgreSQL needs the ``sql`` extra (``pip install 'exchange[sql]'``: psycopg 3); SQLite needs nothing.
See docs/connectors.md.
"""

from __future__ import annotations

from connectors.sql.config import (
    SINK_KIND,
    SOURCE_KIND,
    SqlOutboxSourceConfig,
    SqlSinkConfig,
    load_sink_config,
    load_source_config,
)
from connectors.sql.outbox import SqlOutboxSource
from connectors.sql.schema import create_outbox, outbox_ddl
from connectors.sql.sink import SqlSink
from exchange.policy import load_policies
from exchange.schemas import Catalogue
from exchange.settings import Settings, get_settings

__all__ = [
    "SINK_KIND",
    "SOURCE_KIND",
    "SqlOutboxSource",
    "SqlOutboxSourceConfig",
    "SqlSink",
    "SqlSinkConfig",
    "build_sink",
    "build_source",
    "create_outbox",
    "load_sink_config",
    "load_source_config",
    "outbox_ddl",
]


def build_source(config: SqlOutboxSourceConfig, *, settings: Settings | None = None) -> SqlOutboxSource:
    """The outbox source of ``config``, reading payloads with the schema catalogue of ``settings`` (default: the
    process's ``EXCHANGE_*`` settings). No connection is made until the first poll."""
    settings = settings or get_settings()
    return SqlOutboxSource(config, Catalogue.load(settings.schemas))


def build_sink(config: SqlSinkConfig, *, settings: Settings | None = None) -> SqlSink:
    """The SQL sink of ``config``: its tables' columns come from the catalogue and the agreements of
    ``settings`` (default: the process's). ConfigError if an agreement releases none of a type's fields."""
    settings = settings or get_settings()
    return SqlSink(config, Catalogue.load(settings.schemas), load_policies(settings.policies))
