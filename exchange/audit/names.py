"""The access log's topics, identity and header names, shared by the sequencer and its readers."""

from __future__ import annotations

__all__ = ["AUDIT_IDENTITY", "CHECKPOINT_TOPIC", "DECISIONS_TOPIC", "H_INDEX", "LOG_TOPIC", "LOOKUP_FIELDS",
           "LOOKUP_PURPOSE", "LOOKUP_REASON", "LOOKUP_TYPE", "QUARANTINE_TOPIC", "STATE_TOPIC", "TRACKER_IDENTITY"]

AUDIT_IDENTITY = "exchange-audit"
"""The registry identity whose key signs the log's checkpoints."""
DECISIONS_TOPIC = "audit.decisions"
LOG_TOPIC = "audit.log"
STATE_TOPIC = "audit.sequencer"
CHECKPOINT_TOPIC = "audit.checkpoints"
QUARANTINE_TOPIC = "exchange.quarantine"
H_INDEX = "ce_exindex"
"""The header of a sequenced entry that holds its index."""

TRACKER_IDENTITY = "exchange-tracker"
"""The ``router_id`` of the access-log entries the data tracker writes itself."""
LOOKUP_TYPE = "exchange.subject-access"
"""The ``event_type`` of an entry recording that an operator looked up a subject's accesses
(``exchange tracker show``): an access to the subject's data like any other, shown to them."""
LOOKUP_PURPOSE = "subject-access-request"
LOOKUP_REASON = "OPERATOR_LOOKUP"
LOOKUP_FIELDS = ("access-history",)
