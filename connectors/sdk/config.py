"""Connector configuration: a pydantic model per connector kind, read from YAML with errors at file and line.

Every config has a ``name`` (the connector instance: its offsets topic, transactional id and dead letters carry
it) and a ``kind``. Unknown keys are refused (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exchange import safeparse
from exchange.errors import ConfigError
from exchange.safeparse import SafeParseError

__all__ = ["ConnectorConfig", "ConnectorConfigError", "Tolerance", "load_config"]

Tolerance = Literal["none", "all"]
"""What a bad record does: ``none`` stops the connector (after dead-lettering it), ``all`` goes on."""


class ConnectorConfigError(ConfigError):
    """A connector config that cannot be used; ``path`` and ``line`` say where."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{path}:{line}: {reason}")


class ConnectorConfig(BaseModel):
    """The settings every connector has; a connector's own model adds its fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$",
                      description="the connector instance: lower-case letters, digits and hyphens, at most 63")
    kind: str = Field(description="the connector kind, as `exchange connector run KIND` names it")
    errors_tolerance: Tolerance = Field(default="all", description="bad records: `all` dead-letters them and "
                                        "goes on, `none` dead-letters the first and stops")
    max_batch: int = Field(default=500, ge=1, le=100_000, description="records per transaction")
    max_in_flight_bytes: int = Field(default=64 * 1024 * 1024, ge=1024,
                                     description="bytes buffered while Kafka is slow or down before polling "
                                                 "pauses")


_C = TypeVar("_C", bound=ConnectorConfig)


def load_config(path: Path | str, model: type[_C], *, kind: str | None = None) -> _C:
    """Read ``path`` as a ``model``; :class:`ConnectorConfigError` with the file and line of the first problem
    (a YAML error, a duplicate key, an unknown or missing key, a bad value, another ``kind``)."""
    where = str(path)
    try:
        document = safeparse.read_yaml(path)
    except SafeParseError as exc:
        raise ConnectorConfigError(exc.path or where, exc.line or 0, exc.reason) from None
    if document.root is None or not isinstance(document.data, dict):
        raise ConnectorConfigError(where, 1, "the config must be a mapping of settings (name: …, kind: …)")
    if document.duplicates:
        line, key = document.duplicates[0]
        raise ConnectorConfigError(where, line, f"duplicate key {key!r}")
    if kind is not None and document.data.get("kind") != kind:
        raise ConnectorConfigError(where, document.line_of(("kind",)) or 1,
                                   f"kind is {document.data.get('kind')!r}, this connector is {kind!r}")
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = tuple(first["loc"])
        line = document.line_of(loc) or document.line_of(loc[:-1]) or 1
        field = ".".join(str(p) for p in loc) or "(top level)"
        raise ConnectorConfigError(where, line, f"{field}: {first['msg']}") from None
