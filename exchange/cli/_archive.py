"""``exchange audit export`` and ``exchange audit verify --archive``: the access log as one offline archive, and
its check with no broker.

    exchange audit export --to FILE [--from I] [--to-index J]
    exchange audit verify --archive FILE [--log-key KEY ...] [--witness-key KEY ...] [--integrity-only] [--json]

``export`` writes entries I.. up to the newest published checkpoint of size at most J (default: the newest),
with that checkpoint and every one before it, the leaf hashes of all earlier entries, the policy bundles and
consent records the decisions rest on, the registry and the schemas. ``verify --archive`` replays the archive
alone: KEY is a verifier key string or a file holding one; without ``--log-key`` the archive's own registry
gives the log's key, and the output says so. It prints ``ok: ...`` and exits 0, or ``FAILED ...`` and exits 1
(a malformed archive too); 2 when it cannot run as asked (a missing file, a key that does not parse).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from exchange.audit.archive import ArchiveContents, ArchiveError, read_archive
from exchange.audit.archive_check import ArchiveReport, verify_archive
from exchange.audit.export import export_archive
from exchange.cli._progress import Progress
from exchange.cli._proof import _load_key
from exchange.crypto.cosignature import CosignatureVerifier
from exchange.crypto.note import Verifier
from exchange.errors import ConfigError
from exchange.settings import get_settings

__all__ = ["add_archive_arguments", "register_export", "verify_archive_command"]

EXIT_OK, EXIT_FAILED = 0, 1
KEY_WARNING = ("WARNING: the log's key was taken from the archive itself (registry.yaml, exchange-audit): this "
               "shows only that the archive agrees with itself. Pin the key the log's operator gave you: "
               "--log-key KEY")


def register_export(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export`` to the sub-commands of ``exchange audit``."""
    export = audit_subparsers.add_parser(
        "export", help="write the log, its checkpoints and what its decisions rest on to one offline archive",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--to", type=Path, required=True, metavar="FILE", help="the archive to write (a zip file)")
    export.add_argument("--from", type=int, default=0, metavar="I", dest="first",
                        help="the first entry to export (default 0; the leaf hashes of earlier ones are included)")
    export.add_argument("--to-index", type=int, default=None, metavar="J", dest="to_index",
                        help="end at the newest published checkpoint of size at most J (default: the newest)")
    export.set_defaults(func=_export)


def add_archive_arguments(verify: argparse.ArgumentParser) -> None:
    """Add ``--archive``, ``--log-key`` and ``--witness-key`` to ``exchange audit verify``."""
    verify.add_argument("--archive", type=Path, default=None, metavar="FILE",
                        help="check an archive written by `exchange audit export`, with no broker")
    verify.add_argument("--log-key", action="append", default=[], metavar="KEY", dest="log_keys",
                        help="with --archive: the log's verifier key, or a file holding it (repeatable during a key "
                             "rotation; default: the archive's own registry, which proves little)")
    verify.add_argument("--witness-key", action="append", default=[], metavar="KEY", dest="witness_keys",
                        help="with --archive: a witness whose cosignature the covering checkpoint must carry "
                             "(type 0x04 key, or a file; repeatable)")


def verify_archive_command(args: argparse.Namespace) -> int:
    """``exchange audit verify --archive FILE``: the handler ``verify`` dispatches to when ``--archive`` is given."""
    path: Path = args.archive
    if getattr(args, "tiles", None) is not None:
        raise ConfigError("--tiles does not go with --archive: the archive holds its own leaf hashes")
    log_keys = [_load_key(v, Verifier.from_key_string, "--log-key") for v in args.log_keys]
    witness_keys = [_load_key(v, CosignatureVerifier.from_key_string, "--witness-key") for v in args.witness_keys]
    try:
        contents = read_archive(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the archive {path}: {exc.strerror or exc}") from exc
    except ArchiveError as exc:
        return _refused(args, path, exc)
    first = contents.first
    progress = Progress("verifying", total=len(contents.entries))
    try:
        report = verify_archive(contents, log_keys, witness_keys,
                                reevaluate=not getattr(args, "integrity_only", False),
                                progress=lambda size: progress.update(size - first))
    except ArchiveError as exc:
        return _refused(args, path, exc)
    finally:
        progress.close()
    result = _result(path, report)
    if args.json:
        if report.log_key_source == "archive":
            print(KEY_WARNING, file=sys.stderr)
        print(json.dumps(result))
    else:
        if report.log_key_source == "archive":
            print(KEY_WARNING)
        for note in contents.manifest_notes:
            print(f"note: the manifest does not match the archive: {note}", file=sys.stderr)
        print(_summary(path, report))
    return EXIT_OK if report.ok else EXIT_FAILED


def _export(args: argparse.Namespace) -> int:
    progress = Progress("exporting")

    def total(count: int) -> None:
        progress.total = count

    try:
        summary = export_archive(get_settings(), args.to, first=args.first, to_index=args.to_index,
                                 progress=progress.update, total=total)
    except OSError as exc:
        raise ConfigError(f"cannot write the archive {args.to}: {exc.strerror or exc}") from exc
    finally:
        progress.close()
    print(f"wrote entries {summary.first} to {summary.end - 1} of {summary.origin} ({summary.end - summary.first} "
          f"entries, {summary.checkpoints} checkpoints up to size {summary.end}, {summary.bundles} policy bundles, "
          f"{summary.consent_records} consent records) to {summary.path}")
    for missing in summary.missing_bundles:
        print(f"WARNING: decisions name policy bundle {missing}, which policy.bundles does not hold: the archive "
              "will not verify", file=sys.stderr)
    return EXIT_FAILED if summary.missing_bundles else EXIT_OK


def _result(path: Path, report: ArchiveReport) -> dict[str, Any]:
    contents, integrity, checkpoint = report.contents, report.integrity, report.checkpoint
    error = report.first_error
    return {
        "archive": {**_archive(path, contents),
                    "checkpoint": None if checkpoint is None else {"size": checkpoint.size,
                                                                   "root": _b64(checkpoint.root_hash)},
                    "witnesses": list(report.witnesses), "manifest_notes": list(contents.manifest_notes)},
        "log_key_source": report.log_key_source,
        "entries": max(0, integrity.entries - contents.first), "checkpoints": integrity.checkpoints,
        "decisions_reevaluated": integrity.decisions_reevaluated, "ok": report.ok,
        "first_error": None if error is None else {"index": error.index, "check": error.check,
                                                   "detail": error.detail},
    }


def _archive(path: Path, contents: ArchiveContents | None) -> dict[str, Any]:
    if contents is None:
        return {"path": str(path)}
    return {"path": str(path), "origin": contents.origin, "first_index": contents.first, "end_index": contents.end}


def _summary(path: Path, report: ArchiveReport) -> str:
    error, contents, checkpoint = report.first_error, report.contents, report.checkpoint
    if error is not None or checkpoint is None:
        return f"FAILED at {error}"
    key = "the log key from the archive" if report.log_key_source == "archive" else "the log key given"
    cosigned = f", cosigned by {', '.join(report.witnesses)}" if report.witnesses else ""
    return (f"ok: {path}: entries {contents.first} to {contents.end - 1} of {contents.origin}, "
            f"{report.integrity.checkpoints} checkpoints verified, {report.integrity.decisions_reevaluated} decisions "
            f"re-evaluated; covered by the checkpoint of size {checkpoint.size} (root {_b64(checkpoint.root_hash)}), "
            f"signed by {key}{cosigned}")


def _refused(args: argparse.Namespace, path: Path, exc: ArchiveError) -> int:
    """A malformed archive: the reason, and exit 1."""
    if args.json:
        print(json.dumps({"archive": _archive(path, None), "log_key_source": None, "entries": 0, "checkpoints": 0,
                          "decisions_reevaluated": 0, "ok": False, "error": type(exc).__name__,
                          "first_error": {"index": None, "check": "malformed archive", "detail": str(exc)}}))
    else:
        print(f"FAILED: the archive is malformed ({type(exc).__name__}): {exc}")
    return EXIT_FAILED


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
