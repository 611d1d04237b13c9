"""``exchange consent``: grant, pause, resume, revoke and list consents on ``consent.events``.

    exchange consent grant --person ID --recipient R --purpose P --type T [--type T2] [--field F ...]
                           [--days N | --until TIME] [--start TIME]
    exchange consent pause|resume|revoke CONSENT_ID
    exchange consent list --person ID [--json]

A person is given by their id and pseudonymised with ``EXCHANGE_PSEUDONYM_SECRET``; the id is never written or
printed. Changes are signed with the ``exchange-consent`` key from the keystore (``EXCHANGE_KEYSTORE``) and return
once the broker acknowledged them. Registry, schemas and policies come from the ``EXCHANGE_*`` settings.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from exchange.consent import CONSENT_TOPIC, ConsentManager, ConsentView, effective_status
from exchange.context import Context
from exchange.envelope.attributes import parse_time
from exchange.policy import ConsentArtefact
from exchange.policy.models import format_instant
from exchange.settings import get_settings

_DEFAULT_DAYS = 365


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("consent", help="grant, pause, resume, revoke and list consents",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="consent_action", metavar="ACTION", required=True)

    grant = actions.add_parser("grant", help="grant a consent; prints its id and version")
    grant.add_argument("--person", required=True, metavar="ID", help="the person's id (pseudonymised, never sent)")
    grant.add_argument("--recipient", required=True, help="agency that may receive the records")
    grant.add_argument("--purpose", required=True, help="purpose code of a consent-based agreement")
    grant.add_argument("--type", dest="types", required=True, action="extend", nargs="+", metavar="TYPE",
                       help="record type covered (repeat for more)")
    grant.add_argument("--field", dest="fields", action="extend", nargs="+", default=None, metavar="FIELD",
                       help="limit delivery to these fields (default: every field the agreement releases)")
    until = grant.add_mutually_exclusive_group()
    until.add_argument("--days", type=int, default=None, help=f"valid for N days from start (default {_DEFAULT_DAYS})")
    until.add_argument("--until", type=_time, default=None, metavar="TIME", help="expiry, RFC 3339 with zone")
    grant.add_argument("--start", type=_time, default=None, metavar="TIME", help="start, RFC 3339 (default: now)")
    _common(grant)
    grant.set_defaults(func=_grant)

    for name, text in (("pause", "pause an active consent"), ("resume", "resume a paused consent"),
                       ("revoke", "revoke a consent for good")):
        change = actions.add_parser(name, help=text)
        change.add_argument("consent_id", metavar="CONSENT_ID")
        _common(change)
        change.set_defaults(func=_change, change=name)

    listing = actions.add_parser("list", help="list a person's consents with their current status")
    listing.add_argument("--person", required=True, metavar="ID", help="the person's id (pseudonymised)")
    listing.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    _common(listing)
    listing.set_defaults(func=_list)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", default=CONSENT_TOPIC, help=f"consent topic (default {CONSENT_TOPIC})")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker (default 30)")


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time with a zone (e.g. 2026-01-01T00:00Z)"
                                         ) from exc


def _grant(args: argparse.Namespace) -> int:
    start: datetime = args.start or datetime.now(UTC)
    expiry: datetime = args.until or start + timedelta(days=args.days or _DEFAULT_DAYS)
    with ConsentManager.connect(Context(get_settings()), topic=args.topic, timeout=args.timeout) as manager:
        artefact = manager.grant(person_id=args.person, recipient=args.recipient, purpose=args.purpose,
                                 record_types=args.types, fields=args.fields, start=start, expiry=expiry)
    print(f"{artefact.consent_id} version {artefact.version} {artefact.status.value}")
    return 0


def _change(args: argparse.Namespace) -> int:
    with ConsentManager.connect(Context(get_settings()), topic=args.topic, timeout=args.timeout) as manager:
        artefact = getattr(manager, args.change)(args.consent_id)
    print(f"{artefact.consent_id} version {artefact.version} {artefact.status.value}")
    return 0


def _list(args: argparse.Namespace) -> int:
    context = Context(get_settings())
    subject = context.pseudonymiser.subject(args.person)
    with ConsentView.connect(context, topic=args.topic) as view:
        # The partition of the subject's key is wherever its records are: read them all, keep the subject's.
        view.sync(view.topic_partitions(args.timeout), timeout=args.timeout)
        consents = sorted(view.artefacts(subject), key=lambda a: (a.start, a.consent_id))
    now = datetime.now(UTC)
    if args.json:
        for artefact in consents:
            print(json.dumps(_row(artefact, now), sort_keys=True))
        return 0
    if not consents:
        print("no consents")
        return 0
    for artefact in consents:
        row = _row(artefact, now)
        fields = "" if row["fields"] is None else f" fields={','.join(row['fields'])}"
        print(f"{row['consent_id']}  v{row['version']}  {row['status']:<8}  {row['recipient']}  {row['purpose']}  "
              f"{','.join(row['record_types'])}{fields}  {row['start']} .. {row['expiry']}")
    return 0


def _row(artefact: ConsentArtefact, now: datetime) -> dict[str, Any]:
    return {
        "consent_id": artefact.consent_id,
        "version": artefact.version,
        "status": effective_status(artefact, now).value,
        "recipient": artefact.recipient,
        "purpose": artefact.purpose,
        "record_types": list(artefact.record_types),
        "fields": None if artefact.fields is None else list(artefact.fields),
        "start": format_instant(artefact.start),
        "expiry": format_instant(artefact.expiry),
    }
