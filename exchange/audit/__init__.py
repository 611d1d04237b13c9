"""The access log: the sequencer that orders decisions into a signed, append-only log, and its verifier.

Built so far: :class:`Sequencer` (``exchange audit sequencer run``) and :func:`verify_integrity` (``exchange
audit verify``). Witnesses, tiles, re-evaluation of decisions, proofs and export are still to come
(docs/architecture.md, "The access log").
"""

from __future__ import annotations

from exchange.audit.errors import AuditError, SequencerStateError
from exchange.audit.log import read_checkpoints, read_log_entries, verify_log
from exchange.audit.sequencer import (
    AUDIT_IDENTITY,
    CHECKPOINT_TOPIC,
    LOG_TOPIC,
    STATE_TOPIC,
    Sequencer,
    SequencerConfig,
    SequencerStats,
)
from exchange.audit.state import LogState, SignedHead
from exchange.audit.verify import Discrepancy, IntegrityReport, verify_integrity

__all__ = [
    "AUDIT_IDENTITY",
    "CHECKPOINT_TOPIC",
    "LOG_TOPIC",
    "STATE_TOPIC",
    "AuditError",
    "Discrepancy",
    "IntegrityReport",
    "LogState",
    "Sequencer",
    "SequencerConfig",
    "SequencerStateError",
    "SequencerStats",
    "SignedHead",
    "read_checkpoints",
    "read_log_entries",
    "verify_integrity",
    "verify_log",
]
