"""The replay window survives a router restart: it is seeded from the records before the committed offset."""

from __future__ import annotations

from pathlib import Path

from exchange.router import RouterConfig, RouterThread, build_router
from tests.integration.router_world import World


def test_an_event_replayed_after_a_restart_is_quarantined(bootstrap: str, tmp_path: Path) -> None:
    """An event routed by one router, produced again after a new router took over, is caught as REPLAYED."""
    world = World.create(bootstrap, tmp_path)
    config = RouterConfig(router_id="replay", group_id="replayers")
    (event_id,) = world.publish("population-registry", "population.death-registered",
                                world.records("population.death-registered", 1, seed=40))
    first = RouterThread(build_router(config, world.settings))
    first.wait_events(1)
    first.stop()
    (original,) = [r for r in world.read("ingress.population.death-registered")
                    if dict(r.headers)["ce_id"].decode() == event_id]

    second = RouterThread(build_router(config, world.settings))  # a new process's memory: only the seed
    try:
        producer = world.raw_producer()
        producer.produce(original.topic, original.value, original.key, headers=original.headers)
        producer.flush()
        second.wait_events(1)
    finally:
        second.stop()
    assert [q["reason_code"] for q in world.quarantined()] == ["REPLAYED"]
    delivered = [d.event_id for d in world.deliveries("social-insurance")]
    assert delivered == [event_id]
