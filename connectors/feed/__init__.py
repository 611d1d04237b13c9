"""A register's changes feed over HTTP as a source, in under 50 lines (docs/connectors.md, "A new connector"):
``GET {url}?after=N&limit=M`` answers ``{"last": L, "changes": [{"seq": …, "type": …, "record": {…}}, …]}``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urlencode
from urllib.request import urlopen

from connectors.sdk import BadRecord, ConnectorConfig, Offset, OffsetError, Retryable, Source, SourceRecord
from connectors.sdk.jsonrecord import FieldProblem, record_from_json
from exchange.context import Context
from exchange.schemas import SchemaError


class FeedSourceConfig(ConnectorConfig):
    kind: Literal["feed"] = "feed"
    agency: str
    url: str
    limit: int = 500


class FeedSource(Source):
    def __init__(self, config: FeedSourceConfig) -> None:
        self.config, self.catalogue = config, Context().catalogue

    def poll(self, after: Offset | None) -> Iterator[SourceRecord]:
        seq = 0 if after is None else int(after["seq"])
        query = urlencode({"after": seq, "limit": self.config.limit})
        try:
            with urlopen(f"{self.config.url}?{query}", timeout=10) as answer:  # noqa: S310 - the configured URL
                page = json.load(answer)
        except OSError as exc:
            raise Retryable(f"the feed does not answer: {exc}") from exc
        if seq > page["last"]:
            raise OffsetError(f"the committed offset {seq} is past the feed's last change {page['last']}")
        for change in page["changes"]:
            yield SourceRecord(change["type"], self._values(change), {"seq": change["seq"]})

    def _values(self, change: dict[str, Any]) -> dict[str, Any]:
        try:
            values, problems = record_from_json(self.catalogue.current(change["type"]), change["record"])
        except SchemaError as exc:  # a type the catalogue does not have
            values, problems = {}, [FieldProblem("type", str(exc))]
        if problems:
            raise BadRecord(f"change {change['seq']}: {problems[0].field}: {problems[0].problem}",
                            offset={"seq": change["seq"]}, original=json.dumps(change).encode())
        return values
