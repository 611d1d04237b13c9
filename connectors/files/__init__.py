"""The drop-folder source: CSV or JSON-lines files of one record type, read in name order, resumable mid-file
(docs/connectors.md, "Files source").

    exchange connector run files --config population-import.yaml
"""

from __future__ import annotations

from connectors.files.config import FilesSourceConfig, Format
from connectors.files.errors import FilesConfigError, ParseError, UnknownOffsetError
from connectors.files.parse import CsvHeader, RecordParser
from connectors.files.source import FilesSource
from exchange.context import Context
from exchange.schemas import Catalogue

__all__ = ["CsvHeader", "FilesConfigError", "FilesSource", "FilesSourceConfig", "Format", "ParseError",
           "RecordParser", "UnknownOffsetError", "build"]


def build(config: FilesSourceConfig, catalogue: Catalogue | None = None) -> FilesSource:
    """The source ``config`` describes; the schema catalogue is the settings' (``EXCHANGE_SCHEMAS``) unless
    given. FilesConfigError if the record type is unknown or has a field the format cannot carry."""
    return FilesSource(config, catalogue if catalogue is not None else Context().catalogue)
