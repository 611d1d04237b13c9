"""``exchange keys``: make identity keys in the keystore and print their registry entries.

    exchange keys new <identity> [--keystore DIR] [--valid-from TIME] [--rotate]
    exchange keys show <identity> [--keystore DIR]
    exchange keys demo [--keystore DIR] [--registry FILE] [--out FILE]

The keystore defaults to ``EXCHANGE_KEYSTORE`` (``keystore/``). Only public material is ever printed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from exchange.registry import Keystore, make_demo_keystore
from exchange.settings import get_settings

_DEFAULT_REGISTRY = Path("policies/registry.yaml")
_DEFAULT_DEMO_OUT = Path(".demo/registry.yaml")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("keys", help="make identity keys and print their registry entries")
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)

    new = actions.add_parser("new", help="write a signing and an encryption key pair for an identity")
    new.add_argument("identity", help="agency or service id, e.g. tax-board")
    _add_keystore(new)
    new.add_argument(
        "--valid-from",
        type=_aware_datetime,
        default=None,
        metavar="TIME",
        help="RFC 3339 time with zone the keys become valid (default: now)",
    )
    new.add_argument(
        "--rotate", action="store_true", help="retire the identity's current keys to <keystore>/retired/ first"
    )
    new.set_defaults(func=_new)

    show = actions.add_parser("show", help="print the public registry entry of an identity's keys")
    show.add_argument("identity")
    _add_keystore(show)
    show.set_defaults(func=_show)

    demo = actions.add_parser("demo", help="give every identity of a registry keys; write the registry with them")
    _add_keystore(demo)
    demo.add_argument("--registry", type=Path, default=_DEFAULT_REGISTRY, help=f"input (default: {_DEFAULT_REGISTRY})")
    demo.add_argument("--out", type=Path, default=_DEFAULT_DEMO_OUT, help=f"output (default: {_DEFAULT_DEMO_OUT})")
    demo.set_defaults(func=_demo)


def _add_keystore(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keystore", type=Path, default=None, metavar="DIR", help="keystore directory (default: EXCHANGE_KEYSTORE)"
    )


def _keystore(args: argparse.Namespace) -> Keystore:
    path: Path | None = args.keystore
    return Keystore(path if path is not None else get_settings().keystore)


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"time {text!r} has no time zone (add Z or +hh:mm)")
    return value


def _new(args: argparse.Namespace) -> int:
    keystore = _keystore(args)
    if args.rotate:
        entry = keystore.rotate_identity(args.identity, valid_from=args.valid_from)
        print(f"retired the previous keys of {args.identity} to {keystore.path}/retired/", file=sys.stderr)
    else:
        entry = keystore.create_identity(args.identity, valid_from=args.valid_from)
    print(f"wrote keys of {args.identity} to {keystore.path}/ (mode 0600)", file=sys.stderr)
    print(entry.to_yaml(), end="")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(_keystore(args).public_entry(args.identity).to_yaml(), end="")
    return 0


def _demo(args: argparse.Namespace) -> int:
    result = make_demo_keystore(_keystore(args).path, args.registry, args.out)
    for identity in result.created:
        print(f"created keys of {identity}")
    for identity in result.reused:
        print(f"reused keys of {identity}")
    print(f"keystore: {result.keystore}/")
    print(f"registry with public keys: {result.registry}")
    return 0
