"""``exchange audit sequencer run | verify | witness``: sequence the access log, check it, cosign it."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from exchange.audit import AUDIT_IDENTITY, LOG_TOPIC, Sequencer, SequencerConfig, verify_log
from exchange.cli._archive import add_archive_arguments, register_export, verify_archive_command
from exchange.cli._progress import Progress
from exchange.cli._proof import register_proof
from exchange.cli._tiles import register_serve
from exchange.cli._witness import register_witness
from exchange.context import Context
from exchange.errors import ConfigError
from exchange.metrics import serve_metrics
from exchange.registry.errors import RegistryError
from exchange.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("audit", help="the access log: sequence it, check it", description=__doc__)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    register_witness(sub)
    register_serve(sub)
    register_proof(sub)
    register_export(sub)
    sequencer = sub.add_parser("sequencer", help="the access-log sequencer (one per log)")
    seq = sequencer.add_subparsers(dest="sequencer_action", metavar="ACTION", required=True)
    run = seq.add_parser("run", help="sequence audit.decisions into audit.log and sign checkpoints")
    run.add_argument("--checkpoint-every", type=int, default=1000, metavar="N", help="entries between checkpoints")
    run.add_argument("--checkpoint-interval", type=float, default=5.0, metavar="S",
                     help="seconds between checkpoints while entries arrive")
    run.add_argument("--exit-when-idle", type=float, default=None, metavar="SECONDS",
                     help="stop after this long without entries (batch jobs, tests)")
    run.add_argument("--tiles", type=Path, default=None, metavar="DIR",
                     help="write the log as C2SP tlog-tiles here (default: EXCHANGE_AUDIT_TILES_DIR); "
                          "serve them with `exchange audit serve --tiles DIR`")
    run.add_argument("--witness", action="append", default=[], metavar="URL",
                     help="a witness that must cosign every checkpoint before it is published (repeatable; "
                          "needs --tiles)")
    run.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                     help="serve Prometheus /metrics on this port (default: EXCHANGE_METRICS_PORT; off)")
    run.add_argument("--unsafe-trust-log-state", action="store_true",
                     help="UNSAFE: adopt the log's state as signed although this sequencer's record of what it "
                          "signed is missing; only for a state directory known to be lost")
    run.set_defaults(func=_run)
    verify = sub.add_parser("verify", help="replay the log: indices, tree, every checkpoint's signature and root, and "
                                              "every decision taken again from its bundle and consent")
    verify.add_argument("--json", action="store_true", help="print the result as one JSON object")
    verify.add_argument("--tiles", type=Path, default=None, metavar="DIR",
                        help="the sequencer's tiles (default: EXCHANGE_AUDIT_TILES_DIR when it exists): a root "
                             "mismatch then names the exact entry at fault")
    verify.add_argument("--integrity-only", action="store_true",
                        help="check indices, tree and checkpoints only; do not take the decisions again")
    add_archive_arguments(verify)
    verify.set_defaults(func=_verify)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    context = Context(settings)
    signer = context.keystore.signer(AUDIT_IDENTITY)
    try:
        context.registry.verifier(AUDIT_IDENTITY, signer.key_id, datetime.now(UTC))
    except RegistryError as exc:
        raise ConfigError(f"the sequencer's key {signer.key_id} cannot sign for {AUDIT_IDENTITY}: {exc}. Add it to "
                          f"the registry (`exchange keys show {AUDIT_IDENTITY}` prints its entry).") from exc
    config = SequencerConfig(checkpoint_every=args.checkpoint_every, checkpoint_interval=args.checkpoint_interval,
                             max_batch=min(1000, args.checkpoint_every),
                             tiles_dir=args.tiles or settings.audit_tiles_dir, witnesses=tuple(args.witness),
                             unsafe_trust_log_state=args.unsafe_trust_log_state)
    sequencer = Sequencer(config, signer, settings=settings)
    metrics_port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if metrics_port:
        serve_metrics(metrics_port)

    def stop(signum: int, _frame: FrameType | None) -> None:
        sequencer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"sequencing {sequencer.origin} from index {sequencer.size}", file=sys.stderr)
    stats = sequencer.run(max_idle_s=args.exit_when_idle)
    print(json.dumps({"origin": sequencer.origin, "size": sequencer.size, "entries": stats.entries,
                      "checkpoints": stats.checkpoints}))
    return 0


def _verify(args: argparse.Namespace) -> int:
    if args.archive is not None:
        return verify_archive_command(args)
    if args.log_keys or args.witness_keys:
        raise ConfigError("--log-key and --witness-key go with --archive")
    settings = get_settings()
    context = Context(settings)
    progress = Progress("verifying")

    def total(count: int) -> None:
        progress.total = count

    tiles = args.tiles or settings.audit_tiles_dir
    report = verify_log(settings, context.registry, catalogue=context.catalogue, reevaluate=not args.integrity_only,
                        progress=progress.update, total=total,
                        tiles=tiles if tiles is not None and (tiles / "checkpoint").is_file() else None)
    progress.close()
    error = report.first_error
    result = {"log": LOG_TOPIC, "entries": report.entries, "checkpoints": report.checkpoints,
              "decisions_reevaluated": report.decisions_reevaluated, "ok": report.ok,
              "first_error": None if error is None else {"index": error.index, "check": error.check,
                                                         "detail": error.detail}}
    if args.json:
        print(json.dumps(result))
    elif error is None:
        print(f"ok: {report.entries} entries, {report.checkpoints} checkpoints verified, "
              f"{report.decisions_reevaluated} decisions re-evaluated")
    else:
        print(f"FAILED at {error}")
    return 0 if error is None else 1
