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

def configure_logging(fmt: str | None = None, level: str | None = None) -> None:
    """Set up structlog and the stdlib root logger. Idempotent; later calls may change format and level."""
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
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level_no, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # Resolve sys.stderr when a line is logged, not when logging is configured: it may have been replaced since.
    return structlog.PrintLogger(sys.stderr)


def get_logger(name: str, **bound: Any) -> structlog.stdlib.BoundLogger:
    """A logger for component ``name`` with ``bound`` context.

    A lazy proxy: it resolves on each use, so loggers made at import time follow a later
    :func:`configure_logging` (which the ``exchange`` command calls; a library user may call it too).
    """
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name, **bound)
    return logger
