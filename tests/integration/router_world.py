"""A namespaced exchange on the real broker for router tests: keys, registry, topics under a unique prefix."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from connectors.sdk.testing.world import World as KitWorld
from exchange.delivery.open import ReceivedDelivery
from exchange.router import Router, RouterConfig, build_router
from exchange.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[2]
CREATED: list[World] = []
"""Worlds created and not yet deleted; the integration conftest deletes them after each test module."""


class World(KitWorld):
    """The connector kit's world on this checkout's schemas, policies, registry and topics, deleted after the
    test module (the integration conftest deletes what :data:`CREATED` holds)."""

    @classmethod
    def create(cls, bootstrap: str, directory: Path, **given: Any) -> Self:
        checkout = {"schemas": ROOT / "schemas", "policies": ROOT / "policies", "registry": ROOT / "policies" /
                    "registry.yaml", "topics": ROOT / "deploy" / "topics.yaml",
                    "pseudonym_secret": "router-integration-secret-0001"}
        world = super().create(bootstrap, directory, **{**checkout, **given})
        CREATED.append(world)
        return world


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
