"""The consent view's state, without Kafka: records of consent partitions applied in offset order.

One :class:`~exchange.policy.ConsentState` per partition, so the state of a partition the router gives up can be
dropped whole; a map from subject to partition, so a lookup touches one state. Records that do not decode, do not
verify, sit under the wrong key or break the consent life cycle are skipped and counted — never applied — and the
stream goes on (bad input is data, not a crash).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from exchange.consent.errors import ConsentRecordError
from exchange.consent.wire import decode_artefact
from exchange.policy import (
    NO_CONSENTS,
    ConsentArtefact,
    ConsentDecision,
    ConsentSignatureError,
    ConsentState,
    ConsentTransitionError,
    Verifier,
)
from exchange.schemas import Catalogue

__all__ = ["ConsentLedger", "LedgerStats", "RecordOutcome", "RecordResult", "SkipReason"]


class RecordOutcome(StrEnum):
    """What applying one record did."""

    APPLIED = "applied"  # the state changed
    UNCHANGED = "unchanged"  # a duplicate or an older version: nothing to do
    SKIPPED = "skipped"  # refused: see the reason


class SkipReason(StrEnum):
    """Why a record was skipped."""

    UNDECODABLE = "undecodable"  # no value, not exchange.consent, or not a valid artefact
    KEY_MISMATCH = "key_mismatch"  # the Kafka key is not the artefact's subject
    BAD_SIGNATURE = "bad_signature"  # no signature, or not a valid exchange-consent signature
    REFUSED_TRANSITION = "refused_transition"  # e.g. reactivating a revoked consent
    MISPLACED = "misplaced"  # the subject's consents already live in another partition


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome of one record; ``reason`` and ``detail`` are set when it was skipped."""

    outcome: RecordOutcome
    artefact: ConsentArtefact | None = None
    reason: SkipReason | None = None
    detail: str = ""


@dataclass(slots=True)
class LedgerStats:
    """Counts of records by outcome since the ledger was made; ``skipped`` by reason."""

    applied: int = 0
    unchanged: int = 0
    skipped: dict[SkipReason, int] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        """All skipped records, whatever the reason."""
        return sum(self.skipped.values())


class ConsentLedger:
    """Consent state of a set of partitions of one consent topic, and the consent lookup over it.

    The caller feeds records of each partition in offset order (:meth:`apply_record`); :meth:`position` is the
    next offset to read. Implements the policy core's ``ConsentView`` protocol.
    """

    def __init__(self, catalogue: Catalogue, verify: Verifier) -> None:
        self._catalogue = catalogue
        self._verify = verify
        self._states: dict[int, ConsentState] = {}
        self._positions: dict[int, int] = {}
        self._partition_of: dict[str, int] = {}
        self.stats = LedgerStats()

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions this ledger holds state for."""
        return frozenset(self._states)

    @property
    def positions(self) -> Mapping[int, int]:
        """``{partition: next offset to read}`` of every held partition."""
        return MappingProxyType(self._positions)

    def position(self, partition: int) -> int:
        """The next offset to read in ``partition`` (0 for a partition not held yet)."""
        return self._positions.get(partition, 0)

    def hold(self, partition: int) -> None:
        """Start holding ``partition`` (from offset 0: consents are kept forever) if not held yet."""
        if partition not in self._states:
            self._states[partition] = ConsentState(self._verify)
            self._positions[partition] = 0

    def advance(self, partition: int, position: int) -> None:
        """Move ``partition``'s position forward to ``position`` (past records the client never hands out, such
        as transaction markers). Never moves backwards."""
        if partition in self._positions and position > self._positions[partition]:
            self._positions[partition] = position

    def release(self, partitions: Iterable[int]) -> None:
        """Drop the state of ``partitions``; their subjects look up as having no consent until read again."""
        dropped = {p for p in partitions if p in self._states}
        for partition in dropped:
            del self._states[partition]
            del self._positions[partition]
        if dropped:
            self._partition_of = {s: p for s, p in self._partition_of.items() if p not in dropped}

    def apply_record(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> RecordResult:
        """Decode, verify and apply one record of ``partition`` at ``offset``; a record below the partition's
        position (already read) is ignored as UNCHANGED. Starts holding the partition if it is new."""
        self.hold(partition)
        if offset < self._positions[partition]:
            return RecordResult(RecordOutcome.UNCHANGED)
        self._positions[partition] = offset + 1
        try:
            artefact = decode_artefact(self._catalogue, value)
        except ConsentRecordError as exc:
            return self._skip(SkipReason.UNDECODABLE, str(exc))
        if key != artefact.subject.encode():
            return self._skip(SkipReason.KEY_MISMATCH, f"consent {artefact.ref}: the key is not its subject",
                              artefact)
        home = self._partition_of.get(artefact.subject)
        if home is not None and home != partition:
            # Producers that partition differently break co-partitioning: the barrier would miss this record.
            return self._skip(SkipReason.MISPLACED, f"consent {artefact.ref}: its subject's consents are in "
                              f"partition {home}, this record is in {partition}", artefact)
        try:
            changed = self._states[partition].apply(artefact)
        except ConsentSignatureError as exc:
            return self._skip(SkipReason.BAD_SIGNATURE, str(exc), artefact)
        except ConsentTransitionError as exc:
            return self._skip(SkipReason.REFUSED_TRANSITION, str(exc), artefact)
        self._partition_of[artefact.subject] = partition
        if changed:
            self.stats.applied += 1
            return RecordResult(RecordOutcome.APPLIED, artefact)
        self.stats.unchanged += 1
        return RecordResult(RecordOutcome.UNCHANGED, artefact)

    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        """The consent decision for ``subject`` (NO_CONSENT if none of the held partitions has their consents)."""
        partition = self._partition_of.get(subject)
        if partition is None:
            return NO_CONSENTS.lookup(subject, recipient, purpose, record_type, at)
        return self._states[partition].lookup(subject, recipient, purpose, record_type, at)

    def get(self, consent_id: str) -> ConsentArtefact | None:
        """The newest applied version of ``consent_id`` in any held partition."""
        for state in self._states.values():
            artefact = state.get(consent_id)
            if artefact is not None:
                return artefact
        return None

    def artefacts(self, subject: str | None = None) -> Iterator[ConsentArtefact]:
        """The newest version of every consent held (of ``subject`` only, if given)."""
        if subject is not None:
            partition = self._partition_of.get(subject)
            states = [] if partition is None else [self._states[partition]]
        else:
            states = list(self._states.values())
        for state in states:
            for artefact in state:
                if subject is None or artefact.subject == subject:
                    yield artefact

    def _skip(self, reason: SkipReason, detail: str, artefact: ConsentArtefact | None = None) -> RecordResult:
        self.stats.skipped[reason] = self.stats.skipped.get(reason, 0) + 1
        return RecordResult(RecordOutcome.SKIPPED, artefact, reason, detail)
