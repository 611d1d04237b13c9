"""The connector kinds ``exchange connector run KIND`` knows: where each one's config model and factory live.

Looked up lazily, so a kind whose optional dependencies are not installed (a database driver) fails with a clear
message only when it is asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from connectors.sdk.config import ConnectorConfig
from exchange.errors import ConfigError

__all__ = ["KINDS", "Kind", "kind"]

Role = Literal["source", "sink", "server"]


@dataclass(frozen=True)
class Kind:
    """``module`` holds the config model ``config`` and the factory ``factory``: for a source or a sink
    ``factory(config)`` builds it and the runtime runs it; for a server ``factory(config, settings)`` serves."""

    name: str
    role: Role
    module: str
    config: str
    factory: str
    summary: str

    def model(self) -> type[ConnectorConfig]:
        found = getattr(self._module(), self.config)
        if not (isinstance(found, type) and issubclass(found, ConnectorConfig)):
            raise ConfigError(f"connector kind {self.name}: {self.module}.{self.config} is not a connector config")
        return found

    def build(self) -> Any:
        return getattr(self._module(), self.factory)

    def _module(self) -> Any:
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise ConfigError(f"connector kind {self.name} cannot be loaded: {exc} (is its extra installed? "
                              "`pip install 'exchange[sql]'` for the SQL connectors)") from exc


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("files", "source", "connectors.files", "FilesSourceConfig", "build",
         "a drop folder of CSV or JSON-lines files (bulk import of a register)"),
    Kind("sql-outbox", "source", "connectors.sql", "SqlOutboxSourceConfig", "build_source",
         "a transactional outbox table (PostgreSQL or SQLite)"),
    Kind("sql-sink", "sink", "connectors.sql", "SqlSinkConfig", "build_sink",
         "a department's deliveries upserted into its own table"),
    Kind("http-webhook", "server", "connectors.http", "WebhookSourceConfig", "serve",
         "records POSTed by an agency's system, 202 once durable"),
    Kind("feed", "source", "connectors.feed", "FeedSourceConfig", "FeedSource",
         "a register's changes feed over HTTP (the 50-line example of docs/connectors.md)"),
    Kind("http-sink", "sink", "connectors.http", "WebhookSinkConfig", "build_sink",
         "each delivery POSTed to a department's endpoint"),
)}


def kind(name: str) -> Kind:
    """The kind called ``name``; ConfigError listing the known ones otherwise."""
    found = KINDS.get(name)
    if found is None:
        raise ConfigError(f"unknown connector kind {name!r}; known: {', '.join(sorted(KINDS))}")
    return found
