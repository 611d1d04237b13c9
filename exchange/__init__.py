"""The exchange: once-only sharing of citizen records between agencies on Apache Kafka."""

from __future__ import annotations

from exchange.errors import ConfigError, ExchangeError

__all__ = ["ConfigError", "ExchangeError", "__version__"]

__version__ = "0.1.0"
