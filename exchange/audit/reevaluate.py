"""Re-evaluating the access log's decisions: does the bundle an entry names, with the consent state the decision
saw, give exactly the decision the entry records? Pure: bundles, consent records and ingress events are passed in
(from Kafka, or from an archive).

For each PERMIT or DENY entry:

- its bundle (by id) is compiled with the catalogue's types, exactly as the router compiled it;
- the event's facts come from the event itself while its ingress record is retained (verified again, and its
  digest and id checked against the entry's) and from the facts the entry records once it is gone: ``event_time``
  and ``restrictions_held``; while both exist, the recorded facts must be the event's;
- the consent state is that of the subject's consent partition (numbered like the ingress partition) replayed up
  to the entry's ``consent_offset``, the barrier the router had read to;
- the engine decides again, and the decision under the entry's agreement and recipient must equal the entry's:
  outcome, reasons, fields released, purpose, legal basis and consent reference. A DENY the router added when a
  delivery could not be sealed (``UNDELIVERABLE:…`` after the engine's PERMIT) releases less, and stands.

REJECT entries record a verification failure, not a decision: they are not taken again (nor counted), but one
that records anything only a decision has (a recipient, an agreement, a subject, fields) is refused.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from exchange.audit.names import LOOKUP_FIELDS, LOOKUP_PURPOSE, LOOKUP_REASON, LOOKUP_TYPE, TRACKER_IDENTITY
from exchange.audit.verify import Discrepancy
from exchange.consent.ledger import ConsentLedger
from exchange.context import type_infos
from exchange.envelope import EnvelopeVerifier, ReceivedRecord, VerificationError
from exchange.policy import (
    NO_CONSENTS,
    ConsentDecision,
    Decision,
    EventFacts,
    PolicyError,
    PolicyIndex,
    Verifier,
    compile_policies,
    conditions_held,
    decide,
    held_mask,
    held_restrictions,
    read_bundle,
)
from exchange.router.entries import decision_values
from exchange.schemas import Catalogue, SchemaError

__all__ = ["ConsentReplay", "EventSource", "Reevaluator"]

_COMPARED = ("outcome", "reason_codes", "fields_released", "purpose", "legal_basis", "consent_ref")
_UNDELIVERABLE = "UNDELIVERABLE:"
_NOT_IN_A_REJECT = ("recipient", "agreement_id", "agreement_version", "purpose", "legal_basis", "consent_ref",
                    "subject_ref", "event_digest", "event_time", "consent_offset")


class EventSource(Protocol):
    """Ingress records by place; None once a record is no longer retained."""

    def event(self, topic: str, partition: int, offset: int) -> ReceivedRecord | None: ...


class ConsentReplay:
    """The consent state of each partition of ``consent.events`` as of any offset, replayed from its records
    (``{partition: [(offset, key, value), ...]}`` in offset order). Moving forward applies only the records
    between; going back replays the partition from its start."""

    def __init__(self, catalogue: Catalogue, verify: Verifier,
                 records: Mapping[int, Sequence[tuple[int, bytes | None, bytes | None]]]) -> None:
        self._catalogue = catalogue
        self._verify = verify
        self._records = {p: list(rs) for p, rs in records.items()}
        self._offsets = {p: [r[0] for r in rs] for p, rs in self._records.items()}
        self._ledgers: dict[int, tuple[ConsentLedger, int]] = {}

    def at(self, partition: int, offset: int) -> ConsentLedger:
        """The partition's state after its records below ``offset``."""
        known = self._ledgers.get(partition)
        if known is None or known[1] > offset:
            known = (ConsentLedger(self._catalogue, self._verify), 0)
            known[0].hold(partition)
        ledger, position = known
        offsets = self._offsets.get(partition, [])
        records = self._records.get(partition, [])
        for i in range(bisect.bisect_left(offsets, position), bisect.bisect_left(offsets, offset)):
            at, key, value = records[i]
            ledger.apply_record(partition, at, key, value)
        self._ledgers[partition] = (ledger, max(position, offset))
        return ledger


class _NoPositionError(Exception):
    """A consent lookup was needed, and the entry does not say how much consent the decision saw."""


class _ConsentAt:
    """The consent view of one entry: replayed only if the engine asks."""

    def __init__(self, replay: ConsentReplay, partition: int, offset: int | None,
                 compared: tuple[str | None, str | None]) -> None:
        self._replay, self._partition, self._offset = replay, partition, offset
        self._compared = compared  # the entry's recipient and purpose

    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        if self._offset is None:
            if (recipient, purpose) != self._compared:
                # Another agreement's decision, which is not compared: any answer will do (an entry whose purpose
                # is not its agreement's differs from the decision taken again in any case).
                return NO_CONSENTS.lookup(subject, recipient, purpose, record_type, at)
            raise _NoPositionError
        return self._replay.at(self._partition, self._offset).lookup(subject, recipient, purpose, record_type, at)


class Reevaluator:
    """Checks one decoded access-log entry at a time (:meth:`check`); ``reevaluated`` counts those checked."""

    def __init__(self, catalogue: Catalogue, bundles: Iterable[bytes], consents: ConsentReplay, *,
                 events: EventSource | None = None, envelope: EnvelopeVerifier | None = None) -> None:
        self._catalogue = catalogue
        self._types = type_infos(catalogue)
        self._raw: dict[str, bytes] = {}
        for data in bundles:
            try:
                self._raw[read_bundle(data).id] = data
            except PolicyError:
                continue  # unreadable: an entry naming it is reported as naming an unknown bundle
        self._compiled: dict[str, PolicyIndex | str] = {}
        self._consents = consents
        self._events = events
        self._envelope = envelope
        self._last: tuple[tuple[str, int, int], EventFacts | Discrepancy, int] | None = None
        self.reevaluated = 0

    def check(self, index: int, entry: Mapping[str, Any]) -> Discrepancy | None:
        """The first thing wrong with ``entry`` (the decoded ``exchange.decision`` at ``index``), or None."""
        if entry["outcome"] == "REJECT":
            return _reject_shape(index, entry)
        self.reevaluated += 1
        if entry["event_type"] == LOOKUP_TYPE or entry["router_id"] == TRACKER_IDENTITY:
            return _lookup_shape(index, entry)
        policies = self._index(entry["bundle_id"])
        if isinstance(policies, str):
            return Discrepancy(index, "unknown bundle", policies)
        facts = self._facts(index, entry, policies)
        if isinstance(facts, Discrepancy):
            return facts
        event, fired = facts
        consent = _ConsentAt(self._consents, entry["ingress_partition"], entry.get("consent_offset"),
                             (entry["recipient"], entry["purpose"]))
        try:
            decisions = decide(policies, event, consent, fired)
        except _NoPositionError:
            return Discrepancy(index, "decision not supported", "the decision rests on consent, and the entry does "
                               "not record how much of the consent log it saw (consent_offset)")
        except PolicyError as exc:
            return Discrepancy(index, "decision not supported", str(exc))
        return _compare(index, entry, decisions)

    def _index(self, bundle: str) -> PolicyIndex | str:
        """The bundle compiled, or why it cannot be."""
        found = self._compiled.get(bundle)
        if found is None:
            data = self._raw.get(bundle)
            if data is None:
                found = f"no policy bundle {bundle} was published"
            else:
                parsed = read_bundle(data)
                agencies = [a["id"] for a in parsed.registry.get("agencies", []) if isinstance(a, dict)]
                try:
                    found = compile_policies(parsed.policy_set, self._types, agencies, parsed.registry)
                except PolicyError as exc:
                    found = f"policy bundle {bundle} does not compile with this catalogue: {exc}"
                if not isinstance(found, str) and found.bundle_id != bundle:
                    found = f"policy bundle {bundle} compiles to another bundle ({found.bundle_id})"
            self._compiled[bundle] = found
        return found

    def _facts(self, index: int, entry: Mapping[str, Any],
               policies: PolicyIndex) -> tuple[EventFacts, int] | Discrepancy:
        place = (entry["ingress_topic"], entry["ingress_partition"], entry["ingress_offset"])
        if self._last is not None and self._last[0] == place:
            facts, fired = self._last[1], self._last[2]
        else:
            record = self._events.event(*place) if self._events is not None else None
            found = self._from_event(index, record, entry, policies) if record is not None else \
                self._from_entry(index, entry, policies)
            facts, fired = found if not isinstance(found, Discrepancy) else (found, 0)
            self._last = (place, facts, fired)
        if isinstance(facts, Discrepancy):
            return Discrepancy(index, facts.check, facts.detail)
        mismatch = _recorded_mismatch(entry, facts, held_restrictions(policies, facts.record_type, fired))
        if mismatch is not None:
            return Discrepancy(index, "event mismatch", mismatch)
        return facts, fired

    def _from_event(self, index: int, record: ReceivedRecord, entry: Mapping[str, Any],
                    policies: PolicyIndex) -> tuple[EventFacts, int] | Discrepancy:
        if self._envelope is None:
            raise ValueError("an event source needs an envelope verifier")
        try:
            event = self._envelope.verify(record)
        except VerificationError as exc:
            return Discrepancy(index, "event mismatch", f"the ingress record at {_place(entry)} does not verify: "
                               f"{exc}")
        except Exception as exc:  # noqa: BLE001 - whatever a strange record makes the verifier raise, it is named
            return Discrepancy(index, "event mismatch", f"the ingress record at {_place(entry)} cannot be read: "
                               f"{type(exc).__name__}: {str(exc)[:300]}")
        a = event.attributes
        if (event.digest, a.id, a.type, a.source, event.key) != (entry["event_digest"], entry["event_id"],
                                                                 entry["event_type"], entry["event_source"],
                                                                 entry["subject_ref"]):
            return Discrepancy(index, "event mismatch", f"the event at {_place(entry)} is not the one the entry "
                               "names (digest, id, type, source or subject differ)")
        facts = EventFacts(a.id, a.type, a.source, event.time,
                           event.key.decode() if event.schema.key_kind == "person" else None, event.record)
        return facts, conditions_held(policies, facts)

    def _from_entry(self, index: int, entry: Mapping[str, Any],
                    policies: PolicyIndex) -> tuple[EventFacts, int] | Discrepancy:
        record_type, at = entry["event_type"], entry.get("event_time")
        if record_type is None or at is None or entry["event_id"] is None:
            return Discrepancy(index, "decision not supported", f"the ingress record at {_place(entry)} is gone "
                               "and the entry does not record the event's facts")
        fired = held_mask(policies, record_type, entry.get("restrictions_held", ()))
        if fired is None:
            return Discrepancy(index, "decision not supported", f"restrictions {entry.get('restrictions_held')} are "
                               f"not all restrictions on {record_type} in bundle {entry['bundle_id']}")
        try:
            person = self._catalogue.current(record_type).key_kind == "person"
        except SchemaError as exc:
            return Discrepancy(index, "decision not supported", str(exc))
        subject = entry["subject_ref"]
        facts = EventFacts(entry["event_id"], record_type, entry["event_source"] or "", at,
                           subject.decode("ascii", "replace") if person and subject is not None else None, {})
        return facts, fired


_LOOKUP_SHAPE: dict[str, Any] = {
    "router_id": TRACKER_IDENTITY, "event_type": LOOKUP_TYPE, "event_source": TRACKER_IDENTITY, "ingress_topic": "",
    "ingress_partition": -1, "ingress_offset": -1, "event_digest": None, "agreement_id": None,
    "agreement_version": None, "bundle_id": "", "purpose": LOOKUP_PURPOSE, "consent_ref": None, "outcome": "PERMIT",
    "reason_codes": [LOOKUP_REASON], "fields_released": list(LOOKUP_FIELDS), "restrictions_held": [],
    "consent_offset": None,
}


def _lookup_shape(index: int, entry: Mapping[str, Any]) -> Discrepancy | None:
    """An operator's lookup (``exchange tracker show``) rests on no bundle: it must have exactly the lookup's
    shape, so that no delivery of fields can pass for one."""
    wrong = sorted(name for name, value in _LOOKUP_SHAPE.items() if entry.get(name) != value)
    if entry.get("subject_ref") is None or entry.get("recipient") is None:
        wrong.append("subject_ref/recipient")
    if not str(entry.get("legal_basis") or "").startswith("statute:"):
        wrong.append("legal_basis")
    if wrong:
        return Discrepancy(index, "decision not supported", "an entry of the tracker's subject-access lookups must "
                           f"have the lookup's exact shape; {', '.join(wrong)} differ")
    return None


def _reject_shape(index: int, entry: Mapping[str, Any]) -> Discrepancy | None:
    """A REJECT records a verification failure and nothing of a decision: no recipient, agreement, subject or
    fields (an entry turned into a REJECT would otherwise hide a decision from re-evaluation)."""
    claimed = [name for name in _NOT_IN_A_REJECT if entry.get(name) is not None]
    if claimed or entry["fields_released"] or len(entry["reason_codes"]) != 1:
        what = ", ".join(claimed or ["fields released or other than one reason"])
        return Discrepancy(index, "decision not supported", f"a REJECT that records what only a decision has: {what}")
    return None


def _recorded_mismatch(entry: Mapping[str, Any], facts: EventFacts, held: tuple[str, ...]) -> str | None:
    """Why the facts an entry records are not the event's (entries of the first revision record none)."""
    recorded_time = entry.get("event_time")
    if recorded_time is not None and recorded_time != facts.time:
        return f"the entry records event time {recorded_time.isoformat()}, the event says {facts.time.isoformat()}"
    if "restrictions_held" in entry and tuple(entry["restrictions_held"]) != held:
        return f"the entry records restrictions {list(entry['restrictions_held'])} holding, the event {list(held)}"
    return None


def _compare(index: int, entry: Mapping[str, Any], decisions: Sequence[Decision]) -> Discrepancy | None:
    wanted = (entry["recipient"], entry["agreement_id"], entry["agreement_version"])
    decision = next((d for d in decisions if (d.recipient, d.agreement_id, d.agreement_version) == wanted), None)
    what = f"{entry['agreement_id']} v{entry['agreement_version']} to {entry['recipient']}"
    if decision is None:
        return Discrepancy(index, "decision not supported", f"bundle {entry['bundle_id']} has no agreement {what} "
                           f"on {entry['event_type']}")
    expected = decision_values(decision)
    differing = [name for name in _COMPARED if entry[name] != expected[name]]
    if not differing or _undeliverable(entry, expected):
        return None
    if entry["outcome"] == "PERMIT" and expected["outcome"] != "PERMIT":
        why = ", ".join(expected["reason_codes"]) or "DENY"
        return Discrepancy(index, "decision not supported", f"the entry claims PERMIT of {what}; the bundle and the "
                           f"consent state give DENY ({why})")
    extra = [f for f in entry["fields_released"] if f not in expected["fields_released"]]
    if extra:
        return Discrepancy(index, "decision not supported", f"the entry claims fields {extra} released under {what}; "
                           f"the bundle and the consent state release only {expected['fields_released']}")
    name = differing[0]
    return Discrepancy(index, "decision not supported", f"{name} of {what}: the entry says {entry[name]!r}, "
                       f"re-evaluation gives {expected[name]!r}")


def _undeliverable(entry: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """A PERMIT the router could not seal for its recipient, logged as a DENY that released nothing."""
    reasons = list(entry["reason_codes"])
    return (expected["outcome"] == "PERMIT" and entry["outcome"] == "DENY" and not entry["fields_released"]
            and len(reasons) == len(expected["reason_codes"]) + 1 and reasons[:-1] == expected["reason_codes"]
            and reasons[-1].startswith(_UNDELIVERABLE)
            and all(entry[n] == expected[n] for n in ("purpose", "legal_basis", "consent_ref")))


def _place(entry: Mapping[str, Any]) -> str:
    return f"{entry['ingress_topic']}[{entry['ingress_partition']}]@{entry['ingress_offset']}"

