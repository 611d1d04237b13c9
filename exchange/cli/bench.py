"""``exchange bench publish | router | replay | audit | connectors | tracker``: throughput, latency and memory figures,
never asserted."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from exchange.bench._world import BenchWorld, delete_namespaces, make_world
from exchange.bench.audit import bench_audit
from exchange.bench.connectors import bench_connectors
from exchange.bench.publish import bench_publish
from exchange.bench.replay import bench_replay
from exchange.bench.router import bench_router
from exchange.bench.tracker import bench_tracker
from exchange.envelope.verify import MAX_SKEW
from exchange.kafka import resolve_bootstrap

_F = TypeVar("_F")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("bench", help="measure throughput and latency on the broker", description=__doc__)
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    publish = sub.add_parser("publish", help="signed publishing (batch 1 and 64) against unsigned producing")
    publish.add_argument("--events", type=int, default=20_000)
    publish.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    publish.set_defaults(func=_publish)
    router = sub.add_parser("router", help="routing throughput and latency against a raw pass-through")
    router.add_argument("--events", type=int, default=20_000, help="events pre-loaded and routed")
    router.add_argument("--routers", type=int, default=1, help="router processes (1 runs in this process)")
    router.add_argument("--latency-events", type=int, default=2000, help="events published for the latency run")
    router.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    router.set_defaults(func=_router)
    replay = sub.add_parser("replay", help="the replay guard's memory per remembered id and cost per event")
    replay.add_argument("--rate", type=int, default=20_000, help="events/s the figures are given for")
    replay.add_argument("--seconds", type=int, default=60, help="seconds of that stream to admit and measure")
    replay.add_argument("--max-skew", type=int, default=int(MAX_SKEW.total_seconds()),
                        help="accepted skew in seconds (the router's)")
    replay.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    replay.set_defaults(func=_replay)
    connectors = sub.add_parser("connectors", help="the files source against the bare Publisher; the webhook's "
                                                   "requests/s and latency")
    connectors.add_argument("--records", type=int, default=20_000, help="records imported through the files source")
    connectors.add_argument("--requests", type=int, default=4_000, help="records POSTed to the webhook")
    connectors.add_argument("--clients", type=int, default=16, help="concurrent webhook clients")
    connectors.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    connectors.set_defaults(func=_connectors)
    audit = sub.add_parser("audit", help="the access-log sequencer against a raw transactional pass-through")
    audit.add_argument("--entries", type=int, default=100_000,
                       help="access-log entries pre-loaded and sequenced (fewer make the runs too short to compare)")
    audit.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    audit.set_defaults(func=_audit)
    tracker = sub.add_parser("tracker", help="the data tracker: entries/s indexed; latency of a citizen's page and API")
    tracker.add_argument("--entries", type=int, default=1_000_000, help="access-log entries written and indexed")
    tracker.add_argument("--subject-rows", type=int, default=10_000,
                         help="PERMIT rows about the one citizen whose page and API are timed")
    tracker.add_argument("--requests", type=int, default=1000, help="requests timed per endpoint (page, API)")
    tracker.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    tracker.set_defaults(func=_tracker)


def _cleaned(run: Callable[[BenchWorld], _F]) -> _F:
    """``run`` on a fresh world whose topics are deleted afterwards, whatever happens."""
    world = make_world(resolve_bootstrap())
    try:
        return run(world)
    finally:
        delete_namespaces(world)


def _publish(args: argparse.Namespace) -> int:
    figures = _cleaned(lambda world: bench_publish(world, args.events))
    if args.json:
        print(json.dumps(figures.as_dict()))
        return 0
    print(f"published {figures.events} events of population.address-changed to bench.ingress")
    print(f"  unsigned (baseline)   {figures.unsigned_per_s:>10,.0f} events/s")
    print(f"  signed, batch of 1    {figures.signed_b1_per_s:>10,.0f} events/s")
    print(f"  signed, batch of 64   {figures.signed_b64_per_s:>10,.0f} events/s")
    print(f"  batch 64 / unsigned   {figures.ratio_b64_vs_unsigned:>10.2f}")
    return 0


def _router(args: argparse.Namespace) -> int:
    figures = _cleaned(lambda world: bench_router(world, args.events, args.routers, args.latency_events))
    if args.json:
        print(json.dumps(figures.as_dict()))
        return 0
    print(f"routed {figures.events} events with {figures.routers} router(s)")
    print(f"  router                {figures.events_per_s:>10,.0f} events/s")
    print(f"  raw pass-through      {figures.raw_events_per_s:>10,.0f} events/s")
    print(f"  router / raw          {figures.ratio:>10.2f}")
    print(f"  latency p50 / p99     {figures.latency_ms_p50:>7.1f} / {figures.latency_ms_p99:.1f} ms")
    return 0


def _replay(args: argparse.Namespace) -> int:
    figures = bench_replay(args.rate, args.seconds, timedelta(seconds=args.max_skew))
    if args.json:
        print(json.dumps(figures.as_dict()))
        return 0
    f = figures
    print(f"replay guard, horizon {f.horizon_s:g} s, a stream of {f.rate:,} events/s ({f.ids_held:,} ids held)")
    print(f"  memory per id         {f.bytes_per_id:>10.1f} bytes")
    print(f"  set of id strings     {f.baseline_bytes_per_id:>10.1f} bytes (baseline)")
    print(f"  guard / baseline      {f.ratio_vs_baseline:>10.2f}")
    print(f"  at {f.rate:,} events/s   {f.ids_at_rate:>10,} ids, {f.mb_at_rate:,.1f} MB")
    print(f"  admit p50 / p99       {f.admit_us_p50:>7.2f} / {f.admit_us_p99:.2f} µs")
    print(f"  replay refused        {f.replay_recent_us:>7.2f} µs (recent), {f.replay_packed_us:.2f} µs (packed)")
    print(f"  restore               {f.restore_ids_per_s:>10,.0f} ids/s")
    return 0


def _connectors(args: argparse.Namespace) -> int:
    f = _cleaned(lambda world: bench_connectors(world, args.records, args.requests, args.clients))
    if args.json:
        print(json.dumps(f.as_dict()))
        return 0
    print(f"imported {f.records} records of population.address-changed")
    print(f"  files source          {f.files_per_s:>10,.0f} records/s")
    print(f"  bare Publisher        {f.publisher_per_s:>10,.0f} records/s")
    print(f"  files / Publisher     {f.ratio:>10.2f}")
    print(f"webhook: {f.webhook_requests} POSTs, each answered once durable")
    print(f"  throughput            {f.webhook_per_s:>10,.0f} requests/s")
    print(f"  at {f.webhook_latency_rate:,.0f}/s p50 / p99  {f.webhook_latency_ms_p50:>7.1f} / "
          f"{f.webhook_latency_ms_p99:.1f} ms")
    return 0


def _audit(args: argparse.Namespace) -> int:
    f = _cleaned(lambda world: bench_audit(world, args.entries))
    if args.json:
        print(json.dumps(f.as_dict()))
        return 0
    print(f"sequenced {f.entries} access-log entries ({f.checkpoints} checkpoints)")
    print(f"  sequencer             {f.sequencer_per_s:>10,.0f} entries/s")
    print(f"  raw pass-through      {f.raw_per_s:>10,.0f} entries/s")
    print(f"  sequencer / raw       {f.ratio:>10.2f}")
    print(f"  verify (integrity)    {f.verify_integrity_per_s:>10,.0f} entries/s")
    print(f"  verify (re-evaluate)  {f.verify_reevaluate_per_s:>10,.0f} entries/s, events read back and verified "
          f"({f.reevaluated:,} decisions of a routed log)")
    print(f"  verify (re-evaluate)  {f.verify_reevaluate_facts_per_s:>10,.0f} entries/s, from the facts entries record")
    print(f"  reading log, bundles, consents: {f.verify_read_s:.2f} s")
    return 0


def _tracker(args: argparse.Namespace) -> int:
    f = _cleaned(lambda world: bench_tracker(world, args.entries, args.subject_rows, args.requests))
    if args.json:
        print(json.dumps(f.as_dict()))
        return 0

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    def p999(value: float | None) -> str:
        return "" if value is None else f" / {value:.1f}"

    quantiles = "p50 / p99" + (" / p99.9" if f.page_p999_ms is not None else "")
    print(f"indexed {f.entries:,} access-log entries into a fresh SQLite index (written at "
          f"{f.write_entries_per_s:,.0f}/s)")
    print(f"  indexer               {f.index_entries_per_s:>10,.0f} entries/s in {f.index_s:.1f} s "
          f"(target >= {f.target_index_entries_per_s:,}: {met(f.index_target_met)})")
    print(f"one citizen: {f.subject_rows:,} rows, {f.hidden_rows:,} of them hidden; the API lists {f.api_total:,}")
    print(f"{f.requests:,} requests each, one at a time (rate limit burst {f.rate_limit_burst:,}: none limited)")
    print(f"  page  GET /               {quantiles}  {f.page_p50_ms:.1f} / {f.page_p99_ms:.1f}"
          f"{p999(f.page_p999_ms)} ms "
          f"(target p99 <= {f.target_p99_ms:g} ms: {met(f.page_target_met)})")
    print(f"  API   GET /api/v1/usages  {quantiles}  {f.api_p50_ms:.1f} / {f.api_p99_ms:.1f}"
          f"{p999(f.api_p999_ms)} ms "
          f"(target p99 <= {f.target_p99_ms:g} ms: {met(f.api_target_met)})")
    return 0
