"""A namespaced exchange on the real broker for router tests: keys, registry, topics under a unique prefix."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from exchange.context import Context
from exchange.delivery.open import DeliveryOpener, ReceivedDelivery
from exchange.kafka import ConsumedRecord, Producer, make_admin, read_to_end
from exchange.kafka.admin import apply_topics
from exchange.publisher import Publisher
from exchange.registry import make_demo_keystore
from exchange.router import Router, RouterConfig, build_router
from exchange.schemas.samples import sample_record
from exchange.settings import Settings
from exchange.subscriber import Subscriber
from exchange.topics import discover_inputs, expand, load_spec

ROOT = Path(__file__).resolve().parents[2]
CREATED: list[World] = []
"""Worlds created and not yet deleted; the integration conftest deletes them after each test module."""


@dataclass
class World:
    settings: Settings
    context: Context
    directory: Path

    @classmethod
    def create(cls, bootstrap: str, directory: Path) -> World:
        make_demo_keystore(directory / "keystore", ROOT / "policies" / "registry.yaml", directory / "registry.yaml")
        settings = Settings(bootstrap=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
                            registry=directory / "registry.yaml", keystore=directory / "keystore",
                            schemas=ROOT / "schemas", policies=ROOT / "policies",
                            pseudonym_secret=SecretStr("router-integration-secret-0001"))
        specs = expand(load_spec(ROOT / "deploy" / "topics.yaml"),
                       discover_inputs(settings.schemas, settings.registry, settings.policies), brokers=1)
        apply_topics(make_admin(bootstrap=bootstrap), specs, prefix=settings.topic_prefix)
        world = cls(settings, Context(settings), directory)
        CREATED.append(world)
        return world

    def delete_topics(self) -> None:
        """Delete every topic of this world (a broker holds open files per partition: a suite must not pile
        them up)."""
        admin = make_admin(bootstrap=self.settings.bootstrap)
        mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(self.settings.topic_prefix)]
        if mine:
            for future in admin.delete_topics(mine, operation_timeout=60).values():
                future.result(timeout=60)

    def env(self) -> dict[str, str]:
        """The environment a router subprocess needs to join this world."""
        s = self.settings
        return {"EXCHANGE_BOOTSTRAP": s.bootstrap or "", "EXCHANGE_TOPIC_PREFIX": s.topic_prefix,
                "EXCHANGE_REGISTRY": str(s.registry), "EXCHANGE_KEYSTORE": str(s.keystore),
                "EXCHANGE_SCHEMAS": str(s.schemas), "EXCHANGE_POLICIES": str(s.policies),
                "EXCHANGE_PSEUDONYM_SECRET": "router-integration-secret-0001"}

    def publisher(self, agency: str, batch_size: int = 16) -> Publisher:
        c = self.context
        return Publisher.from_keystore(agency, c.keystore, registry=c.registry, catalogue=c.catalogue,
                                       pseudonymiser=c.pseudonymiser, producer=Producer(settings=self.settings),
                                       batch_size=batch_size, linger_ms=1000)

    def publish(self, agency: str, record_type: str, records: Iterable[dict[str, Any]]) -> list[str]:
        with self.publisher(agency) as publisher:
            return [publisher.publish(record_type, r) for r in records]

    def raw_producer(self) -> Producer:
        return Producer(settings=self.settings)

    def read(self, topic: str) -> list[ConsumedRecord]:
        return read_to_end(topic, settings=self.settings)

    def opener(self, recipient: str) -> DeliveryOpener:
        c = self.context
        return DeliveryOpener(recipient, c.keystore.encryption_private_key(recipient), c.registry, c.catalogue)

    def deliveries(self, recipient: str, event_ids: Iterable[str] | None = None) -> list[ReceivedDelivery]:
        """Every delivery to ``recipient`` (opened and verified), optionally only of ``event_ids``."""
        wanted = set(event_ids) if event_ids is not None else None
        opener = self.opener(recipient)
        opened = []
        for record in self.read(f"delivery.{recipient}"):
            if wanted is not None and dict(record.headers).get("ce_id", b"").decode() not in wanted:
                continue
            opened.append(opener.open(record.key, record.value, record.headers, record.topic,
                                      timestamp_ms=record.timestamp_ms))
        return opened

    def decisions(self, event_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Access-log entries, decoded, optionally only those about ``event_ids``."""
        wanted = set(event_ids) if event_ids is not None else None
        entries = [self.context.catalogue.decode(r.value or b"")[1] for r in self.read("audit.decisions")]
        return [e for e in entries if wanted is None or e["event_id"] in wanted]

    def quarantined(self) -> list[dict[str, Any]]:
        return [self.context.catalogue.decode(r.value or b"")[1] for r in self.read("exchange.quarantine")]

    def records(self, record_type: str, n: int, seed: int, **fixed: Any) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        return [{**sample_record(record_type, rng), **fixed} for _ in range(n)]


class RunningRouter:
    """A router in a thread of the test process; waits on its committed progress, never on the clock alone."""

    def __init__(self, world: World, router_id: str = "router-t", group: str = "routers") -> None:
        self.router: Router = build_router(RouterConfig(router_id=router_id, group_id=group, max_batch=200),
                                           world.settings)
        self._thread = threading.Thread(target=self.router.run, daemon=True)
        self._thread.start()

    def wait_for(self, condition: Callable[[Router], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.router):
            if not self._thread.is_alive():
                raise AssertionError("the router thread ended")
            if time.monotonic() > deadline:
                raise AssertionError(f"router did not get there within {timeout:.0f}s: {self.router.stats}")
            time.sleep(0.05)  # polling the router's committed counters, a condition checked above

    def wait_events(self, n: int, timeout: float = 60.0) -> None:
        self.wait_for(lambda r: r.stats.events >= n, timeout)

    def stop(self) -> None:
        self.router.stop()
        self._thread.join(timeout=30)


def drain(sub: Subscriber, want: int, rounds: int = 30) -> list[ReceivedDelivery]:
    """Poll ``sub`` until ``want`` records were received or rejected, or ``rounds`` empty polls passed."""
    got: list[ReceivedDelivery] = []
    empty = 0
    while sub.received + sum(sub.rejected.values()) < want and empty < rounds:
        batch = sub.poll(100, timeout=1.0)
        empty = 0 if batch else empty + 1
        got.extend(batch)
    return got
