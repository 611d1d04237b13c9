"""Why the access log cannot be sequenced::

    ExchangeError
    └── AuditError                       the access log cannot be written or trusted as it is
        ├── SequencerStateError          the persisted state is missing, unreadable or behind what was signed
        └── TileError                    a tile cannot be written or read as the log needs it (exchange.audit.tiles)
"""

from __future__ import annotations

from exchange.errors import ExchangeError

__all__ = ["AuditError", "SequencerStateError"]


class AuditError(ExchangeError):
    """The access log cannot be written or trusted as it is; the message says why."""


class SequencerStateError(AuditError):
    """The sequencer's state is missing, unreadable, or behind a checkpoint it already signed: it will not sign."""
