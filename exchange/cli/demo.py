"""``exchange demo``: the end-to-end run on a local broker (or EXCHANGE_BOOTSTRAP).

Today it brings the backbone up and proves the round trip: broker up, topics applied, a transaction of records
produced and read back by a read_committed consumer. It grows with the exchange into the full once-only demo.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

from exchange.kafka import Consumer, TransactionalProducer, make_admin
from exchange.kafka.admin import apply_topics, broker_count
from exchange.kafka.local import LocalBroker, deploy_dir
from exchange.settings import get_settings
from exchange.topics import TopicSpec, discover_inputs, expand, load_spec

_DEMO_TOPIC = "demo.roundtrip"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on a local broker", description=__doc__)
    parser.add_argument("--events", type=int, default=100, help="how many records to send")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    steps: list[str] = []
    if settings.bootstrap:
        bootstrap = settings.bootstrap
        steps.append(f"using the cluster at {bootstrap} (EXCHANGE_BOOTSTRAP)")
    else:
        state = LocalBroker(settings.cache_dir, settings.kafka_version, heap=settings.broker_heap).up()
        bootstrap = state.bootstrap
        steps.append(f"local broker Kafka {state.version} at {bootstrap}")

    admin = make_admin(bootstrap=bootstrap)
    inputs = discover_inputs(Path("schemas"), Path("policies/registry.yaml"), Path("policies"))
    specs = expand(load_spec(deploy_dir().parent / "topics.yaml"), inputs, broker_count(admin))
    demo = TopicSpec(_DEMO_TOPIC, 1, specs[0].replication_factor if specs else 1, {"retention.ms": "3600000"})
    changes = apply_topics(admin, [*specs, demo])
    steps.append(f"topics: {len(specs) + 1} declared, {len(changes)} change(s) applied")

    run_id = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    producer = TransactionalProducer(f"demo-{run_id}", bootstrap=bootstrap)
    producer.begin()
    for i in range(args.events):
        producer.produce(_DEMO_TOPIC, f"{run_id}:{i}".encode(), key=f"k{i % 8}".encode())
    producer.commit()
    produced_s = time.perf_counter() - started

    received = 0
    with Consumer(f"demo-{run_id}", [_DEMO_TOPIC], bootstrap=bootstrap) as consumer:
        deadline = time.monotonic() + 30
        while received < args.events and time.monotonic() < deadline:
            received += sum(1 for r in consumer.poll_batch(500, 1.0) if (r.value or b"").startswith(run_id.encode()))
    elapsed = time.perf_counter() - started
    steps.append(f"produced {args.events} records in one transaction ({produced_s * 1000:.0f} ms), "
                 f"read back {received} with read_committed ({elapsed * 1000:.0f} ms in all)")
    summary = {"bootstrap": bootstrap, "topics": len(specs) + 1, "topic_changes": len(changes),
               "published": args.events, "received": received, "round_trip_ok": received == args.events}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for step in steps:
            print(f"- {step}")
        print("round trip OK" if summary["round_trip_ok"] else "round trip FAILED: records missing")
    return 0 if summary["round_trip_ok"] else 1
