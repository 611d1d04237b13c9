"""Reading the sequenced log back from Kafka, and checking it (the edge around :mod:`exchange.audit.verify`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from exchange.audit.names import AUDIT_IDENTITY, CHECKPOINT_TOPIC, H_INDEX, LOG_TOPIC
from exchange.audit.sources import LogSources, verify_decisions
from exchange.audit.tiles import TileReader
from exchange.audit.verify import IntegrityReport, verify_integrity
from exchange.kafka import read_to_end
from exchange.registry import Registry
from exchange.schemas import Catalogue
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


def verify_log(settings: Settings, registry: Registry, *, catalogue: Catalogue | None = None,
               reevaluate: bool = False, progress: Callable[[int], None] | None = None,
               total: Callable[[int], None] | None = None, tiles: Path | None = None,
               bootstrap: str | None = None) -> IntegrityReport:
    """Replay the log as committed on the cluster and check it with the registry's ``exchange-audit`` keys.

    Given the ``catalogue``, every entry must be a decision record; with ``reevaluate`` too, every decision is
    taken again (:mod:`exchange.audit.reevaluate`) from the bundles, consent log and ingress records the
    cluster holds. ``total`` is told the number of entries before the replay starts (for a progress bar).
    With the sequencer's ``tiles`` directory, a root mismatch names the exact entry at fault.
    """
    entries = read_log_entries(settings, bootstrap)
    notes = read_checkpoints(settings, bootstrap)
    if total is not None:
        total(len(entries))
    verifiers = registry.note_verifiers(datetime.now(UTC), identities=[AUDIT_IDENTITY])
    reference = TileReader(tiles) if tiles is not None else None
    if catalogue is None:
        return verify_integrity(entries, notes, verifiers, settings.audit_origin, progress=progress,
                                reference=reference)
    if not reevaluate:
        return verify_decisions(entries, notes, verifiers, settings.audit_origin, catalogue=catalogue,
                                reevaluator=None, progress=progress, reference=reference)
    sources = LogSources.read(settings, registry, catalogue, bootstrap)
    try:
        return sources.verify(entries, notes, verifiers, settings.audit_origin, progress=progress,
                              reference=reference)
    finally:
        sources.close()
