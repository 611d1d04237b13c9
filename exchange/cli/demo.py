"""``exchange demo``: once-only sharing end to end on the local broker (or EXCHANGE_BOOTSTRAP).

Agencies publish signed records; the router verifies them, applies agreements, a protected-address restriction
and one citizen's consent (granted, then revoked mid-run), and delivers minimised, encrypted records; bad records
are quarantined; every decision is logged; each department reads and verifies what it received.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from exchange.demo import DemoSummary, run_demo
from exchange.demo.scenario import CONSENT
from exchange.kafka.local import LocalBroker
from exchange.log import configure_logging
from exchange.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demo on a local broker", description=__doc__)
    parser.add_argument("--events", type=int, default=400, help="records the agencies publish")
    parser.add_argument("--workdir", type=Path, default=Path(".demo"), help="demo keys and registry (default .demo)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    quiet = args.json
    if not args.verbose:
        # The summary reports quarantines and denials; the services' own warnings would only repeat them.
        configure_logging(fmt=args.log_format, level="ERROR")

    def say(line: str) -> None:
        if not quiet:
            print(f"- {line}", file=sys.stderr)

    if settings.bootstrap:
        bootstrap = settings.bootstrap
        say(f"using the cluster at {bootstrap} (EXCHANGE_BOOTSTRAP)")
    else:
        state = LocalBroker(settings.cache_dir, settings.kafka_version, heap=settings.broker_heap).up()
        bootstrap = state.bootstrap
        say(f"local Apache Kafka {state.version} at {bootstrap}")
    summary = run_demo(bootstrap, settings, args.events, args.workdir, say)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        _print(summary)
    return 0 if summary.all_deliveries_verified and summary.audit.get("verified") and summary.audit.get(
        "witnessed") else 1


def _print(s: DemoSummary) -> None:
    print(f"\nexchange demo: {s.seconds:.0f}s, topics under {s.namespace!r}\n")
    print(f"published            {s.published} signed events")
    print("delivered            " + (", ".join(f"{r} {n}" for r, n in sorted(s.delivered.items())) or "nothing"))
    for recipient, by_type in s.fields.items():
        for record_type, fields in by_type.items():
            print(f"  {recipient:<20} {record_type:<30} {', '.join(fields)}")
    print("denied               " + (", ".join(f"{r} {n}" for r, n in sorted(s.denied.items())) or "none"))
    print("quarantined          " + (", ".join(f"{r} {n}" for r, n in sorted(s.quarantined.items())) or "none"))
    print(f"access-log entries   {s.audit_entries}")
    audit = s.audit
    verdict = "yes" if audit.get("verified") else f"NO: {audit.get('first_error')}"
    print(f"access log           {audit.get('entries', 0)} entries sequenced, {audit.get('checkpoints', 0)} signed "
          f"checkpoints, verified: {verdict}")
    print(f"                     every checkpoint cosigned by the witness: {'yes' if audit.get('witnessed') else 'NO'}")
    print(f"consent              one citizen, {CONSENT['recipient']} / {CONSENT['purpose']}:")
    for step in s.consent_story:
        print(f"                     {step}")
    verdict = "yes" if s.all_deliveries_verified else "NO"
    print(f"every delivery verified end to end (router key, decryption, publisher signature): {verdict}")
