"""Dead letters: a record a connector cannot pass on goes to ``exchange.quarantine`` with the connector, the stage
and the reason, and its original bytes, so nothing is lost and the stream goes on.

The record is an ``exchange.quarantine`` CloudEvent like the router's (source ``connector:<name>``), with headers
in the spirit of Kafka Connect's ``__connect.errors.*`` (KIP-298): ``exchange.errors.connector``, ``.stage``,
``.reason``. Its place is ``source:<connector>`` and the source's offset (as the original key).
"""

from __future__ import annotations

from datetime import UTC, datetime

from exchange.envelope import format_time, uuid7
from exchange.envelope.attributes import CONTENT_TYPE, ce_headers, dataschema_uri
from exchange.kafka import Headers
from exchange.schemas import Catalogue

__all__ = ["DEAD_LETTER_TOPIC", "DeadLetter", "DeadLetters"]

DEAD_LETTER_TOPIC = "exchange.quarantine"
QUARANTINE_TYPE = "exchange.quarantine"
INLINE_LIMIT = 1024 * 1024
"""The largest original copied into a dead letter (its topic allows 2 MiB records)."""

DeadLetter = tuple[bytes, bytes | None, Headers]
"""A dead letter's value, key and headers, ready to produce."""


class DeadLetters:
    """Encodes the dead letters of one connector."""

    def __init__(self, connector: str, catalogue: Catalogue) -> None:
        self.connector = connector
        self._schema = catalogue.current(QUARANTINE_TYPE)
        self._source = f"connector:{connector}"

    def letter(self, stage: str, reason_code: str, detail: str, *, original: bytes | None,
               place: bytes | None, offset: int = -1) -> DeadLetter:
        """The dead letter of one record at ``stage`` (``poll``, ``validate``, ``write`` …); ``place`` names where
        the record came from (the source's offset, or the delivery's key)."""
        now = datetime.now(UTC)
        entry_id = uuid7(int(now.timestamp() * 1000))
        detail = detail[:2000]
        if original is not None and len(original) > INLINE_LIMIT:
            detail = f"{detail[:1800]} (the original, {len(original)} bytes, is too large to copy)"
            original = None
        value = self._schema.encode({
            "quarantine_id": entry_id,
            "quarantined_at": now,
            "quarantined_by": self._source,
            "reason_code": reason_code,
            "detail": detail,
            "original_topic": f"source:{self.connector}",
            "original_partition": 0,
            "original_offset": offset,
            "original_key": place,
            "original_headers": [],
            "original_value": original,
        })
        headers = ce_headers(entry_id, self._source, QUARANTINE_TYPE, format_time(now), content_type=CONTENT_TYPE,
                             dataschema=dataschema_uri(QUARANTINE_TYPE, self._schema.revision,
                                                       self._schema.fingerprint))
        headers += [("exchange.errors.connector", self.connector.encode()),
                    ("exchange.errors.stage", stage.encode()), ("exchange.errors.reason", reason_code.encode())]
        return value, place, headers
