"""The connector SDK: write a :class:`Source` or a :class:`Sink`; the runtime does the rest (docs/connectors.md)."""

from connectors.sdk.api import (
    Backpressure,
    BadRecord,
    Offset,
    OffsetError,
    Retryable,
    Sink,
    SinkRecord,
    Source,
    SourceContext,
    SourceRecord,
)
from connectors.sdk.config import ConnectorConfig, ConnectorConfigError, load_config

__all__ = [
    "Backpressure",
    "BadRecord",
    "ConnectorConfig",
    "ConnectorConfigError",
    "Offset",
    "OffsetError",
    "Retryable",
    "Sink",
    "SinkRecord",
    "Source",
    "SourceContext",
    "SourceRecord",
    "load_config",
]
