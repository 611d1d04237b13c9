"""``exchange audit prove | check-proof``: prove one entry of the access log, or two of its checkpoints
consistent, and check such a proof offline.

    exchange audit prove --index N [--tiles DIR] [--out FILE] [--entry-out FILE]
    exchange audit prove --consistency A B [--tiles DIR] [--out FILE]
    exchange audit check-proof FILE --log-key KEY [--log-key KEY ...] [--witness-key KEY ...] [--entry FILE]
                               [--origin ORIGIN] [--json]

``prove --index`` reads the tiles directory only: the proof is against its ``checkpoint`` (the newest published,
with the witnesses' cosignatures), in C2SP tlog-proof format with the entry's leaf hash as ``extra``;
``--entry-out`` writes the entry's bytes, which are not in the proof. ``prove --consistency`` takes both
checkpoints from ``audit.checkpoints`` (so it needs the broker) and the hashes from the tiles. Both check the
proof against the tiles' roots before writing it. ``check-proof`` needs no broker and no registry: KEY is a
verifier key string or a file holding one. It prints ``ok: ...`` and exits 0, or ``FAILED: <reason>`` and
exits 1; 2 when it cannot run as asked (a missing file, a key that does not parse).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from exchange.audit._files import read_bounded
from exchange.audit.log import read_checkpoints
from exchange.audit.proof import (
    CONSISTENCY_HEADER,
    CheckedConsistency,
    CheckedInclusion,
    ConsistencyProof,
    ProofError,
    check_consistency_proof,
    check_proof,
    format_consistency_proof,
)
from exchange.audit.prover import NotYetProvableError, TilesError, prove_entry, unverified_checkpoint
from exchange.audit.tiles import CHECKPOINT_PATH, TileReader
from exchange.crypto.checkpoint import Checkpoint
from exchange.crypto.cosignature import CosignatureVerifier
from exchange.crypto.errors import KeyFormatError, MerkleError
from exchange.crypto.merkle import verify_consistency
from exchange.crypto.note import Verifier
from exchange.errors import ConfigError
from exchange.settings import get_settings

__all__ = ["register_proof"]

EXIT_OK, EXIT_FAILED = 0, 1
_MAX_KEY_FILE = 4096
_MAX_INPUT = 1 << 20
_Key = TypeVar("_Key", bound=Verifier)


def register_proof(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``prove`` and ``check-proof`` to the sub-commands of ``exchange audit``."""
    prove = audit_subparsers.add_parser(
        "prove", help="prove one entry included (C2SP tlog-proof), or two checkpoints consistent",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = prove.add_mutually_exclusive_group(required=True)
    what.add_argument("--index", type=int, metavar="N", help="the entry to prove included")
    what.add_argument("--consistency", type=int, nargs=2, metavar=("A", "B"),
                      help="prove the published checkpoint of size A a prefix of that of size B (needs the broker)")
    prove.add_argument("--tiles", type=Path, default=None, metavar="DIR",
                       help="the log's tiles directory (default: EXCHANGE_AUDIT_TILES_DIR)")
    prove.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the proof here (default: stdout)")
    prove.add_argument("--entry-out", type=Path, default=None, metavar="FILE",
                       help="with --index: write the entry's bytes here, for checking with --entry")
    prove.set_defaults(func=_prove)

    check = audit_subparsers.add_parser(
        "check-proof", help="check a proof offline: signatures, cosignatures, hashes, the entry",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("proof", type=Path, metavar="FILE", help="a tlog-proof or consistency proof file")
    check.add_argument("--log-key", action="append", required=True, metavar="KEY", dest="log_keys",
                       help="the log's verifier key, or a file holding it (repeatable during a key rotation)")
    check.add_argument("--witness-key", action="append", default=[], metavar="KEY", dest="witness_keys",
                       help="a witness whose cosignature is required (type 0x04 key, or a file; repeatable)")
    check.add_argument("--entry", type=Path, default=None, metavar="FILE",
                       help="the entry's bytes: check the proof is for exactly this entry")
    check.add_argument("--origin", default=None, help="the log's origin line (default: EXCHANGE_AUDIT_ORIGIN)")
    check.add_argument("--json", action="store_true", help="print the result as one JSON object")
    check.set_defaults(func=_check)


def _prove(args: argparse.Namespace) -> int:
    directory: Path | None = args.tiles or get_settings().audit_tiles_dir
    if directory is None:
        raise ConfigError("no tiles directory: give --tiles DIR or set EXCHANGE_AUDIT_TILES_DIR")
    reader = TileReader(directory)
    if args.consistency is None:
        if args.index < 0:
            raise ConfigError(f"--index {args.index} is negative")
        try:
            note = _read(directory / CHECKPOINT_PATH, "the tiles' checkpoint").decode()
        except UnicodeDecodeError:
            raise ConfigError(f"the checkpoint in {directory} is not UTF-8 text") from None
        text, summary = _prove_inclusion(reader, args.index, note, args.entry_out)
    else:
        if args.entry_out is not None:
            raise ConfigError("--entry-out goes with --index")
        old, new = args.consistency
        if not 0 <= old < new:
            raise ConfigError(f"--consistency {old} {new}: the sizes must be 0 <= A < B")
        text, summary = _prove_consistency(reader, old, new)
    if args.out is None:
        sys.stdout.write(text)
    else:
        _write(args.out, text.encode())
        print(f"wrote {summary} to {args.out}", file=sys.stderr)
    return EXIT_OK


def _prove_inclusion(reader: TileReader, index: int, note: str, entry_out: Path | None) -> tuple[str, str]:
    try:
        proved = prove_entry(reader, index, note)
    except (NotYetProvableError, TilesError) as exc:
        raise ConfigError(str(exc)) from None
    if entry_out is not None:
        _write(entry_out, proved.entry)
        print(f"wrote entry {index} ({len(proved.entry)} bytes) to {entry_out}", file=sys.stderr)
    return proved.proof, f"the proof of entry {index} in the tree of size {proved.checkpoint.size}"


def _prove_consistency(reader: TileReader, old: int, new: int) -> tuple[str, str]:
    published: dict[int, tuple[Checkpoint, str]] = {}
    for value in read_checkpoints(get_settings()):
        try:
            note = value.decode()
            checkpoint = _unverified(note, "a published checkpoint")
        except (UnicodeDecodeError, ConfigError):
            continue  # not a checkpoint: `exchange audit verify` reports it
        published[checkpoint.size] = (checkpoint, note)  # the last one of a size wins
    for size in (old, new):
        if size not in published:
            raise ConfigError(f"no published checkpoint has size {size}; published sizes: {_sizes(published)}")
    (old_cp, old_note), (new_cp, new_note) = published[old], published[new]
    hashes = reader.consistency_proof(old, new)
    try:
        verify_consistency(old, new, old_cp.root_hash, new_cp.root_hash, hashes)
    except MerkleError as exc:
        raise ConfigError(f"the tiles in {reader.directory} do not match the published checkpoints: {exc}") from exc
    text = format_consistency_proof(ConsistencyProof(old, new, tuple(hashes), new_note, old_note))
    return text, f"the consistency proof from size {old} to {new}"


def _check(args: argparse.Namespace) -> int:
    data = _read(args.proof, "the proof")
    log_keys = [_load_key(v, Verifier.from_key_string, "--log-key") for v in args.log_keys]
    witness_keys = [_load_key(v, CosignatureVerifier.from_key_string, "--witness-key") for v in args.witness_keys]
    origin: str = args.origin or get_settings().audit_origin
    consistency = data.split(b"\n", 1)[0] == CONSISTENCY_HEADER.encode()
    if consistency and args.entry is not None:
        raise ConfigError("--entry goes with an inclusion proof, not a consistency proof")
    entry = None if args.entry is None else _read(args.entry, "the entry")
    result: CheckedInclusion | CheckedConsistency
    try:
        if consistency:
            result = check_consistency_proof(data, log_keys, witness_keys, origin=origin)
        else:
            result = check_proof(data, entry, log_keys, witness_keys, origin=origin)
    except ProofError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": type(exc).__name__, "reason": str(exc)}))
        else:
            print(f"FAILED: {exc}")
        return EXIT_FAILED
    print(json.dumps(_as_json(result)) if args.json else _summary(result))
    return EXIT_OK


def _summary(result: CheckedInclusion | CheckedConsistency) -> str:
    cosigned = f", cosigned by {', '.join(result.witnesses)}" if result.witnesses else ""
    if isinstance(result, CheckedConsistency):
        old, new = result.old, result.new
        return (f"ok: {new.origin} of size {old.size} (root {_b64(old.root_hash)}) is a prefix of size {new.size} "
                f"(root {_b64(new.root_hash)}), both signed by {result.log_key}{cosigned}")
    cp = result.checkpoint
    entry = "the entry matches" if result.entry_checked else "no entry given, only its leaf hash is proved"
    return (f"ok: entry {result.index} (leaf hash {result.leaf_hash.hex()}) is in {cp.origin} of size {cp.size} "
            f"(root {_b64(cp.root_hash)}), signed by {result.log_key}{cosigned}; {entry}")


def _as_json(result: CheckedInclusion | CheckedConsistency) -> dict[str, object]:
    common = {"ok": True, "log_key": result.log_key, "witnesses": list(result.witnesses)}
    if isinstance(result, CheckedConsistency):
        return {**common, "kind": "consistency", "origin": result.new.origin,
                "old": {"size": result.old.size, "root": _b64(result.old.root_hash)},
                "new": {"size": result.new.size, "root": _b64(result.new.root_hash)}}
    cp = result.checkpoint
    return {**common, "kind": "inclusion", "origin": cp.origin, "size": cp.size, "root": _b64(cp.root_hash),
            "index": result.index, "leaf_hash": result.leaf_hash.hex(), "entry_checked": result.entry_checked}


def _load_key(value: str, parse: Callable[[str], _Key], flag: str) -> _Key:
    """A verifier key given as its string, or as a file holding it (one trailing newline allowed)."""
    try:
        return parse(value)
    except KeyFormatError as exc:
        as_string = exc
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{flag} is neither a verifier key nor a file holding one ({as_string})")
    try:
        text = _read(path, f"the {flag} file", _MAX_KEY_FILE).decode("ascii")
        return parse(text)
    except (UnicodeDecodeError, KeyFormatError) as exc:
        reason = exc if isinstance(exc, KeyFormatError) else "not ASCII text"
        raise ConfigError(f"{flag} {path} does not hold a verifier key: {reason}") from None


def _unverified(note: str, what: str) -> Checkpoint:
    try:
        return unverified_checkpoint(note, what)
    except TilesError as exc:
        raise ConfigError(str(exc)) from None


def _sizes(published: dict[int, tuple[Checkpoint, str]]) -> str:
    sizes = sorted(published)
    if not sizes:
        return "none"
    shown = sizes if len(sizes) <= 12 else [*sizes[:6], "...", *sizes[-6:]]
    return " ".join(map(str, shown))


def _read(path: Path, what: str, limit: int = _MAX_INPUT) -> bytes:
    try:
        data = read_bounded(path, limit)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if data is None:
        raise ConfigError(f"{what} {path} is larger than {limit} bytes")
    return data


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
