"""The files source's errors::

    ExchangeError
    ├── ConfigError
    │   └── FilesConfigError        the folder is missing, or the record type has a field the format cannot carry
    ├── OffsetError
    │   └── UnknownOffsetError      the committed offset names a file or line the folder does not have
    └── ParseError                  one line cannot be read (a reason that never repeats the value)
"""

from __future__ import annotations

from connectors.sdk.api import OffsetError
from exchange.errors import ConfigError, ExchangeError

__all__ = ["FilesConfigError", "ParseError", "UnknownOffsetError"]


class FilesConfigError(ConfigError):
    """The files source cannot run as configured; the message says which setting and why."""


class UnknownOffsetError(OffsetError):
    """The committed offset is well-formed but names a place the folder does not have: a file that is in none of
    the drop folder, ``done/`` and ``rejected/``, or a line past the end of the file. Nothing is read; the
    connector stops with this error rather than guess where to go on."""


class ParseError(ExchangeError):
    """A line (a CSV row, a header, a JSON line) that cannot be read as a record; ``reason`` names the field and
    what was expected, never the value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
