"""``exchange version``: print the package version."""

from __future__ import annotations

import argparse

from exchange import __version__


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("version", help="print the exchange version")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print(__version__)
    return 0
