"""Builders for the re-evaluation tests: the shipped catalogue and policies compiled into a bundle, signed ingress
events, consent records, and access-log entries written as the router writes them (its decide step, then
:class:`~exchange.router.entries.EntryWriter`, decoded back)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from exchange.audit.reevaluate import ConsentReplay, Reevaluator
from exchange.consent import ConsentLedger, ConsentVerifier, encode_artefact
from exchange.context import type_infos
from exchange.envelope import EnvelopeVerifier, VerifiedEvent, prepare, seal_events
from exchange.kafka import ConsumedRecord
from exchange.policy import (
    ConsentArtefact,
    ConsentStatus,
    ConsentView,
    Decision,
    EventFacts,
    PolicyIndex,
    compile_policies,
    conditions_held,
    decide,
    held_restrictions,
    load_policies,
)
from exchange.router.entries import EntryWriter
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.keys import ROOT, T0
from tests.unit.consent.support import artefact, next_version
from tests.unit.delivery.support import PSEUDO, SOURCES, Keys

__all__ = ["T0", "Events", "Made", "World"]

ConsentRecords = dict[int, list[tuple[int, bytes | None, bytes | None]]]


class Events:
    """An :class:`~exchange.audit.reevaluate.EventSource` over records held in memory (a place not held is gone)."""

    def __init__(self, records: Mapping[tuple[str, int, int], ConsumedRecord] | None = None) -> None:
        self.records = dict(records or {})
        self.asked: list[tuple[str, int, int]] = []

    def event(self, topic: str, partition: int, offset: int) -> ConsumedRecord | None:
        self.asked.append((topic, partition, offset))
        return self.records.get((topic, partition, offset))


class Made:
    """One routed event: its ingress record, the verified event and the entries (decoded) of its decisions."""

    def __init__(self, record: ConsumedRecord, event: VerifiedEvent, entries: list[dict[str, Any]]) -> None:
        self.record, self.event, self.entries = record, event, entries

    def entry(self, recipient: str, purpose: str | None = None) -> dict[str, Any]:
        """A copy of the entry of the decision for ``recipient`` (and ``purpose``, if it has several)."""
        found = [e for e in self.entries if e["recipient"] == recipient and purpose in (None, e["purpose"])]
        assert len(found) == 1, f"{len(found)} entries for {recipient} {purpose}"
        return dict(found[0])

    @property
    def place(self) -> tuple[str, int, int]:
        return self.record.topic, self.record.partition, self.record.offset


class World:
    """Fresh keys in the shipped registry, the shipped catalogue and policies, and a router's entry writer."""

    def __init__(self) -> None:
        self.keys = Keys()
        self.registry = self.keys.registry()
        self.catalogue = Catalogue.load(ROOT / "schemas")
        self.index: PolicyIndex = compile_policies(
            load_policies(ROOT / "policies"), type_infos(self.catalogue), [a.id for a in self.registry.agencies],
            self.registry.canonical())
        self.bundle = self.index.bundle.data
        self.envelope = EnvelopeVerifier(self.registry, self.catalogue)
        self.consent_verify = ConsentVerifier(self.registry)
        self.writer = EntryWriter("router-test", self.catalogue, frozenset(SOURCES.values()), frozenset(SOURCES))
        self._offsets: dict[int, int] = {}

    # --- ingress events and the router's decisions -------------------------------------------------------------

    def record(self, record_type: str, *, seed: int = 1, partition: int = 0, at: datetime = T0,
               **values: Any) -> tuple[ConsumedRecord, VerifiedEvent]:
        """One signed event of ``record_type`` (sample values, ``values`` overriding) as read from its ingress
        partition, at the next free offset, and its verification."""
        schema = self.catalogue.current(record_type)
        data = sample_record(record_type, random.Random(seed))
        data = {name: data[name] for name in schema.field_names} | values
        raw_key = data[schema.key_field]
        key = (PSEUDO.subject(raw_key) if schema.key_kind == "person" else raw_key).encode()
        source = SOURCES[record_type]
        prepared = prepare(schema, data, source=source, key=key, now=at)
        (envelope,) = seal_events(source, [prepared], self.keys.signers[source])
        offset = self._offsets.get(partition, 0)
        self._offsets[partition] = offset + 1
        record = ConsumedRecord(envelope.topic, partition, offset, envelope.key, envelope.value,
                                list(envelope.headers), int(at.timestamp() * 1000))
        return record, self.envelope.verify(record)

    def route(self, record_type: str, *, consent: ConsentView | None = None, consent_offset: int = 0,
              seed: int = 1, partition: int = 0, at: datetime = T0, **values: Any) -> Made:
        """What the router logs for one new event: every decision's entry, with the facts it rests on."""
        record, event = self.record(record_type, seed=seed, partition=partition, at=at, **values)
        facts = EventFacts(event.attributes.id, event.attributes.type, event.attributes.source, event.time,
                           event.key.decode() if event.schema.key_kind == "person" else None, event.record)
        fired = conditions_held(self.index, facts)
        view = consent if consent is not None else self.ledger({})
        decisions = decide(self.index, facts, view, fired)
        held = held_restrictions(self.index, record_type, fired)
        return Made(record, event, [self.entry(record, event, d, held, consent_offset) for d in decisions])

    def entry(self, record: ConsumedRecord, event: VerifiedEvent, decision: Decision, held: Sequence[str] = (),
              consent_offset: int | None = 0) -> dict[str, Any]:
        """The decoded access-log entry the router writes for ``decision``."""
        value, _ = self.writer.decision(event, decision, topic=record.topic, partition=record.partition,
                                        offset=record.offset, now=T0 + timedelta(seconds=1), held=tuple(held),
                                        consent_offset=consent_offset)
        return dict(self.catalogue.decode(value)[1])

    def encode(self, entry: Mapping[str, Any], revision: int | None = None) -> bytes:
        schema = self.catalogue.current("exchange.decision") if revision is None else \
            self.catalogue.revision("exchange.decision", revision)
        return schema.encode({name: entry[name] for name in schema.field_names})

    # --- consent -----------------------------------------------------------------------------------------------

    def consents(self, subject: str, *statuses: ConsentStatus, record_type: str = "tax.income-assessed",
                 **fields: Any) -> list[ConsentArtefact]:
        """Successive versions of one consent of ``subject``: granted, then each of ``statuses``."""
        signer = self.keys.signers["exchange-consent"]
        versions = [artefact(signer, subject=subject, record_types=(record_type,), **fields)]
        for status in statuses:
            versions.append(next_version(versions[-1], signer, status))
        return versions

    def consent_records(self, partitions: Mapping[int, Sequence[ConsentArtefact]]) -> ConsentRecords:
        """``{partition: [(offset, key, value), ...]}`` of the artefacts, as the consent log holds them."""
        out: ConsentRecords = {}
        for partition, artefacts in partitions.items():
            for offset, item in enumerate(artefacts):
                message = encode_artefact(self.catalogue, item)
                out.setdefault(partition, []).append((offset, message.key, message.value))
        return out

    def ledger(self, records: ConsentRecords, upto: Mapping[int, int] | None = None) -> ConsentLedger:
        """A consent ledger fed, like the router's, with each partition's records below ``upto`` (all if None)."""
        ledger = ConsentLedger(self.catalogue, self.consent_verify)
        for partition, rows in records.items():
            for offset, key, value in rows:
                if upto is None or offset < upto.get(partition, 0):
                    ledger.apply_record(partition, offset, key, value)
        return ledger

    def replay(self, records: ConsentRecords | None = None) -> ConsentReplay:
        return ConsentReplay(self.catalogue, self.consent_verify, records or {})

    def reevaluator(self, records: ConsentRecords | None = None, *, events: Events | None = None,
                    bundles: Sequence[bytes] | None = None) -> Reevaluator:
        return Reevaluator(self.catalogue, [self.bundle] if bundles is None else bundles, self.replay(records),
                           events=events, envelope=self.envelope)
