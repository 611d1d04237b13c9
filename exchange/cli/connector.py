"""``exchange connector run KIND --config FILE | kinds | reset-offset NAME``: run a connector, list the kinds,
move a source's committed offset."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from connectors.kinds import KINDS, kind
from connectors.sdk.api import Offset, Source, offset_bytes
from connectors.sdk.config import load_config
from connectors.sdk.sink_runtime import SinkRunner
from connectors.sdk.source_runtime import SourceRunner, offsets_topic
from exchange.cli._progress import Progress
from exchange.cli._signals import exit_quietly_after_server_shutdown
from exchange.errors import ConfigError, ExchangeError
from exchange.kafka import TransactionalProducer
from exchange.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("connector", help="run a connector between an agency's system and the exchange",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run one connector until stopped (SIGTERM finishes the batch in progress)")
    run.add_argument("kind", metavar="KIND", help="the connector kind (`exchange connector kinds` lists them)")
    run.add_argument("--config", type=Path, required=True, metavar="FILE", help="the connector's YAML config")
    run.add_argument("--exit-when-idle", type=float, default=None, metavar="SECONDS",
                     help="stop after this long with nothing to do (bulk imports, tests)")
    run.set_defaults(func=_run)
    kinds = sub.add_parser("kinds", help="list the connector kinds")
    kinds.set_defaults(func=_kinds)
    reset = sub.add_parser("reset-offset", help="set a source connector's committed offset (fences a running "
                                                "instance)")
    reset.add_argument("name", metavar="NAME", help="the connector's name (its config's `name`)")
    where = reset.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", metavar="JSON", help='the offset to resume after, e.g. \'{"file": "a.csv", "line": 9}\'')
    where.add_argument("--from-start", action="store_true", help="forget the offset: read the source from its start")
    reset.set_defaults(func=_reset)


def _run(args: argparse.Namespace) -> int:
    chosen = kind(args.kind)
    config: Any = load_config(args.config, chosen.model(), kind=chosen.name)
    settings = get_settings()
    factory = chosen.build()
    if chosen.role == "server":
        exit_quietly_after_server_shutdown()
        factory(config, settings)
        return 0
    progress = Progress(f"{config.name}", unit="records")
    runner: SourceRunner | SinkRunner
    if chosen.role == "source":
        source = factory(config)
        runner = SourceRunner(source, config, agency=config.agency, settings=settings, progress=progress.update)
        if sys.stderr.isatty():  # only a progress line needs the total, and counting may read every file
            progress.total = _remaining(source, runner.position)
    else:
        runner = SinkRunner(factory(config), config, recipient=config.recipient, settings=settings)

    def stop(signum: int, _frame: FrameType | None) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        stats = runner.run(max_idle_s=args.exit_when_idle)
    finally:
        progress.close()
    print(json.dumps({"connector": config.name, "kind": chosen.name, **{
        k: v for k, v in vars(stats).items() if isinstance(v, int)}}))
    return 0


def _remaining(source: Source, position: Offset | None) -> int | None:
    """The records the source has waiting after ``position``, if it can tell; a source that cannot read its
    system now says why at its first poll, not here."""
    try:
        return source.remaining(position)
    except (ExchangeError, OSError):
        return None


def _kinds(_args: argparse.Namespace) -> int:
    for name, found in sorted(KINDS.items()):
        print(f"{name:<14} {found.role:<7} {found.summary}")
    return 0


def _reset(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.from_start:
        value = None
    else:
        try:
            value = offset_bytes(json.loads(args.to))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--to is not JSON: {exc}") from exc
    # The connector's own transactional id: a running instance is fenced, a pending transaction of it resolved.
    producer = TransactionalProducer(f"connector.{args.name}", settings=settings)
    producer.begin()
    producer.produce(offsets_topic(args.name), value, args.name.encode(), partition=0)
    producer.commit()
    shown = "the start" if value is None else value.decode()
    print(f"{args.name}: the committed offset is now {shown}", file=sys.stderr)
    return 0
