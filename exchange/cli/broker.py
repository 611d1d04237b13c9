"""``exchange broker up | down | status | logs | kill``: the local Kafka (one node, or a cluster of N with
``up --nodes N``), or a check of EXCHANGE_BOOTSTRAP."""

from __future__ import annotations

import argparse
import sys

from exchange.kafka.cluster import SIGNALS, LocalCluster
from exchange.kafka.local import LocalBroker, broker_answers
from exchange.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("broker", help="run a local Apache Kafka (KRaft) for development and tests",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="fetch (once), start and wait until the broker answers; print its address")
    up.add_argument("--port", type=int, default=None, help="client port (default: a free one)")
    up.add_argument("--controller-port", type=int, default=None, help="controller port (default: a free one)")
    up.add_argument("--nodes", type=int, default=1,
                    help="with 2 or more: a local cluster of that many broker+controller nodes on free ports, "
                         "beside the single-node broker; a second `up` restarts the nodes that are down")
    up.add_argument("--timeout", type=float, default=None,
                    help="seconds to wait for the broker to answer (default 90; a cluster's nodes: 180)")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop the local broker (SIGTERM, then wait; SIGKILL after a timeout)")
    down.add_argument("--purge", action="store_true", help="also remove its data and log")
    down.add_argument("--cluster", action="store_true", help="the local cluster (`up --nodes N`), every node")
    down.set_defaults(func=_down)
    status = sub.add_parser("status", help="exit 0 only when the broker (with --cluster: every node) answers")
    status.add_argument("--cluster", action="store_true", help="each node of the local cluster")
    status.set_defaults(func=_status)
    logs = sub.add_parser("logs", help="print the last lines of the local broker's log")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("--node", type=int, default=None, help="that node of the local cluster")
    logs.set_defaults(func=_logs)
    kill = sub.add_parser("kill", help="send a signal to one node of the local cluster (fault tests)")
    kill.add_argument("--node", type=int, required=True, help="the node's id (1, 2, ...)")
    kill.add_argument("--signal", choices=sorted(SIGNALS), default="KILL",
                      help="KILL (default), STOP (freeze), CONT (resume) or TERM")
    kill.set_defaults(func=_kill)


def _broker() -> LocalBroker:
    settings = get_settings()
    return LocalBroker(settings.cache_dir, settings.kafka_version, heap=settings.broker_heap)


def _cluster(nodes: int = 3) -> LocalCluster:
    settings = get_settings()
    return LocalCluster(settings.cache_dir, settings.kafka_version, nodes=nodes, heap=settings.cluster_heap,
                        directory=settings.cluster_dir)


def _external() -> str | None:
    return get_settings().bootstrap


def _up(args: argparse.Namespace) -> int:
    if args.nodes > 1:
        return _cluster_up(args)
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
    state = broker.up(port=args.port, controller_port=args.controller_port,
                      timeout=90.0 if args.timeout is None else args.timeout)
    verb = "already running" if running is not None and running.pid == state.pid else "started"
    print(f"local broker {verb} (Kafka {state.version}, pid {state.pid}); bootstrap: {state.bootstrap}",
          file=sys.stderr)
    print(state.bootstrap)
    return 0


def _cluster_up(args: argparse.Namespace) -> int:
    # The local cluster is addressed explicitly; EXCHANGE_BOOTSTRAP (often set to its own address) is not asked.
    if args.port is not None or args.controller_port is not None:
        print("a local cluster's nodes take free ports; --port and --controller-port are for one node",
              file=sys.stderr)
        return 2
    cluster = _cluster(args.nodes)
    if not cluster.jars.is_fetched():
        print(f"fetching Apache Kafka {cluster.version} with Maven into {cluster.jars.libs} (once) ...",
              file=sys.stderr)
    layout, started = cluster.up(timeout=180.0 if args.timeout is None else args.timeout)
    if not started:
        verb = "already running"
    elif len(started) == len(layout.nodes):
        verb = "started"
    else:
        verb = f"restarted node(s) {', '.join(map(str, started))}"
    print(f"local cluster {verb} (Kafka {layout.version}, {len(layout.nodes)} nodes, all registered, "
          f"replication factor {layout.replication_factor}, min ISR {layout.min_isr}); bootstrap: {layout.bootstrap}",
          file=sys.stderr)
    print(layout.bootstrap)
    return 0


def _down(args: argparse.Namespace) -> int:
    if args.cluster:
        print(_cluster().down(purge=args.purge))
        return 0
    if _external():
        print("EXCHANGE_BOOTSTRAP is set; an existing cluster is not stopped from here", file=sys.stderr)
        return 1
    print(_broker().down(purge=args.purge))
    _hint_cluster()
    return 0


def _status(args: argparse.Namespace) -> int:
    if args.cluster:
        return _cluster_status()
    external = _external()
    if external:
        ok = broker_answers(external)
        print(f"cluster at {external} (EXCHANGE_BOOTSTRAP): {'answers' if ok else 'does not answer'}")
        return 0 if ok else 1
    broker = _broker()
    state = broker.state()
    if state is None:
        print("no local broker is running (start one with `exchange broker up`)")
        _hint_cluster()
        return 1
    ok = broker_answers(state.bootstrap)
    print(f"local broker pid {state.pid}, Kafka {state.version}, bootstrap {state.bootstrap}: "
          f"{'answers' if ok else 'does not answer (see `exchange broker logs`)'}")
    return 0 if ok else 1


def _cluster_status() -> int:
    cluster = _cluster()
    nodes = cluster.status()
    layout = cluster.layout()
    healthy = sum(1 for n in nodes if n.process == "running" and n.registered)
    print(f"local cluster (Kafka {cluster.version}, {len(nodes)} nodes): {healthy} of {len(nodes)} running and "
          f"registered; bootstrap {layout.bootstrap if layout else '-'}")
    for node in nodes:
        print(node)
    return 0 if healthy == len(nodes) else 1


def _hint_cluster() -> None:
    """On stderr, when a local cluster has nodes running: the flag that addresses it."""
    cluster = _cluster()
    layout = cluster.layout()
    if layout is not None and any(cluster.pid(n.node_id) is not None for n in layout.nodes):
        print("(a local cluster runs too: `exchange broker status --cluster`, `exchange broker down --cluster`)",
              file=sys.stderr)


def _logs(args: argparse.Namespace) -> int:
    print(_broker().tail(args.lines) if args.node is None else _cluster().tail(args.node, args.lines))
    return 0


def _kill(args: argparse.Namespace) -> int:
    print(_cluster().kill(args.node, args.signal))
    return 0
