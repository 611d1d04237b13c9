"""Putting the tracker together from settings: its database, the keys a citizen checks proofs with, and the app
(shared by ``exchange tracker`` and the demo)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette

from exchange.audit.names import AUDIT_IDENTITY
from exchange.context import Context
from exchange.crypto.cosignature import CosignatureVerifier
from exchange.crypto.errors import KeyFormatError
from exchange.errors import ConfigError
from exchange.registry.errors import RegistryError
from exchange.settings import Settings
from exchange.tracker.pages import KeysShown
from exchange.tracker.service import TrackerConfig, make_app
from exchange.tracker.store import TrackerStore
from exchange.tracker.tokens import TokenVerifier

__all__ = ["log_keys", "open_store", "tracker_app"]


def open_store(settings: Settings) -> TrackerStore:
    """The index: PostgreSQL when ``EXCHANGE_TRACKER_DATABASE_URL`` is set, else the SQLite file
    ``EXCHANGE_TRACKER_DATABASE``."""
    url = settings.tracker_database_url
    return TrackerStore.open(url.get_secret_value() if url is not None else None, settings.tracker_database)


def log_keys(context: Context) -> tuple[str, ...]:
    """The verifier key strings of the access log's signing keys valid now, from the registry."""
    now = datetime.now(UTC)
    try:
        identity = context.registry.identity(AUDIT_IDENTITY)
    except RegistryError as exc:
        raise ConfigError(f"the registry has no {AUDIT_IDENTITY} identity to check proofs with: {exc}") from exc
    keys = []
    for entry in identity.signing_keys:
        try:
            keys.append(context.registry.verifier(AUDIT_IDENTITY, entry.key_id, now).key_string())
        except RegistryError:
            continue  # expired, revoked or not yet valid: not offered for checking new proofs
    if not keys:
        raise ConfigError(f"the registry has no valid signing key for {AUDIT_IDENTITY}")
    return tuple(keys)


def tracker_app(settings: Settings, context: Context, store: TrackerStore, *, tiles_dir: Path | None,
                witness_keys: Sequence[str] = (), secure_cookie: bool = False) -> Starlette:
    """The tracker's app over ``store``, with tokens checked against the configured issuer."""
    for key in witness_keys:
        try:
            CosignatureVerifier.from_key_string(key)
        except KeyFormatError as exc:
            raise ConfigError(f"witness key {key!r} does not parse: {exc}") from exc
    keys = KeysShown(settings.audit_origin, log_keys(context)[0], tuple(witness_keys))
    config = TrackerConfig(keys=keys, tiles_dir=tiles_dir, secure_cookie=secure_cookie)
    agencies = {a.id: a.legal_name for a in context.registry.agencies}
    return make_app(store, TokenVerifier.from_settings(settings), context.pseudonymiser, agencies, config)
