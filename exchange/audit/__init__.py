"""The access log: the sequencer that orders decisions into a signed, append-only log, and what checks it.

:class:`Sequencer` (``exchange audit sequencer run``) sequences, tiles and publishes cosigned checkpoints;
:func:`verify_log` (``exchange audit verify``) replays the log and, with :mod:`exchange.audit.reevaluate`, takes
every decision again; the C2SP tlog-witness :class:`Witness` (``exchange audit witness run``) cosigns with its
client :func:`add_checkpoint`; :class:`TileServer` serves the tiles; :mod:`exchange.audit.proof` writes and
checks offline proofs (docs/auditing.md).
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
from exchange.audit.serve import TileServer
from exchange.audit.state import LogState, SignedHead
from exchange.audit.tile_writer import TileWriter
from exchange.audit.tiles import TileError, TileReader, checkpoint_size
from exchange.audit.verify import Discrepancy, IntegrityReport, verify_integrity
from exchange.audit.witness import Witness, WitnessedCheckpoint, WitnessError, WitnessStateError
from exchange.audit.witness_client import (
    WitnessClientError,
    WitnessConflictError,
    WitnessForbiddenError,
    WitnessInconsistentError,
    WitnessResponseError,
    WitnessUnavailableError,
    WitnessUnknownLogError,
    add_checkpoint,
)

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
    "TileError",
    "TileReader",
    "TileServer",
    "TileWriter",
    "Witness",
    "WitnessClientError",
    "WitnessConflictError",
    "WitnessError",
    "WitnessForbiddenError",
    "WitnessInconsistentError",
    "WitnessResponseError",
    "WitnessStateError",
    "WitnessUnavailableError",
    "WitnessUnknownLogError",
    "WitnessedCheckpoint",
    "add_checkpoint",
    "checkpoint_size",
    "read_checkpoints",
    "read_log_entries",
    "verify_integrity",
    "verify_log",
]
