"""``exchange broker up | down | status | logs``: the local single-node Kafka, or a check of EXCHANGE_BOOTSTRAP."""

from __future__ import annotations

import argparse
import sys

from exchange.kafka.local import LocalBroker, broker_answers
from exchange.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("broker", help="run a local Apache Kafka (KRaft) for development and tests",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="fetch (once), start and wait until the broker answers; print its address")
    up.add_argument("--port", type=int, default=None, help="client port (default: a free one)")
    up.add_argument("--controller-port", type=int, default=None, help="controller port (default: a free one)")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the broker to answer")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop the local broker (SIGTERM, then wait)")
    down.add_argument("--purge", action="store_true", help="also remove its data and log")
    down.set_defaults(func=_down)
    status = sub.add_parser("status", help="exit 0 only when the broker answers")
    status.set_defaults(func=_status)
    logs = sub.add_parser("logs", help="print the last lines of the local broker's log")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.set_defaults(func=_logs)


def _broker() -> LocalBroker:
    settings = get_settings()
    return LocalBroker(settings.cache_dir, settings.kafka_version, heap=settings.broker_heap)


def _external() -> str | None:
    return get_settings().bootstrap


def _up(args: argparse.Namespace) -> int:
    external = _external()
    if external:
        if broker_answers(external):
            print(f"EXCHANGE_BOOTSTRAP is set; using the existing cluster at {external}")
            return 0
        print(f"EXCHANGE_BOOTSTRAP is set to {external}, which does not answer", file=sys.stderr)
        return 1
    broker = _broker()
    if not broker.is_fetched():
        print(f"fetching Apache Kafka {broker.version} with Maven into {broker.libs} (once) ...", file=sys.stderr)
    running = broker.state()
    state = broker.up(port=args.port, controller_port=args.controller_port, timeout=args.timeout)
    verb = "already running" if running is not None and running.pid == state.pid else "started"
    print(f"local broker {verb} (Kafka {state.version}, pid {state.pid}); bootstrap: {state.bootstrap}",
          file=sys.stderr)
    print(state.bootstrap)
    return 0


def _down(args: argparse.Namespace) -> int:
    if _external():
        print("EXCHANGE_BOOTSTRAP is set; an existing cluster is not stopped from here", file=sys.stderr)
        return 1
    print(_broker().down(purge=args.purge))
    return 0


def _status(args: argparse.Namespace) -> int:
    external = _external()
    if external:
        ok = broker_answers(external)
        print(f"cluster at {external} (EXCHANGE_BOOTSTRAP): {'answers' if ok else 'does not answer'}")
        return 0 if ok else 1
    broker = _broker()
    state = broker.state()
    if state is None:
        print("no local broker is running (start one with `exchange broker up`)")
        return 1
    ok = broker_answers(state.bootstrap)
    print(f"local broker pid {state.pid}, Kafka {state.version}, bootstrap {state.bootstrap}: "
          f"{'answers' if ok else 'does not answer (see `exchange broker logs`)'}")
    return 0 if ok else 1


def _logs(args: argparse.Namespace) -> int:
    print(_broker().tail(args.lines))
    return 0
