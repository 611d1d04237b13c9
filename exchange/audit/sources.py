"""What re-evaluating the log reads from the cluster: the published policy bundles, the consent log and the
ingress records the decisions were about (the edge around :mod:`exchange.audit.reevaluate`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from exchange.audit.reevaluate import ConsentReplay, Reevaluator
from exchange.audit.verify import Discrepancy, IntegrityReport, LeafHashes, verify_integrity
from exchange.consent.signing import ConsentVerifier
from exchange.consent.wire import CONSENT_TOPIC
from exchange.crypto.note import Verifier, Verifiers
from exchange.envelope import EnvelopeVerifier, ReceivedRecord
from exchange.gcpause import collector_paused
from exchange.kafka import ConsumedRecord, ConsumeError, read_ranges, read_to_end
from exchange.registry import Registry
from exchange.router.service import BUNDLE_TOPIC
from exchange.schemas import Catalogue, RecordSchema, SchemaError
from exchange.settings import Settings

__all__ = [
    "DECISION_TYPE",
    "IngressEvents",
    "LogSources",
    "decision_checker",
    "read_consent_records",
    "verify_decisions",
]

DECISION_TYPE = "exchange.decision"
_WINDOW = 20_000


class IngressEvents:
    """Ingress records by place, fetched ahead for a window of entries at a time (:meth:`plan`: every partition
    the window names in one read); a place not planned is read on its own. None for a record no longer
    retained."""

    def __init__(self, settings: Settings, bootstrap: str | None = None) -> None:
        self._settings, self._bootstrap = settings, bootstrap
        self._records: dict[tuple[str, int, int], ConsumedRecord | None] = {}

    def plan(self, places: Iterable[tuple[str, int, int]]) -> None:
        """Fetch the records at ``places`` (and forget those fetched before)."""
        wanted = set(places)
        ranges: dict[tuple[str, int], tuple[int, int]] = {}
        for topic, partition, offset in wanted:
            lo, hi = ranges.get((topic, partition), (offset, offset + 1))
            ranges[(topic, partition)] = (min(lo, offset), max(hi, offset + 1))
        self._records = dict.fromkeys(wanted)
        try:
            records = read_ranges(ranges, settings=self._settings, bootstrap=self._bootstrap)
        except ConsumeError:
            return  # a topic is gone: each place is then read on its own, and is found missing
        for record in records:
            place = (record.topic, record.partition, record.offset)
            if place in self._records:
                self._records[place] = record

    def event(self, topic: str, partition: int, offset: int) -> ReceivedRecord | None:
        place = (topic, partition, offset)
        if place not in self._records:
            try:
                found = read_ranges({(topic, partition): (offset, offset + 1)}, settings=self._settings,
                                    bootstrap=self._bootstrap)
            except ConsumeError:
                found = []  # the topic itself is gone: nothing of it is retained
            self._records[place] = next((r for r in found if r.offset == offset), None)
        return self._records[place]

    def close(self) -> None:
        self._records = {}


def read_consent_records(settings: Settings, bootstrap: str | None = None
                         ) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    """Every record of the consent log, ``{partition: [(offset, key, value), ...]}`` in offset order."""
    out: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {}
    for record in read_to_end(CONSENT_TOPIC, settings=settings, bootstrap=bootstrap):
        out.setdefault(record.partition, []).append((record.offset, record.key, record.value))
    for records in out.values():
        records.sort(key=lambda r: r[0])
    return out


@dataclass
class LogSources:
    """What the cluster holds for re-evaluating the log: the bundles on ``policy.bundles``, the consent log and
    the ingress records while retained. Close it when done."""

    catalogue: Catalogue
    bundles: list[bytes]
    consents: ConsentReplay
    events: IngressEvents
    envelope: EnvelopeVerifier
    decoded: dict[bytes, tuple[RecordSchema, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, settings: Settings, registry: Registry, catalogue: Catalogue,
             bootstrap: str | None = None) -> LogSources:
        bundles = [r.value or b"" for r in read_to_end(BUNDLE_TOPIC, settings=settings, bootstrap=bootstrap)]
        consents = ConsentReplay(catalogue, ConsentVerifier(registry), read_consent_records(settings, bootstrap))
        return cls(catalogue, bundles, consents, IngressEvents(settings, bootstrap),
                   EnvelopeVerifier(registry, catalogue))

    def planned(self, entries: Sequence[tuple[int, bytes]], window: int = _WINDOW) -> Iterator[tuple[int, bytes]]:
        """``entries`` unchanged, with the ingress records each window of them names fetched ahead (and the
        window's entries decoded once, in :attr:`decoded`, for :func:`decision_checker`)."""
        for start in range(0, len(entries), window):
            chunk = entries[start:start + window]
            self.decoded.clear()
            places = []
            for _, value in chunk:
                try:
                    schema, decoded = self.catalogue.decode(value)
                except SchemaError:
                    continue  # not a record: the check reports it
                self.decoded[value] = (schema, decoded)
                if schema.type_name == DECISION_TYPE:
                    places.append((decoded["ingress_topic"], decoded["ingress_partition"], decoded["ingress_offset"]))
            self.events.plan(places)
            yield from chunk

    def verify(self, entries: Sequence[tuple[int, bytes]], checkpoints: Sequence[bytes | str],
               verifiers: Verifiers | Iterable[Verifier], origin: str, *, reevaluator: Reevaluator | None = None,
               progress: Callable[[int], None] | None = None, reference: LeafHashes | None = None) -> IntegrityReport:
        """:func:`verify_decisions` over these sources: the events each window of entries names fetched
        ahead, every entry decoded once; with a fresh :meth:`reevaluator` unless one is given."""
        return verify_decisions(self.planned(entries), checkpoints, verifiers, origin, catalogue=self.catalogue,
                                reevaluator=reevaluator or self.reevaluator(), progress=progress,
                                reference=reference, decoded=self.decoded)

    def reevaluator(self) -> Reevaluator:
        """A fresh re-evaluator over these sources (its count starts at 0)."""
        return Reevaluator(self.catalogue, self.bundles, self.consents, events=self.events, envelope=self.envelope)

    def close(self) -> None:
        self.events.close()


def verify_decisions(entries: Iterable[tuple[int, bytes]], checkpoints: Sequence[bytes | str],
                     verifiers: Verifiers | Iterable[Verifier], origin: str, *, catalogue: Catalogue,
                     reevaluator: Reevaluator | None, progress: Callable[[int], None] | None = None,
                     reference: LeafHashes | None = None,
                     decoded: Mapping[bytes, tuple[RecordSchema, Any]] | None = None) -> IntegrityReport:
    """:func:`~exchange.audit.verify.verify_integrity` with every entry a decision record and, given a
    re-evaluator, every decision taken again; the report counts the decisions re-evaluated. ``decoded`` are
    entries decoded already (:meth:`LogSources.planned`)."""
    with collector_paused(freeze=True):  # the log and its sources, read before, frozen out of its scans
        report = verify_integrity(entries, checkpoints, verifiers, origin, check_entry=decision_checker(
            catalogue, reevaluator, decoded), progress=progress, reference=reference)
    return report if reevaluator is None else replace(report, decisions_reevaluated=reevaluator.reevaluated)


def decision_checker(catalogue: Catalogue, reevaluator: Reevaluator | None,
                     decoded: Mapping[bytes, tuple[RecordSchema, Any]] | None = None
                     ) -> Callable[[int, bytes], Discrepancy | str | None]:
    """``check_entry`` for :func:`~exchange.audit.verify.verify_integrity`: every entry must be an
    ``exchange.decision`` record, and (given a re-evaluator) a decision its bundle and consent support."""
    known = decoded if decoded is not None else {}

    def check(index: int, value: bytes) -> Discrepancy | str | None:
        found = known.get(value)
        if found is None:
            try:
                found = catalogue.decode(value)
            except SchemaError as exc:
                return str(exc)
        schema, record = found
        if schema.type_name != DECISION_TYPE:
            return f"a {schema.type_name} record"
        return None if reevaluator is None else reevaluator.check(index, _as_mapping(record))

    return check


def _as_mapping(decoded: Any) -> Mapping[str, Any]:
    return decoded if isinstance(decoded, Mapping) else {}
