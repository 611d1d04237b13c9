"""A tracker world without Kafka: decision entries encoded as the router writes them, indexed, tiled and
checkpointed as the sequencer would; tokens from a test identity provider."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exchange.audit.tile_writer import TileWriter
from exchange.crypto.checkpoint import Checkpoint, sign_checkpoint
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.crypto.note import Verifier
from exchange.envelope.pseudonym import Pseudonymiser
from exchange.policy.bundle import make_bundle
from exchange.policy.files import load_policies
from exchange.registry import Registry
from exchange.schemas import Catalogue
from exchange.tracker.indexer import HiddenPeriods, entry_row
from exchange.tracker.pages import KeysShown
from exchange.tracker.store import Position, TrackerStore
from exchange.tracker.tokens import IssuerSigningKey, TokenVerifier, mint_token

ROOT = Path(__file__).resolve().parents[3]
ISSUER, AUDIENCE, ORIGIN = "https://id.test", "exchange-tracker", "exchange.test/access-log"
SECRET = b"tracker-unit-test-secret-0001"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

CATALOGUE = Catalogue.load(ROOT / "schemas")
REGISTRY = Registry.load(ROOT / "policies" / "registry.yaml")
BUNDLE = make_bundle(load_policies(ROOT / "policies"), REGISTRY.canonical())
PSEUDONYMS = Pseudonymiser(SECRET)
ISSUER_KEY = IssuerSigningKey.generate("EdDSA")
VERIFIER = TokenVerifier(ISSUER, [ISSUER_KEY.issuer_key], AUDIENCE)
LOG_SIGNER = Signer.generate("exchange-audit")
AGENCIES = {a.id: a.legal_name for a in REGISTRY.agencies}


NOW = (START + timedelta(days=30)).timestamp()
"""The time the tests' clock shows unless a test moves it (tokens are minted then)."""


def token(person: str, *, lifetime: float = 3600, now: float = NOW, **extra: Any) -> str:
    return mint_token(ISSUER_KEY, ISSUER, person, AUDIENCE, lifetime, now=now, extra_claims=extra or None)


def decision(person: str | None, at: datetime, *, recipient: str = "tax-board", outcome: str = "PERMIT",
             agreement: str | None = "tcb-person-registered-tax", purpose: str | None = "taxation",
             fields: Sequence[str] = ("person_id", "surname"), legal_basis: str | None = "statute:Tax Act §1",
             record_type: str = "population.person-registered") -> dict[str, Any]:
    """An ``exchange.decision`` record as the router writes it."""
    return {
        "decision_id": str(uuid.uuid4()), "decided_at": at, "router_id": "router-1", "event_id": str(uuid.uuid4()),
        "event_type": record_type, "event_source": "population-registry", "ingress_topic": f"ingress.{record_type}",
        "ingress_partition": 0, "ingress_offset": 0, "event_digest": bytes(32),
        "subject_ref": None if person is None else PSEUDONYMS.subject(person).encode(),
        "recipient": recipient, "agreement_id": agreement, "agreement_version": 1 if agreement else None,
        "bundle_id": BUNDLE.id, "purpose": purpose, "legal_basis": legal_basis, "consent_ref": None,
        "outcome": outcome, "reason_codes": ["AGREEMENT_PERMITS"] if outcome == "PERMIT" else ["NO_AGREEMENT"],
        "fields_released": list(fields) if outcome == "PERMIT" else [], "event_time": at, "restrictions_held": [],
        "consent_offset": None,
    }


def encode(record: dict[str, Any]) -> bytes:
    return CATALOGUE.current("exchange.decision").encode(record)


@dataclass
class Log:
    """Entries indexed into a store and written as tiles with a signed checkpoint of the first ``proved``."""

    directory: Path
    store: TrackerStore
    entries: list[bytes] = field(default_factory=list)

    @classmethod
    def create(cls, directory: Path) -> Log:
        return cls(directory, TrackerStore.open(path=directory / "tracker.sqlite"))

    def add(self, records: Sequence[dict[str, Any]], *, now: datetime | None = None) -> list[int]:
        first = len(self.entries)
        values = [encode(r) for r in records]
        self.entries.extend(values)
        periods = HiddenPeriods(lambda: [BUNDLE.data])
        rows = [entry_row(first + i, v, CATALOGUE, AGENCIES, periods) for i, v in enumerate(values)]
        when = int((now or START + timedelta(days=1)).timestamp() * 1_000_000)
        self.store.add(rows, Position(len(self.entries), len(self.entries)), now=when)
        return list(range(first, len(self.entries)))

    def checkpoint(self) -> int:
        """Tile every entry and sign a checkpoint of them all; its size."""
        tiles = self.directory / "tiles"
        writer = TileWriter(tiles, fsync=False)
        if writer.size < len(self.entries):
            writer.resume(writer.size).append(self.entries[writer.size:])
        tree = CompactTree()
        for value in self.entries:
            tree.append(leaf_hash(value))
        note = sign_checkpoint(Checkpoint(ORIGIN, len(self.entries), tree.root()), [LOG_SIGNER])
        writer.write_checkpoint(note)
        return len(self.entries)

    @property
    def keys(self) -> KeysShown:
        return KeysShown(ORIGIN, Verifier(LOG_SIGNER.name, LOG_SIGNER.public_key).key_string())

    @property
    def log_key(self) -> Verifier:
        return Verifier(LOG_SIGNER.name, LOG_SIGNER.public_key)
