"""What the router is configured with, routes with and counts: its configuration, the snapshot of policies a
batch is routed with, the protocols of its consent view and sealer, and its statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from exchange.envelope import EnvelopeVerifier, VerifiedEvent
from exchange.envelope.verify import MAX_SKEW
from exchange.kafka import Headers
from exchange.policy import ConsentView, Decision, PolicyIndex
from exchange.router.entries import EntryWriter

__all__ = ["INGRESS_PATTERN", "Batch", "ConsentSource", "Output", "RouterConfig", "RouterStats", "Sealed", "Sealer",
           "Snapshot"]

INGRESS_PATTERN = r"^ingress\..*"


class ConsentSource(ConsentView, Protocol):
    """The router's consent view: answers lookups and honours the barrier."""

    def sync(self, partitions: Iterable[int], timeout: float = 30.0) -> object: ...
    @property
    def positions(self) -> Mapping[int, int]: ...
    def release(self, partitions: Iterable[int]) -> None: ...
    def close(self) -> None: ...


class Sealed(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> Headers: ...


class Sealer(Protocol):
    """Minimises and encrypts one permitted delivery."""

    def seal(self, event: VerifiedEvent, decision: Decision) -> Sealed: ...


@dataclass(frozen=True)
class Snapshot:
    """Everything a batch is routed with; replaced as a whole when policies are reloaded."""

    index: PolicyIndex
    verifier: EnvelopeVerifier
    entries: EntryWriter
    sealer: Sealer


@dataclass(frozen=True)
class RouterConfig:
    router_id: str = "router-0"
    group_id: str = "exchange-router"
    pattern: str = INGRESS_PATTERN
    max_batch: int = 500
    poll_timeout: float = 0.05  # a light load is not held back waiting for a full batch
    max_skew: timedelta = MAX_SKEW
    """How far ``ce_time`` may be from the broker's append time; ids are remembered for this long (+1 s)."""


@dataclass
class RouterStats:
    """What the router has done since it started (committed batches only)."""

    events: int = 0
    batches: int = 0
    aborted_batches: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    denied: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    audit_entries: int = 0


Output = tuple[str, bytes | None, bytes | None, Headers | None]
"""A record to produce: topic, value, key, headers."""


@dataclass
class Batch:
    """Counts of the batch in progress; added to the stats only when its transaction commits."""

    delivered: Counter[str] = field(default_factory=Counter)
    denied: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    audit_entries: int = 0

    def reset(self) -> None:
        self.delivered.clear()
        self.denied.clear()
        self.quarantined.clear()
        self.audit_entries = 0

    def count_into(self, stats: RouterStats) -> None:
        stats.delivered.update(self.delivered)
        stats.denied.update(self.denied)
        stats.quarantined.update(self.quarantined)
        stats.audit_entries += self.audit_entries
