"""The tracker's indexer: a consumer of the sequenced access log (``audit.log``) that fills the index.

It reads ``audit.log`` (one partition, read_committed, assigned: no group) from the offset the index last
recorded, turns each entry into an :class:`~exchange.tracker.store.AccessRow` and stores a batch and the position
after it in one database transaction, so a crash at any point resumes at a batch boundary and indexing the same
entries again changes nothing. What an entry says is copied as it is; what it does not say comes from places an
auditor can check too: the recipient's legal name from the registry, and how long an agreement hides its
deliveries (``notify_subject_after``) from the policy bundle the entry names on ``policy.bundles``.

Nothing in the log stops it. An entry that is not a decision record is indexed as ``UNREADABLE`` with the reason,
for auditors; an index out of sequence (the sequencer guarantees none) is logged and counted. A PERMIT under a
bundle that cannot be read is hidden from the citizen (fail closed: it might be an investigation's) until a
rebuild finds the bundle.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exchange.audit.names import H_INDEX, LOG_TOPIC, LOOKUP_TYPE
from exchange.kafka import ConsumedRecord, Consumer, KafkaError, read_to_end
from exchange.log import get_logger
from exchange.metrics import TRACKER_INDEXED, TRACKER_NEXT_INDEX
from exchange.policy.bundle import read_bundle
from exchange.policy.errors import PolicyError
from exchange.policy.models import period_seconds
from exchange.registry import Registry
from exchange.router.service import BUNDLE_TOPIC
from exchange.schemas import Catalogue, SchemaError
from exchange.settings import Settings
from exchange.tracker._decision import MALFORMED_ENTRY, decision_header, read_decision
from exchange.tracker.store import AccessRow, Position, StoreError, TrackerStore

__all__ = ["NEVER", "HiddenPeriods", "Indexer", "IndexerStats", "entry_row"]

DECISION_TYPE = "exchange.decision"
NEVER = 2**62
"""``visible_from`` of a row that must stay hidden until a rebuild decides otherwise."""

_log = get_logger("exchange.tracker.indexer")
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.5, 30.0


class HiddenPeriods:
    """How long each agreement of each published bundle hides its deliveries, in microseconds (None: not at
    all); :data:`NEVER` for a bundle that cannot be found or read. ``load`` returns every published bundle."""

    def __init__(self, load: Callable[[], Iterable[bytes]]) -> None:
        self._load = load
        self._periods: dict[str, dict[str, int]] = {}

    def _refresh(self) -> None:
        for data in self._load():
            try:
                bundle = read_bundle(data)
            except PolicyError:
                continue  # an unreadable bundle hides what names it (see below)
            self._periods[bundle.id] = {a.id: period_seconds(a.notify_subject_after) * 1_000_000
                                        for a in bundle.policy_set.agreements if a.notify_subject_after}

    def period(self, bundle_id: str, agreement_id: str | None) -> int | None:
        found = self._periods.get(bundle_id)
        if found is None:
            self._refresh()  # a bundle published since: read the topic again (once per unknown id)
            found = self._periods.get(bundle_id)
            if found is None:
                self._periods[bundle_id] = found = {"*": NEVER}
        if "*" in found:
            return NEVER
        return None if agreement_id is None else found.get(agreement_id)


def entry_row(index: int, value: bytes, catalogue: Catalogue, names: Mapping[str, str],
              periods: HiddenPeriods) -> AccessRow:
    """The index row of the entry ``value`` at log ``index``."""
    header = decision_header(catalogue)
    if header is not None and value[:len(header)] == header and type(value) is bytes:
        try:
            (decided, subject_ref, recipient, event_type, event_id, agreement_id, bundle, purpose, legal_basis,
             consent_ref, outcome, fields, reasons) = read_decision(value)
        except MALFORMED_ENTRY:
            pass  # the catalogue's decoder below names what is wrong with it
        else:
            # Positional, in AccessRow's field order: half the cost of keywords, once per entry.
            return AccessRow(index, subject_ref, decided, recipient, names.get(recipient) if recipient else None,
                             event_type, event_id, agreement_id, purpose, legal_basis, consent_ref, outcome, fields,
                             reasons, _visible(outcome, event_type, bundle, agreement_id, decided=decided,
                                               periods=periods))
    try:
        schema, record = catalogue.decode(value)
    except SchemaError as exc:
        return _unreadable(index, f"not a decision record: {exc}")
    if schema.type_name != DECISION_TYPE or not isinstance(record, dict):
        return _unreadable(index, f"a {schema.type_name} record, not a decision")
    decided = _micros(record["decided_at"])
    subject = record["subject_ref"]
    recipient, event_type, outcome = record["recipient"], record["event_type"], record["outcome"]
    return AccessRow(
        log_index=index, subject_ref=subject.decode("ascii", "replace") if isinstance(subject, bytes) else None,
        decided_at=decided, recipient=recipient, recipient_name=names.get(recipient) if recipient else None,
        record_type=event_type, event_id=record["event_id"], agreement_id=record["agreement_id"],
        purpose=record["purpose"], legal_basis=record["legal_basis"], consent_ref=record["consent_ref"],
        outcome=outcome, fields=tuple(record["fields_released"]), reasons=tuple(record["reason_codes"]),
        visible_from=_visible(outcome, event_type, record["bundle_id"], record["agreement_id"], decided=decided,
                              periods=periods))


def _visible(outcome: str, event_type: str | None, bundle: str, agreement_id: str | None, *, decided: int,
             periods: HiddenPeriods) -> int:
    """When the subject may see the entry: at once, after its agreement's hiding period, or :data:`NEVER`."""
    if outcome != "PERMIT" or event_type == LOOKUP_TYPE:  # a lookup rests on no bundle
        return decided
    hidden = periods.period(bundle, agreement_id)
    return NEVER if hidden == NEVER else decided + (hidden or 0)


def _unreadable(index: int, reason: str) -> AccessRow:
    return AccessRow(index, None, 0, None, None, None, None, None, None, None, None, "UNREADABLE", (), (reason,), 0)


def _micros(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp()) * 1_000_000 + value.microsecond
    return int(value)


@dataclass
class IndexerStats:
    indexed: int = 0
    """Entries indexed by this process."""
    next_index: int = 0
    unreadable: int = 0
    out_of_sequence: int = 0
    caught_up: bool = False
    """True once the indexer has read to the end of the log at least once."""


class Indexer:
    """Fills ``store`` from ``audit.log``: :meth:`catch_up` reads to the end once, :meth:`run` follows the log
    until :meth:`stop`."""

    def __init__(self, store: TrackerStore, settings: Settings, registry: Registry, catalogue: Catalogue, *,
                 batch: int = 5000, poll_timeout: float = 0.5, bootstrap: str | None = None) -> None:
        self.store, self._settings, self._catalogue = store, settings, catalogue
        self._names = {a.id: a.legal_name for a in registry.agencies}
        self._periods = HiddenPeriods(
            lambda: [r.value or b"" for r in read_to_end(BUNDLE_TOPIC, settings=settings, bootstrap=bootstrap)])
        self._batch, self._poll_timeout, self._bootstrap = batch, poll_timeout, bootstrap
        self.stats = IndexerStats()
        self._stopping = threading.Event()
        self._consumer: Consumer | None = None
        self._position = Position()

    def _open(self) -> Consumer:
        if self._consumer is None:
            self._position = self.store.position()
            self.stats.next_index = self._position.next_index
            self._consumer = Consumer("tracker-indexer", settings=self._settings, bootstrap=self._bootstrap)
            self._consumer.assign([(LOG_TOPIC, 0, self._position.next_offset)])
        return self._consumer

    def remaining(self) -> int:
        """About how many entries are left to index (records after the position; control records included)."""
        consumer = self._open()
        end = consumer.end_offsets([(LOG_TOPIC, 0)]).get((LOG_TOPIC, 0), 0)
        return max(0, end - self._position.next_offset)

    def step(self) -> int:
        """Index one batch, if there is one; how many entries it held."""
        rows, after = self._read()
        if rows is None:
            self._position = Position(self._position.next_index, max(self._position.next_offset, after.next_offset))
            return 0
        self.store.add(rows, after)
        return self._indexed(rows, after)

    def _read(self) -> tuple[list[AccessRow] | None, Position]:
        """One batch's rows (None: no records came) and the position after it."""
        consumer = self._open()
        records = consumer.poll_batch(self._batch, self._poll_timeout)
        # The consumer's position is past the transaction markers too, which no record shows.
        read_to = max(consumer.positions([(LOG_TOPIC, 0)]).get((LOG_TOPIC, 0), 0),
                      records[-1].offset + 1 if records else 0)
        if not records:
            return None, Position(self._position.next_index, read_to)
        rows = [row for row in map(self._row, records) if row is not None]
        return rows, Position(self.stats.next_index, read_to)

    def _indexed(self, rows: list[AccessRow], after: Position) -> int:
        self._position = after
        self.stats.indexed += len(rows)
        for outcome, count in Counter(row.outcome for row in rows).items():
            TRACKER_INDEXED.labels(outcome).inc(count)
        TRACKER_NEXT_INDEX.set(after.next_index)
        return len(rows)

    def _row(self, record: ConsumedRecord) -> AccessRow | None:
        found = dict(record.headers).get(H_INDEX, b"")
        index = int(found) if found.isdigit() else -1
        expected = self.stats.next_index
        if index < expected:
            if index < 0:
                self.stats.out_of_sequence += 1
                _log.error("access-log entry without an index", offset=record.offset)
            return None  # read before (a re-read after a crash), or not an entry at all
        if index > expected:
            self.stats.out_of_sequence += 1
            _log.error("access-log index out of sequence", expected=expected, found=index, offset=record.offset)
        row = entry_row(index, record.value or b"", self._catalogue, self._names, self._periods)
        if row.outcome == "UNREADABLE":
            self.stats.unreadable += 1
            _log.warning("unreadable access-log entry", index=index, reason=row.reasons[0])
        self.stats.next_index = index + 1
        return row

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Index everything up to the log's end as it is now; how many entries were indexed."""
        consumer = self._open()
        end = consumer.end_offsets([(LOG_TOPIC, 0)]).get((LOG_TOPIC, 0), 0)
        done = 0
        while self._position.next_offset < end and not self._stopping.is_set():
            done += self.step()
            if progress is not None:
                progress(done)
        self.stats.caught_up = True
        return done

    def run(self) -> None:
        """Follow the log until :meth:`stop`. Kafka or the database failing is waited out with a growing pause,
        then reading resumes from the position the index committed: nothing is skipped, nothing indexed twice."""
        backoff = _FIRST_BACKOFF_S
        try:
            while not self._stopping.is_set():
                try:
                    if not self.stats.caught_up:
                        self.catch_up()
                    self.step()
                except (KafkaError, StoreError) as exc:
                    _log.warning("indexing paused", error=str(exc), retry_in_s=backoff)
                    self.close()  # reopened from the position the index committed, the batch is read again
                    self._stopping.wait(backoff)
                    backoff = min(_MAX_BACKOFF_S, backoff * 2)
                else:
                    backoff = _FIRST_BACKOFF_S
        finally:
            self.close()

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
