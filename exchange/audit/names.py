"""The access log's topics, identity and header names, shared by the sequencer and its readers."""

from __future__ import annotations

__all__ = ["AUDIT_IDENTITY", "CHECKPOINT_TOPIC", "DECISIONS_TOPIC", "H_INDEX", "LOG_TOPIC", "QUARANTINE_TOPIC",
           "STATE_TOPIC"]

AUDIT_IDENTITY = "exchange-audit"
"""The registry identity whose key signs the log's checkpoints."""
DECISIONS_TOPIC = "audit.decisions"
LOG_TOPIC = "audit.log"
STATE_TOPIC = "audit.sequencer"
CHECKPOINT_TOPIC = "audit.checkpoints"
QUARANTINE_TOPIC = "exchange.quarantine"
H_INDEX = "ce_exindex"
"""The header of a sequenced entry that holds its index."""
