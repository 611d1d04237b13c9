"""Argument parsing and error reporting shared by every sub-command."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from exchange.errors import ExchangeError
from exchange.log import configure_logging
from exchange.settings import get_settings

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and found a problem (a check failed, the broker is down)
EXIT_ERROR = 2  # the command could not run as asked


class _CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exchange",
        description="Once-only sharing of citizen records between agencies on Apache Kafka.",
    )
    parser.add_argument("--log-format", choices=["auto", "console", "json"], default=None,
                        help="log rendering (default: EXCHANGE_LOG_FORMAT or 'auto')")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    package = importlib.import_module("exchange.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = cast(_CommandModule, importlib.import_module(f"exchange.cli.{info.name}"))
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    get_settings.cache_clear()  # each invocation reads EXCHANGE_* afresh (tests call main() many times)
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(fmt=args.log_format, level="DEBUG" if args.verbose else None)
    handler = cast(Handler, args.func)
    try:
        return handler(args)
    except ExchangeError as exc:
        print(f"exchange {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"exchange {args.command}: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
