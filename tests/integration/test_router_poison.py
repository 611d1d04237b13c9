"""One record never stops the router: hostile records, and a step that raises on one record, are quarantined
with their reason and the genuine events around them are routed — on the real broker."""

from __future__ import annotations

import dataclasses
import struct
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from exchange.consent.view import ConsentView
from exchange.envelope import Envelope, VerifiedEvent, prepare, seal_events
from exchange.policy import Decision
from exchange.router import RouterConfig, RouterThread, load_snapshot
from exchange.router.service import Router, Sealed, Sealer, Snapshot
from tests.integration.router_world import World

TYPE = "population.death-registered"
AGENCY = "population-registry"


def _signed(world: World, *, key: bytes | None = None, seed: int = 0) -> Envelope:
    """A genuinely signed event of the authoritative agency, with the key given (or its pseudonym)."""
    context = world.context
    schema = context.catalogue.current(TYPE)
    record = world.records(TYPE, 1, seed=seed)[0]
    key = key if key is not None else context.pseudonymiser.subject(record["person_id"]).encode()
    (envelope,) = seal_events(AGENCY, [prepare(schema, record, source=AGENCY, key=key, now=datetime.now(UTC))],
                              context.keystore.signer(AGENCY))
    return envelope


def _with_header(envelope: Envelope, name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in envelope.headers]


def test_hostile_records_are_quarantined_and_the_events_behind_them_routed(bootstrap: str, tmp_path: Path) -> None:
    """A signed event with a 70,000-byte key, one with a key that is no pseudonym, a 64 KiB ce_id, a 200 KiB
    proof and a 600 KiB value: each quarantined with its reason; the 20 genuine events behind them routed, by
    the first router and, after a restart, without anything routed twice."""
    world = World.create(bootstrap, tmp_path)
    long_key = _signed(world, key=b"k" * 70_000, seed=1)
    not_a_pseudonym = _signed(world, key=b"A" * 32, seed=2)
    plain = _signed(world, seed=3)
    hostile = [
        (long_key.key, long_key.value, long_key.headers, "BAD_KEY"),
        (not_a_pseudonym.key, not_a_pseudonym.value, not_a_pseudonym.headers, "BAD_KEY"),
        (plain.key, plain.value, _with_header(plain, "ce_id", b"0" * 65_536), "MALFORMED_ENVELOPE"),
        (plain.key, plain.value, _with_header(plain, "ce_exproof", b"A" * 200_000), "MALFORMED_ENVELOPE"),
        (plain.key, plain.value + b"\x00" * 600_000, plain.headers, "OVERSIZED"),
    ]
    producer = world.raw_producer()
    for key, value, headers, _ in hostile:
        producer.produce(f"ingress.{TYPE}", value, key, headers=headers)
    producer.flush()
    genuine = world.publish(AGENCY, TYPE, world.records(TYPE, 20, seed=4))

    config = RouterConfig(router_id="poison", group_id="poisoned", max_batch=3)
    first = RouterThread(_router(config, world))
    try:
        first.wait_events(len(hostile) + 20)
    finally:
        first.stop()
    assert Counter(q["reason_code"] for q in world.quarantined()) == Counter(r for *_, r in hostile)
    delivered = [d.event_id for d in world.deliveries("social-insurance")]
    assert sorted(delivered) == sorted(genuine)

    second = RouterThread(_router(config, world))  # a restart resumes after them: no crash loop, no re-routing
    try:
        (late,) = world.publish(AGENCY, TYPE, world.records(TYPE, 1, seed=5))
        second.wait_events(1)
    finally:
        second.stop()
    assert sorted(d.event_id for d in world.deliveries("social-insurance")) == sorted([*genuine, late])
    assert len(world.quarantined()) == len(hostile)


class _FailsOn(Sealer):
    """The real sealer, except that it raises struct.error for one event: a step failing on one record."""

    def __init__(self, real: Sealer, event_id: str) -> None:
        self.real, self.event_id = real, event_id

    def seal(self, event: VerifiedEvent, decision: Decision) -> Sealed:
        if event.attributes.id == self.event_id:
            raise struct.error("'H' format requires 0 <= number <= 65535")
        return self.real.seal(event, decision)


def _router(config: RouterConfig, world: World, fails_on: str | None = None) -> Router:
    def load() -> Snapshot:
        snapshot = load_snapshot(config.router_id, world.settings, config.max_skew)
        if fails_on is None:
            return snapshot
        return dataclasses.replace(snapshot, sealer=_FailsOn(snapshot.sealer, fails_on))

    return Router(config, load=load, consent=ConsentView.connect(world.context), settings=world.settings)


def test_a_step_that_raises_on_one_record_quarantines_it_as_internal(bootstrap: str, tmp_path: Path) -> None:
    """Whatever one record makes a step raise, that record is quarantined (INTERNAL, naming the exception),
    a REJECT entry is logged, nothing of it is delivered, and the events before and after it are routed."""
    world = World.create(bootstrap, tmp_path)
    ids = world.publish(AGENCY, TYPE, world.records(TYPE, 7, seed=6))
    poison = ids[3]
    router = RouterThread(_router(RouterConfig(router_id="internal", group_id="internal"), world, fails_on=poison))
    try:
        router.wait_events(7)
    finally:
        router.stop()
    (quarantined,) = world.quarantined()
    assert quarantined["reason_code"] == "INTERNAL"
    assert quarantined["detail"].startswith("error while routing")  # struct.error, by its type's name
    assert quarantined["original_offset"] is not None
    entries = world.decisions([poison])
    assert [(e["outcome"], e["reason_codes"]) for e in entries] == [("REJECT", ["INTERNAL"])]
    assert sorted(d.event_id for d in world.deliveries("social-insurance")) == sorted(i for i in ids if i != poison)
