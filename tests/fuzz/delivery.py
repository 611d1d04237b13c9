"""The delivery opener, fed mutated genuine deliveries, from its two attackers (see
tests/unit/delivery/test_open_fuzz.py): one who writes records to the delivery topic (``opener``: topic, key,
value, headers and timestamp mutated), and one who holds a data key (``plaintext``: any plaintext resealed
under a genuine delivery's own data key, so it passes the AES-GCM tag and reaches the disclosure decoder and the
publisher-signature checks).
"""

from __future__ import annotations

import functools

from exchange.crypto.keys import EncryptionKey
from exchange.delivery import DeliveryOpener, DeliverySealer, InternalOpenError, OpenError, SealedDelivery, minimise
from exchange.delivery.wire import HEADER_LIMITS
from exchange.policy import Decision
from exchange.schemas import Catalogue
from tests.fuzz.engine import ROOT, Harness, RuleBroken, internal_kind
from tests.fuzz.records import T0_MS, Record, decode, encode, fixed_encryption_key, fixed_signers
from tests.keys import T0, shipped_registry_document
from tests.unit.delivery.support import PSEUDO, Keys, permit, reseal, signed_events

TYPE = "population.address-changed"
FIELDS = ("person_id", "postal_code", "municipality_code", "moved_on")
RECIPIENT = "municipal-services"
MAX_MESSAGE = 5000


class FixedKeys(Keys):
    """The test support's keys, from fixed seeds."""

    def __init__(self) -> None:  # replaces the parent's random keys rather than extending them
        self.signers = fixed_signers()
        self.encryption: dict[str, EncryptionKey] = {
            a["id"]: fixed_encryption_key(a["id"]) for a in shipped_registry_document()["agencies"]}


class _World:
    def __init__(self) -> None:
        self.catalogue = Catalogue.load(ROOT / "schemas")
        self.keys = FixedKeys()
        self.registry = self.keys.registry()
        self.events = signed_events(self.catalogue, self.keys, self.registry, TYPE, n=3)
        sealer = DeliverySealer(self.keys.signers["exchange-router"], self.registry, PSEUDO, clock=T0.timestamp)
        self.decisions: list[Decision] = [permit(RECIPIENT, TYPE, FIELDS),
                                          permit(RECIPIENT, TYPE, FIELDS, pseudonymise=True),
                                          permit(RECIPIENT, TYPE, FIELDS[1:], agreement="other", version=1),
                                          permit("police-board", TYPE, FIELDS)]
        self.deliveries: list[SealedDelivery] = [
            sealer.seal(self.events[i % 3], decision) for i, decision in enumerate(self.decisions)]

    def opener(self) -> DeliveryOpener:
        return DeliveryOpener(RECIPIENT, self.keys.encryption[RECIPIENT], self.registry, self.catalogue)


@functools.cache
def _world() -> _World:
    """One world for both harnesses of a process (building it signs and seals)."""
    return _World()


def _judge(opener: DeliveryOpener, record: Record) -> None:
    try:
        opener.open(record.key, record.value, record.headers, record.topic, timestamp_ms=record.timestamp_ms)
    except InternalOpenError as exc:
        raise RuleBroken(internal_kind("the opener", exc), str(exc)[:200]) from exc
    except OpenError as exc:
        if len(str(exc)) > MAX_MESSAGE:
            raise RuleBroken("an open error echoes a long input", f"{len(str(exc))} characters") from exc


class OpenerHarness(Harness):
    name = "opener"

    def __init__(self) -> None:
        self.world = _world()
        self._opener = self.world.opener()

    def seeds(self) -> list[bytes]:
        seeds = [encode(Record(d.key, d.value, list(d.headers), T0_MS, d.topic), with_topic=True)
                 for d in self.world.deliveries]
        opener = self.world.opener()
        for seed in seeds[:3]:  # the material is sound: the recipient's deliveries open
            record = decode(seed, with_topic=True)
            opener.open(record.key, record.value, record.headers, record.topic, timestamp_ms=record.timestamp_ms)
        return seeds

    def tokens(self) -> list[bytes]:
        return [name.encode() + b"\x00" for name in HEADER_LIMITS]

    def run(self, data: bytes) -> None:
        _judge(self._opener, decode(data, with_topic=True))


class PlaintextHarness(Harness):
    """Input: one byte choosing the delivery (plain or pseudonymised), then the plaintext to reseal."""

    name = "plaintext"

    def __init__(self) -> None:
        self.world = _world()
        self._opener = self.world.opener()

    def seeds(self) -> list[bytes]:
        return [bytes([i]) + minimise(self.world.events[i], self.world.decisions[i], PSEUDO).encode()
                for i in (0, 1)]

    def run(self, data: bytes) -> None:
        if not data:
            return
        w = self.world
        d = w.deliveries[data[0] % 2]
        sealed = reseal(d, data[1:], w.registry, w.keys.encryption[RECIPIENT])
        _judge(self._opener, Record(sealed.key, sealed.value, list(sealed.headers), T0_MS, sealed.topic))
