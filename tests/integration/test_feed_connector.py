"""The 50-line example connector of docs/connectors.md (a register's changes feed over HTTP) passes the kit."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from connectors.feed import FeedSource, FeedSourceConfig
from connectors.sdk import ConnectorConfig, Offset, Source
from connectors.sdk.testing import SourceConformance, canonical
from exchange.schemas.samples import sample_record

TYPE = "population.address-changed"
AGENCY = "population-registry"


def _serve(feed: Path) -> str:
    """A register's feed over the JSON lines of ``feed`` (one change each), on a free port; its URL."""

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            after, limit = int(query["after"][0]), int(query["limit"][0])
            lines = feed.read_text(encoding="utf-8").splitlines() if feed.exists() else []
            changes = [json.loads(line) for line in lines]
            body = json.dumps({"last": len(changes), "changes": changes[after:after + limit]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/changes"


class TestFeedSourceConformance(SourceConformance):
    agency = AGENCY
    record_type = TYPE

    def make(self, directory: Path) -> tuple[Source, ConnectorConfig]:
        self.feed = directory / "feed.jsonl"
        config = FeedSourceConfig(name="feed-kit", agency=AGENCY, url=_serve(self.feed), limit=50)
        return FeedSource(config), config

    def _append(self, changes: list[dict[str, Any]]) -> None:
        with self.feed.open("a", encoding="utf-8") as out:
            for change in changes:
                out.write(json.dumps(change) + "\n")

    def _seq(self) -> int:
        return len(self.feed.read_text(encoding="utf-8").splitlines()) if self.feed.exists() else 0

    def inject(self, n: int) -> list[dict[str, Any]]:
        first = self._seq()
        records = [sample_record(TYPE, random.Random(first + i)) for i in range(n)]
        self._append([{"seq": first + i + 1, "type": TYPE, "record": json.loads(canonical(r))}
                      for i, r in enumerate(records)])
        return records

    def inject_bad(self) -> None:
        self._append([{"seq": self._seq() + 1, "type": TYPE, "record": {"person_id": 7}}])

    def future_offset(self) -> Offset:
        return {"seq": 10**6}
