"""``exchange tracker serve | index | show | token``: the citizen data tracker.

    exchange tracker serve [--host H] [--port P] [--tiles DIR] [--witness-key KEY ...] [--no-index]
    exchange tracker index [--rebuild] [--follow]
    exchange tracker show --person ID --operator AGENCY --basis TEXT [--json]
    exchange tracker token --person ID [--lifetime SECONDS]

``serve`` runs the web page and JSON API (docs/tracker.md), with the indexer following ``audit.log`` in the same
process unless ``--no-index``. ``index`` brings the index up to the log's end (``--rebuild``: from entry 0, after
forgetting every row; ``--follow``: then keep following). ``show`` answers an operator's written request: it
first writes the lookup to the access log as an access of its own, then prints every entry about the person
(hidden ones and denials too, marked). ``token`` mints a citizen token with the demo identity provider's key in
the keystore (for the demo and tests; a deployment uses its real identity provider).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import uvicorn

from exchange.cli._progress import Progress
from exchange.cli._signals import exit_quietly_after_server_shutdown
from exchange.context import Context
from exchange.errors import ConfigError
from exchange.metrics import serve_metrics
from exchange.runner import ServiceThread
from exchange.settings import get_settings
from exchange.tracker.indexer import NEVER, Indexer
from exchange.tracker.lookup import record_lookup
from exchange.tracker.pages import format_time
from exchange.tracker.runtime import open_store, tracker_app
from exchange.tracker.tokens import ensure_demo_issuer_key, mint_token

__all__ = ["register"]

DEFAULT_PORT = 8470


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tracker", help="the citizen data tracker: who saw my data, when and why",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="serve the web page and JSON API (and index the log)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--tiles", type=Path, default=None, metavar="DIR",
                       help="the log's tiles, to prove rows from (default: EXCHANGE_AUDIT_TILES_DIR)")
    serve.add_argument("--witness-key", action="append", default=[], metavar="KEY", dest="witness_keys",
                       help="a witness key shown to citizens for checking proofs (repeatable)")
    serve.add_argument("--no-index", action="store_true", help="do not index here (an indexer runs elsewhere)")
    serve.add_argument("--secure-cookie", action="store_true", help="mark the session cookie Secure (behind TLS)")
    serve.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                       help="serve Prometheus /metrics on this port (default: EXCHANGE_METRICS_PORT; off)")
    serve.set_defaults(func=_serve)
    index = sub.add_parser("index", help="index audit.log up to its end")
    index.add_argument("--rebuild", action="store_true", help="forget every row and index from entry 0")
    index.add_argument("--follow", action="store_true", help="keep following the log after its end")
    index.add_argument("--batch", type=int, default=5000, metavar="N",
                       help="entries per database transaction (default 5000)")
    index.set_defaults(func=_index)
    show = sub.add_parser("show", help="an operator's answer to a person's written request (logged as an access)")
    show.add_argument("--person", required=True, metavar="ID", help="the person id (never stored or logged)")
    show.add_argument("--operator", required=True, metavar="AGENCY",
                      help="the id of the agency that answers the request (the lookup is logged as its access)")
    show.add_argument("--basis", required=True, metavar="TEXT",
                      help="the legal basis of the request, e.g. 'GDPR Art. 15, request 2026/117'")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=_show)
    token = sub.add_parser("token", help="mint a citizen token with the demo identity provider's key")
    token.add_argument("--person", required=True, metavar="ID", help="the person id the token names")
    token.add_argument("--lifetime", type=float, default=3600.0, metavar="SECONDS", help="default one hour")
    token.set_defaults(func=_token)


def _serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    context = Context(settings)
    store = open_store(settings)
    tiles = args.tiles or settings.audit_tiles_dir
    metrics_port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if metrics_port:
        serve_metrics(metrics_port)
    app = tracker_app(settings, context, store, tiles_dir=tiles, witness_keys=args.witness_keys,
                      secure_cookie=args.secure_cookie)
    indexer = None if args.no_index else ServiceThread(
        Indexer(store, settings, context.registry, context.catalogue), "tracker-indexer")
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_config=None,
                                           access_log=False, server_header=False))
    print(f"tracker on http://{args.host}:{args.port}/ (index: {store.where}"
          f"{'' if tiles else '; no tiles: rows have no proofs'})", file=sys.stderr)
    exit_quietly_after_server_shutdown()
    try:
        server.run()
    finally:
        if indexer is not None:
            indexer.stop()
        store.close()
    return 0


def _index(args: argparse.Namespace) -> int:
    settings = get_settings()
    context = Context(settings)
    with open_store(settings) as store:
        if args.rebuild:
            store.reset()
        if not 1 <= args.batch <= 100_000:
            raise ConfigError("--batch must be from 1 to 100000")
        indexer = Indexer(store, settings, context.registry, context.catalogue, batch=args.batch)

        def stop(signum: int, _frame: FrameType | None) -> None:
            indexer.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            progress = Progress("indexing audit.log", total=indexer.remaining())
            indexer.catch_up(progress.update)
            progress.close()
            if args.follow:
                print("following audit.log (Ctrl-C to stop)", file=sys.stderr)
                indexer.run()
        finally:
            indexer.close()
        stats = indexer.stats
        print(json.dumps({"indexed": stats.indexed, "next_index": stats.next_index, "unreadable": stats.unreadable,
                          "out_of_sequence": stats.out_of_sequence, **store.counts()}))
    return 0


def _show(args: argparse.Namespace) -> int:
    settings = get_settings()
    context = Context(settings)
    subject = context.pseudonymiser.subject(args.person)
    entry_id = record_lookup(settings, context.catalogue, subject, args.operator, args.basis)
    with open_store(settings) as store:
        indexer = Indexer(store, settings, context.registry, context.catalogue)
        try:
            indexer.catch_up()
        finally:
            indexer.close()
        rows = store.entries(subject)
    now = int(time.time() * 1_000_000)
    listed = [{"log_index": r.log_index, "time": format_time(r.decided_at), "outcome": r.outcome,
               "recipient": r.recipient, "recipient_name": r.recipient_name, "record_type": r.record_type,
               "fields": list(r.fields), "purpose": r.purpose, "legal_basis": r.legal_basis,
               "consent_ref": r.consent_ref, "reasons": list(r.reasons),
               "hidden_until": None if r.visible_from <= now or r.outcome != "PERMIT" else
               ("until a rebuild finds its bundle" if r.visible_from >= NEVER else format_time(r.visible_from))}
              for r in rows]
    if args.json:
        print(json.dumps({"subject_ref": subject, "lookup_entry": entry_id, "entries": listed}))
        return 0
    print(f"subject {subject}: {len(listed)} entr{'y' if len(listed) == 1 else 'ies'}; this lookup was logged as "
          f"decision {entry_id}")
    for row, item in zip(rows, listed, strict=True):
        hidden = f"  [hidden from the subject until {item['hidden_until']}]" if item["hidden_until"] else ""
        print(f"{row.log_index:>8}  {item['time']}  {row.outcome:<7} {row.recipient or '-':<20} "
              f"{row.record_type or '-':<30} {', '.join(row.fields) or '-'}  {row.purpose or ''}{hidden}")
    return 0


def _token(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.lifetime <= 0 or args.lifetime > 366 * 86400:
        raise ConfigError("--lifetime must be more than 0 and at most a year of seconds")
    key = ensure_demo_issuer_key(settings.keystore)
    print(mint_token(key, settings.tracker_issuer, args.person, settings.tracker_audience, args.lifetime,
                     person_claim=settings.tracker_person_claim))
    return 0

