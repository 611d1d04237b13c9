"""The routing service: verify → decide → minimise → encrypt → deliver and log, in one transaction a batch."""

from __future__ import annotations

from exchange.router.entries import EntryWriter
from exchange.router.replay import ReplayGuard
from exchange.router.runner import RouterThread
from exchange.router.service import ConsentSource, Router, RouterConfig, RouterStats, Sealer, Snapshot
from exchange.router.setup import ROUTER_IDENTITY, build_router, load_snapshot

__all__ = [
    "ROUTER_IDENTITY",
    "ConsentSource",
    "EntryWriter",
    "ReplayGuard",
    "Router",
    "RouterConfig",
    "RouterStats",
    "RouterThread",
    "Sealer",
    "Snapshot",
    "build_router",
    "load_snapshot",
]
