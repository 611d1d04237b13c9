"""The demo's data tracker: the sequenced log indexed, the tracker served on localhost, and a token for the demo
citizen whose consent was granted and then revoked, with a check that their page lists the delivery made during
the grant and none of the denied ones."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from exchange.context import Context
from exchange.errors import ExchangeError
from exchange.kafka.local import free_port
from exchange.settings import Settings
from exchange.tracker.indexer import Indexer
from exchange.tracker.runtime import open_store, tracker_app
from exchange.tracker.store import TrackerStore
from exchange.tracker.tokens import ensure_demo_issuer_key, mint_token

__all__ = ["DemoTracker", "start_tracker"]

TOKEN_LIFETIME = 8 * 3600


@dataclass
class DemoTracker:
    url: str
    token: str
    items: list[dict[str, Any]]
    """The rows the citizen's API lists."""
    server: uvicorn.Server
    thread: threading.Thread
    store: TrackerStore
    facts: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.store.close()


def start_tracker(settings: Settings, context: Context, workdir: Path, person: str, *, tiles: Path,
                  witness_key: str, say: Callable[[str], None]) -> DemoTracker:
    """Index the demo's log, serve the tracker on a free localhost port and mint the citizen's token."""
    folder = workdir / "tracker"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("demo-*.sqlite*"):
        old.unlink()  # the indexes of earlier runs, whose topics are gone
    issuer = ensure_demo_issuer_key(settings.keystore)
    jwk = Path(settings.keystore) / "tracker-issuer.jwt-issuer.jwk.json"
    settings = settings.model_copy(update={
        "tracker_database": folder / f"{settings.topic_prefix.rstrip('.')}.sqlite", "tracker_issuer_key": str(jwk)})
    store = open_store(settings)
    indexer = Indexer(store, settings, context.registry, context.catalogue)
    try:
        indexer.catch_up()
    finally:
        indexer.close()
    say(f"data tracker: indexed {indexer.stats.indexed} access-log entries into {settings.tracker_database}")
    app = tracker_app(settings, context, store, tiles_dir=tiles, witness_keys=[witness_key])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           server_header=False, log_level="warning"))
    thread = threading.Thread(target=server.run, name="demo-tracker", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ExchangeError("the demo's data tracker did not start")
        time.sleep(0.02)  # polling uvicorn's started flag, the condition checked above
    token = mint_token(issuer, settings.tracker_issuer, person, settings.tracker_audience, TOKEN_LIFETIME,
                       person_claim=settings.tracker_person_claim)
    url = f"http://127.0.0.1:{port}/"
    items = _usages(url, token)
    return DemoTracker(url, token, items, server, thread, store,
                       {"url": url, "rows": len(items), "database": str(settings.tracker_database)})


def _usages(url: str, token: str) -> list[dict[str, Any]]:
    """Every row the citizen's API lists, as the citizen would read them."""
    items: list[dict[str, Any]] = []
    while True:
        request = urllib.request.Request(f"{url}api/v1/usages?limit=200&offset={len(items)}",  # noqa: S310 - ours
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - a localhost URL of ours
            page = json.loads(answer.read())
        items.extend(page["items"])
        if not page["items"] or len(items) >= page["total"]:
            return items

