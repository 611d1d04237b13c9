"""``exchange demo``: once-only sharing end to end on the local broker (or EXCHANGE_BOOTSTRAP).

Agencies publish signed records; the router verifies them, applies agreements, a protected-address restriction
and one citizen's consent (granted, then revoked mid-run), and delivers minimised, encrypted records; bad records
are quarantined; every decision is logged; each department reads and verifies what it received.
"""

from __future__ import annotations

import argparse
import contextlib
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
    parser.add_argument("--keep-tracker", action=argparse.BooleanOptionalAction, default=None,
                        help="keep the data tracker serving until Enter or Ctrl-C (default: when on a terminal)")
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
    try:
        if args.json:
            print(json.dumps(summary.as_dict(), indent=2))
        else:
            _print(summary)
        keep = args.keep_tracker if args.keep_tracker is not None else sys.stdin.isatty() and not args.json
        if keep and summary.running_tracker is not None:
            print("\nThe data tracker keeps serving until you press Enter (or Ctrl-C).", file=sys.stderr)
            with contextlib.suppress(EOFError, KeyboardInterrupt):
                input()
    finally:
        if summary.running_tracker is not None:
            summary.running_tracker.stop()
    tracker = summary.tracker
    return 0 if summary.all_deliveries_verified and summary.audit.get("verified") and summary.audit.get(
        "witnessed") and tracker.get("shows_the_grant") and tracker.get("hides_the_denials") else 1


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
    t = s.tracker
    if t:
        shown = "yes" if t.get("shows_the_grant") and t.get("hides_the_denials") else "NO"
        print(f"data tracker         {t['url']}  ({t['rows']} rows for the consent citizen; the delivery during "
              f"the grant listed, the denials not: {shown})")
        print("                     sign in there with the citizen's token (valid 8 hours):")
        print(f"                     {t['token']}")
