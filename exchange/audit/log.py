"""Reading the sequenced log back from Kafka, and checking it (the edge around :mod:`exchange.audit.verify`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from exchange.audit.names import AUDIT_IDENTITY, CHECKPOINT_TOPIC, H_INDEX, LOG_TOPIC
from exchange.audit.verify import IntegrityReport, verify_integrity
from exchange.kafka import read_to_end
from exchange.registry import Registry
from exchange.settings import Settings

__all__ = ["read_checkpoints", "read_log_entries", "verify_log"]


def read_log_entries(settings: Settings | None = None, bootstrap: str | None = None) -> list[tuple[int, bytes]]:
    """``(index, value)`` of every committed entry of ``audit.log``, in log order (the index is the one the
    sequencer wrote; a verifier checks it)."""
    out = []
    for record in read_to_end(LOG_TOPIC, settings=settings, bootstrap=bootstrap):
        found = dict(record.headers).get(H_INDEX, b"")
        out.append((int(found) if found.isdigit() else -1, record.value or b""))
    return out


def read_checkpoints(settings: Settings | None = None, bootstrap: str | None = None) -> list[bytes]:
    """Every published checkpoint note, in publication order."""
    return [r.value or b"" for r in read_to_end(CHECKPOINT_TOPIC, settings=settings, bootstrap=bootstrap)]


def verify_log(settings: Settings, registry: Registry, *, check_entry: Callable[[int, bytes], str | None] | None = None,
               progress: Callable[[int], None] | None = None, bootstrap: str | None = None) -> IntegrityReport:
    """Replay the log as committed on the cluster and check it with the registry's ``exchange-audit`` keys."""
    entries = read_log_entries(settings, bootstrap)
    notes = read_checkpoints(settings, bootstrap)
    verifiers = registry.note_verifiers(datetime.now(UTC), identities=[AUDIT_IDENTITY])
    return verify_integrity(entries, notes, verifiers, settings.audit_origin, check_entry=check_entry,
                            progress=progress)
