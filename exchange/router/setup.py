"""Wiring a router from settings: what a batch is routed with, and the consent view."""

from __future__ import annotations

from datetime import timedelta

from exchange.consent.view import ConsentView
from exchange.context import Context
from exchange.delivery.seal import DeliverySealer
from exchange.envelope import EnvelopeVerifier
from exchange.router.entries import EntryWriter
from exchange.router.service import Router, RouterConfig, Snapshot
from exchange.settings import Settings, get_settings

__all__ = ["ROUTER_IDENTITY", "build_router", "load_snapshot"]

ROUTER_IDENTITY = "exchange-router"


def load_snapshot(router_id: str, settings: Settings, max_skew: timedelta = RouterConfig.max_skew) -> Snapshot:
    """Read registry, catalogue and policies afresh and build what a batch is routed with.

    Raises the loading error (with file and line) if anything is wrong, so a reload can keep the old snapshot.
    """
    context = Context(settings)
    registry, catalogue = context.registry, context.catalogue
    entries = EntryWriter(router_id, catalogue, frozenset(a.id for a in registry.agencies),
                          frozenset(catalogue.types()))
    sealer = DeliverySealer(context.keystore.signer(ROUTER_IDENTITY), registry, context.pseudonymiser)
    return Snapshot(context.policies, EnvelopeVerifier(registry, catalogue, max_skew=max_skew), entries, sealer)


def build_router(config: RouterConfig, settings: Settings | None = None, bootstrap: str | None = None) -> Router:
    """A router for ``config`` with everything loaded from ``settings`` (EXCHANGE_* by default)."""
    settings = settings or get_settings()
    consent = ConsentView.connect(Context(settings), bootstrap=bootstrap)
    return Router(config, load=lambda: load_snapshot(config.router_id, settings, config.max_skew), consent=consent,
                  settings=settings, bootstrap=bootstrap)
