"""``exchange topics apply | plan | list``: the topics of deploy/topics.yaml, created or updated idempotently."""

from __future__ import annotations

import argparse
from pathlib import Path

from exchange.kafka.admin import apply_topics, broker_count
from exchange.kafka.clients import make_admin
from exchange.kafka.local import deploy_dir
from exchange.settings import get_settings
from exchange.topics import TopicInputs, TopicsFile, TopicSpec, discover_inputs, expand, load_spec


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("topics", help="create or update the exchange's topics", description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext in (("apply", "create missing topics and align configs; print what changed"),
                           ("plan", "print what `apply` would change, change nothing"),
                           ("list", "print the topics the spec expands to")):
        action = sub.add_parser(name, help=helptext)
        action.add_argument("--spec", type=Path, default=deploy_dir().parent / "topics.yaml")
        action.add_argument("--schemas", type=Path, default=None, help="default: EXCHANGE_SCHEMAS or ./schemas")
        action.add_argument("--registry", type=Path, default=None,
                            help="default: EXCHANGE_REGISTRY or policies/registry.yaml")
        action.add_argument("--policies", type=Path, default=None, help="default: EXCHANGE_POLICIES or ./policies")
        action.set_defaults(func=_list if name == "list" else _apply, dry_run=name == "plan")


def _inputs(args: argparse.Namespace) -> tuple[TopicsFile, TopicInputs]:
    # Read before any broker is contacted, so a broken file is reported even when no broker runs.
    settings = get_settings()
    inputs = discover_inputs(args.schemas or settings.schemas, args.registry or settings.registry,
                             args.policies or settings.policies)
    return load_spec(args.spec), inputs


def planned_topics(args: argparse.Namespace, brokers: int) -> list[TopicSpec]:
    return expand(*_inputs(args), brokers)


def _list(args: argparse.Namespace) -> int:
    for spec in planned_topics(args, brokers=1):
        print(f"{spec.name}  partitions={spec.partitions}  " +
              "  ".join(f"{k}={v}" for k, v in sorted(spec.config.items())))
    return 0


def _apply(args: argparse.Namespace) -> int:
    spec, inputs = _inputs(args)
    admin = make_admin()
    specs = expand(spec, inputs, broker_count(admin))
    changes = apply_topics(admin, specs, dry_run=args.dry_run, prefix=get_settings().topic_prefix)
    for change in changes:
        print(("would " if args.dry_run else "") + str(change))
    verb = "would change" if args.dry_run else "changed"
    print(f"{len(specs)} topics in the spec; {verb} {len(changes)} thing(s)" if changes else
          f"{len(specs)} topics in the spec; all up to date")
    return 0
