"""``exchange router run``: route ingress.* until SIGTERM; SIGHUP reloads registry and policies."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType

from exchange.metrics import serve_metrics
from exchange.router import RouterConfig, build_router
from exchange.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("router", help="the policy router", description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="route ingress.* (any number of processes, each with its own --id)")
    run.add_argument("--id", default="router-0",
                     help="stable id of this router; a restart with the same id fences its predecessor")
    run.add_argument("--group", default="exchange-router", help="consumer group shared by all routers")
    run.add_argument("--max-batch", type=int, default=500, help="records per transaction at most")
    run.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    run.add_argument("--exit-when-idle", type=float, default=None, metavar="SECONDS",
                     help="stop after this long without records (batch jobs, tests)")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if port is not None:
        serve_metrics(port)
    router = build_router(RouterConfig(router_id=args.id, group_id=args.group, max_batch=args.max_batch), settings)

    def stop(signum: int, _frame: FrameType | None) -> None:
        router.stop()

    def reload(signum: int, _frame: FrameType | None) -> None:
        router.request_reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    print(f"router {args.id} routing with bundle {router.bundle_id}", file=sys.stderr)
    stats = router.run(max_idle_s=args.exit_when_idle)
    print(json.dumps({"router": args.id, "events": stats.events, "batches": stats.batches,
                      "delivered": dict(stats.delivered), "denied": dict(stats.denied),
                      "quarantined": dict(stats.quarantined), "audit_entries": stats.audit_entries}))
    return 0
