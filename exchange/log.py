"""structlog, configured once: JSON lines for services, readable lines on a terminal.

Every log line about an event carries its ``ce_id``; bind it with ``log.bind(ce_id=...)``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from exchange.settings import get_settings

__all__ = ["configure_logging", "get_logger"]

_configured = False


def configure_logging(fmt: str | None = None, level: str | None = None) -> None:
    """Set up structlog and the stdlib root logger. Idempotent; later calls may change format and level."""
    global _configured  # noqa: PLW0603 - logging is process-wide state by nature
    settings = get_settings()
    fmt = fmt or settings.log_format
    level_no = logging.getLevelName((level or settings.log_level).upper())
    if not isinstance(level_no, int):
        level_no = logging.INFO
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level_no, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    _configured = True


def get_logger(name: str, **bound: Any) -> structlog.stdlib.BoundLogger:
    """A logger for ``name`` with ``bound`` context; configures logging with defaults on first use."""
    if not _configured:
        configure_logging()
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name).bind(logger=name, **bound)
    return logger
