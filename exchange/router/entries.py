"""What the router writes besides deliveries: access-log entries and quarantine records.

Access-log entries (``exchange.decision``) carry pseudonyms only: the subject reference is the ingress key (the
keyed-HMAC pseudonym) for a verified event, and nothing for a REJECT, whose key was never verified. A quarantine
record (``exchange.quarantine``) carries the original key, headers and value unchanged, with the reason.

Every record the router writes is a CloudEvent in the Kafka binding's binary mode, like the events it routes:
each writer method returns the value and its ``ce_*`` headers (source ``exchange-router``, the record's type,
its own UUIDv7 id, the time, the schema it is written with).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from exchange.envelope import VerificationError, VerifiedEvent, format_time, uuid7
from exchange.envelope.attributes import (
    CONTENT_TYPE,
    H_ID,
    H_SOURCE,
    H_TIME,
    H_TYPE,
    ce_headers,
    dataschema_uri,
)
from exchange.kafka import Headers
from exchange.policy import Decision
from exchange.schemas import Catalogue, RecordSchema, SchemaError

__all__ = ["ROUTER_SOURCE", "EntryWriter", "Record", "decision_values", "router_headers"]

ROUTER_SOURCE = "exchange-router"
QUARANTINE_INLINE_LIMIT = 1536 * 1024
"""The largest original a quarantine record copies (its topic allows 2 MiB records)."""
Record = tuple[bytes, Headers]
"""A value to produce and its CloudEvents headers."""

DECISION_TYPE = "exchange.decision"
QUARANTINE_TYPE = "exchange.quarantine"
_UUID = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# The exchange.decision layout the fast path relies on: an entry's own fields, then the event's, then the
# decision's, then the facts it rests on. A revision that changes it makes EntryWriter encode whole records.
_ENTRY_FIELDS = ("decision_id", "decided_at", "router_id")
_EVENT_FIELDS = ("event_id", "event_type", "event_source", "ingress_topic", "ingress_partition", "ingress_offset",
                 "event_digest", "subject_ref")
_DECISION_FIELDS = ("recipient", "agreement_id", "agreement_version", "bundle_id", "purpose", "legal_basis",
                    "consent_ref", "outcome", "reason_codes", "fields_released")
_FACT_FIELDS = ("event_time", "restrictions_held", "consent_offset")
_CACHE_LIMIT = 4096


class EntryWriter:
    """Encodes access-log entries and quarantine records for one router.

    An ``exchange.decision`` record is the concatenation of its fields' encodings, so a decision's entry is
    joined from pieces encoded as rarely as they change: the decision's own fields once per distinct
    :class:`~exchange.policy.Decision` (the engine hands out shared objects), the event's once per event (its
    type, source and topic once per stream), the time once per batch and only the decision id per entry. The
    bytes are those of encoding the whole record; a value that does not encode is reported exactly as a
    whole-record encoding reports it.
    """

    def __init__(self, router_id: str, catalogue: Catalogue, known_sources: frozenset[str],
                 known_types: frozenset[str]) -> None:
        self.router_id = router_id
        self._decision: RecordSchema = catalogue.current(DECISION_TYPE)
        self._quarantine: RecordSchema = catalogue.current(QUARANTINE_TYPE)
        self._sources = known_sources
        self._types = known_types
        self._joined = self._decision.field_names == _ENTRY_FIELDS + _EVENT_FIELDS + _DECISION_FIELDS + _FACT_FIELDS
        self._header = self._decision.header
        self._router_bytes: bytes | None = None
        self._now: datetime | None = None
        self._now_ms = 0
        self._now_bytes = b""
        self._event: tuple[VerifiedEvent, tuple[str, int, int], tuple[str, ...], int | None] | None = None
        self._event_bytes = b""
        self._facts_bytes = b""
        self._streams: dict[tuple[str, str, str], bytes] = {}
        # Keyed by id() with the decision held, so the id stays its own; consent-based decisions are new objects
        # per event and share their tail by content (the version's type too: True == 1, but only 1 encodes).
        self._tails: dict[int, tuple[Decision, bytes]] = {}
        self._shared: dict[tuple[Decision, type[object]], bytes] = {}
        self._now_time = b""
        self._decision_ce = _constant_headers(self._decision)
        self._quarantine_ce = _constant_headers(self._quarantine)

    def _clock(self, now: datetime) -> None:
        """The batch's time in each form the records need, computed once per batch."""
        if now != self._now:
            if self._joined:
                self._now_bytes = self._decision.encode_field("decided_at", now)
            self._now_ms, self._now = int(now.timestamp() * 1000), now
            self._now_time = format_time(now).encode()

    def _headers(self, constant: tuple[tuple[str, bytes], ...], entry_id: str) -> Headers:
        spec, source, kind, schema, content = constant
        return [spec, (H_ID, entry_id.encode()), source, kind, (H_TIME, self._now_time), schema, content]

    def decision(self, event: VerifiedEvent, decision: Decision, *, topic: str, partition: int, offset: int,
                 now: datetime, held: tuple[str, ...] = (), consent_offset: int | None = None) -> Record:
        """The access-log entry of one decision about a verified event; ``held`` are the restrictions whose
        conditions held on it and ``consent_offset`` how much of its consent partition the decision saw."""
        place = (topic, partition, offset)
        self._clock(now)
        entry_id = uuid7(self._now_ms)
        headers = self._headers(self._decision_ce, entry_id)
        if self._joined:
            try:
                return self._joined_entry(event, decision, (place, held, consent_offset), entry_id), headers
            except SchemaError:
                pass  # encode the whole record below: it reports the bad field as it always has
        record = self._record(event, decision, place, now, entry_id)
        record.update(event_time=event.time, restrictions_held=list(held), consent_offset=consent_offset)
        return self._decision.encode(record), headers

    def _joined_entry(self, event: VerifiedEvent, decision: Decision,
                      facts: tuple[tuple[str, int, int], tuple[str, ...], int | None], entry_id: str) -> bytes:
        field = self._decision.encode_field
        if self._router_bytes is None:
            self._router_bytes = field("router_id", self.router_id)
        place, held, consent_offset = facts
        known = self._event
        if known is None or known[0] is not event or known[1] != place or known[2] != held \
                or known[3] != consent_offset:
            topic, partition, offset = place
            a = event.attributes
            self._event_bytes = b"".join((
                field("event_id", a.id), self._stream(a.type, a.source, topic), field("ingress_partition", partition),
                field("ingress_offset", offset), field("event_digest", event.digest),
                field("subject_ref", event.key)))
            self._facts_bytes = b"".join((field("event_time", event.time), field("restrictions_held", list(held)),
                                          field("consent_offset", consent_offset)))
            self._event = (event, place, held, consent_offset)
        cached = self._tails.get(id(decision))
        tail = cached[1] if cached is not None and cached[0] is decision else self._tail(decision)
        return b"".join((self._header, field("decision_id", entry_id), self._now_bytes,
                         self._router_bytes, self._event_bytes, tail, self._facts_bytes))

    def _stream(self, record_type: str, source: str, topic: str) -> bytes:
        """The event type, source and ingress topic: the same for every event of one stream."""
        key = (record_type, source, topic)
        encoded = self._streams.get(key)
        if encoded is None:
            field = self._decision.encode_field
            encoded = b"".join((field("event_type", record_type), field("event_source", source),
                                field("ingress_topic", topic)))
            if len(self._streams) >= _CACHE_LIMIT:
                self._streams.clear()
            self._streams[key] = encoded
        return encoded

    def _tail(self, decision: Decision) -> bytes:
        content = (decision, type(decision.agreement_version))
        try:
            tail = self._shared.get(content)
        except TypeError:  # an unhashable value where the engine puts tuples: encode it, remember nothing
            return self._encode_tail(decision)
        if tail is None:
            tail = self._encode_tail(decision)
            if len(self._shared) >= _CACHE_LIMIT:
                self._shared.clear()
            self._shared[content] = tail
        if len(self._tails) >= _CACHE_LIMIT:
            self._tails.clear()
        self._tails[id(decision)] = (decision, tail)
        return tail

    def _encode_tail(self, decision: Decision) -> bytes:
        field = self._decision.encode_field
        values = decision_values(decision)
        return b"".join(field(name, values[name]) for name in _DECISION_FIELDS)

    def _record(self, event: VerifiedEvent, decision: Decision, place: tuple[str, int, int], now: datetime,
                entry_id: str) -> dict[str, Any]:
        attributes = event.attributes
        topic, partition, offset = place
        return {
            "decision_id": entry_id,
            "decided_at": now,
            "router_id": self.router_id,
            "event_id": attributes.id,
            "event_type": attributes.type,
            "event_source": attributes.source,
            "ingress_topic": topic,
            "ingress_partition": partition,
            "ingress_offset": offset,
            "event_digest": event.digest,
            "subject_ref": event.key,
            **decision_values(decision),
        }

    def reject(self, headers: Sequence[tuple[str, bytes]], error: VerificationError, *, bundle_id: str, topic: str,
               partition: int, offset: int, now: datetime) -> Record:
        """The access-log entry of a record that failed verification. Header values are kept only when they
        are well-formed and known (an event id that is a UUID, a registered source, a catalogued type): an
        unverified record may carry anything, and nothing personal may reach the log."""
        found = dict(headers)
        event_id = found.get(H_ID, b"")
        source = found.get(H_SOURCE, b"").decode(errors="replace")
        record_type = found.get(H_TYPE, b"").decode(errors="replace")
        self._clock(now)
        entry_id = uuid7(self._now_ms)
        return self._decision.encode({
            "decision_id": entry_id,
            "decided_at": now,
            "router_id": self.router_id,
            "event_id": event_id.decode() if _UUID.match(event_id) else None,
            "event_type": record_type if record_type in self._types else None,
            "event_source": source if source in self._sources else None,
            "ingress_topic": topic,
            "ingress_partition": partition,
            "ingress_offset": offset,
            "event_digest": None,
            "subject_ref": None,
            "recipient": None,
            "agreement_id": None,
            "agreement_version": None,
            "bundle_id": bundle_id,
            "purpose": None,
            "legal_basis": None,
            "consent_ref": None,
            "outcome": "REJECT",
            "reason_codes": [error.reason],
            "fields_released": [],
            "event_time": None,
            "restrictions_held": [],
            "consent_offset": None,
        }), self._headers(self._decision_ce, entry_id)

    def quarantine(self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]],
                   error: VerificationError, *, topic: str, partition: int, offset: int, now: datetime) -> Record:
        """The quarantine record: the original, unchanged, with why it was refused."""
        self._clock(now)
        entry_id = uuid7(self._now_ms)
        detail = str(error)[:2000]
        size = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers)
        if size > QUARANTINE_INLINE_LIMIT:
            # Too large to copy within the quarantine topic's record limit: it stays where it is, named by place.
            detail = f"{detail[:1800]} (the original, {size} bytes, is kept only at its place of origin)"
            key, value, headers = None, None, []
        record: dict[str, Any] = {
            "quarantine_id": entry_id,
            "quarantined_at": now,
            "quarantined_by": self.router_id,
            "reason_code": error.reason,
            "detail": detail,
            "original_topic": topic,
            "original_partition": partition,
            "original_offset": offset,
            "original_key": key,
            "original_headers": [{"name": k, "value": v} for k, v in headers],
            "original_value": value,
        }
        return self._quarantine.encode(record), self._headers(self._quarantine_ce, entry_id)


def _constant_headers(schema: RecordSchema) -> tuple[tuple[str, bytes], ...]:
    """The headers every record of ``schema`` carries alike (all but its id and time), in writing order."""
    spec, _, source, kind, _, dataschema, content = ce_headers(
        "", ROUTER_SOURCE, schema.type_name, "", content_type=CONTENT_TYPE,
        dataschema=dataschema_uri(schema.type_name, schema.revision, schema.fingerprint))
    return spec, source, kind, dataschema, content


def router_headers(record_type: str, now: datetime, content_type: str) -> Headers:
    """The CloudEvents headers of a router record outside the catalogue's schemas (policy bundles, seen ids)."""
    return ce_headers(uuid7(int(now.timestamp() * 1000)), ROUTER_SOURCE, record_type, format_time(now),
                      content_type=content_type)


def decision_values(decision: Decision) -> dict[str, Any]:
    """The decision's fields of an access-log entry."""
    return {
        "recipient": decision.recipient,
        "agreement_id": decision.agreement_id,
        "agreement_version": decision.agreement_version,
        "bundle_id": decision.bundle_id,
        "purpose": decision.purpose,
        "legal_basis": decision.legal_basis,
        "consent_ref": str(decision.consent_ref) if decision.consent_ref is not None else None,
        "outcome": decision.outcome,
        "reason_codes": list(decision.reasons),
        "fields_released": list(decision.fields) if decision.permitted else [],
    }
