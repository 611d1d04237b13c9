"""Every kind of record the exchange writes is a valid CloudEvent to an independent reader: the official
CloudEvents SDK for Python (Kafka binding, binary mode) parses ingress events, deliveries, open data, consent
artefacts, access-log entries, quarantine records, policy bundles and the router's seen ids."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from exchange.consent.manager import ConsentManager
from exchange.demo import bad_records
from exchange.envelope.attributes import decode_b64_attribute
from exchange.kafka import ConsumedRecord
from exchange.router import RouterConfig, RouterThread, build_router
from tests.integration.router_world import World

PUBLISHED = {"population.person-registered": "population-registry", "tax.income-assessed": "tax-board",
             "business.company-registered": "business-register"}


def _parse(record: ConsumedRecord) -> object:
    message = KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value or b"")
    event = from_binary(message, JSONFormat())
    headers = dict(record.headers)
    assert event.get_id() == headers["ce_id"].decode()
    assert event.get_type() == headers["ce_type"].decode()
    assert event.get_source() == headers["ce_source"].decode()
    if headers.get("content-type") in {b"application/avro", b"application/octet-stream",
                                       b"application/vnd.exchange.delivery"}:
        assert event.get_data() == record.value  # binary data, untouched
    return event


def test_the_official_sdk_reads_every_kind_of_record(bootstrap: str, tmp_path: Path) -> None:
    world = World.create(bootstrap, tmp_path)
    published: set[str] = set()
    for record_type, agency in PUBLISHED.items():
        published.update(world.publish(agency, record_type, world.records(record_type, 4, seed=len(published))))
    manager = ConsentManager.connect(world.context)
    manager.grant(person_id="19800101-0001", recipient="municipal-services", purpose="housing-allowance",
                  record_types=["tax.income-assessed"], expiry=datetime.now(UTC) + timedelta(days=30))
    manager.close()
    producer = world.raw_producer()
    bad = bad_records(world.context, random.Random(5))
    for record in bad:
        record.produce(producer)
    producer.flush()

    router = RouterThread(build_router(RouterConfig(router_id="ce", group_id="ce-routers"), world.settings))
    try:
        router.wait_events(len(published) + len(bad))
    finally:
        router.stop()

    kinds: Counter[str] = Counter()
    for record_type in PUBLISHED:
        for record in world.read(f"ingress.{record_type}"):
            if dict(record.headers).get("ce_id", b"").decode() in published:  # the hostile records are not ours
                event = _parse(record)
                assert len(decode_b64_attribute(dict(record.headers)["ce_exseed"], "ce_exseed", ValueError)) == 32
                assert event.get_extension("exproof") is not None
                kinds["ingress"] += 1
    for recipient in ("tax-board", "social-insurance", "statistics-office"):
        for record in world.read(f"delivery.{recipient}"):
            _parse(record)
            kinds["delivery"] += 1
    for topic in ("opendata.business.company-registered", "consent.events", "audit.decisions",
                  "exchange.quarantine", "policy.bundles", "router.seen"):
        for record in world.read(topic):
            _parse(record)
            kinds[topic] += 1
    assert kinds["ingress"] == len(published)
    assert all(kinds[k] > 0 for k in ("delivery", "opendata.business.company-registered", "consent.events",
                                      "audit.decisions", "exchange.quarantine", "policy.bundles", "router.seen"))
    assert kinds["exchange.quarantine"] == sum(1 for b in bad if b.reason)
