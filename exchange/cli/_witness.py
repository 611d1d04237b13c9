"""``exchange audit witness run | keygen``: run a witness that cosigns the access log's checkpoints.

    exchange audit witness keygen --name NAME --out FILE
    exchange audit witness run --log-key [ORIGIN=]VKEY [--log-key ...] --key FILE --state DIR
                               [--host 127.0.0.1] [--port 8080]

``keygen`` writes the witness's private key (mode 0600, never overwritten) and prints its verifier key (type
0x04), which the log and its readers trust. ``run`` serves C2SP tlog-witness ``POST /add-checkpoint`` and
``GET /<origin hash>/checkpoint`` until SIGTERM or SIGINT. A ``--log-key`` without ``ORIGIN=`` is the key of the
exchange's own access log (``EXCHANGE_AUDIT_ORIGIN``); give several keys for one origin during a rotation.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from exchange.audit.witness import Witness
from exchange.audit.witness_http import WitnessHTTPServer, serve_in_thread
from exchange.crypto.cosignature import Cosigner
from exchange.crypto.errors import KeyFormatError
from exchange.crypto.keys import Signer
from exchange.crypto.note import Verifier
from exchange.errors import ConfigError
from exchange.settings import get_settings

__all__ = ["load_witness_key", "parse_log_keys", "register_witness"]

_DEFAULT_PORT = 8080
_MAX_KEY_FILE = 4096


def register_witness(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``witness run`` and ``witness keygen`` to the sub-commands of ``exchange audit``."""
    parser = audit_subparsers.add_parser("witness", help="a witness: cosign checkpoints of logs it checked",
                                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="witness_action", metavar="ACTION", required=True)

    run = actions.add_parser("run", help="serve C2SP tlog-witness: cosign consistent checkpoints")
    run.add_argument("--log-key", action="append", required=True, metavar="[ORIGIN=]VKEY", dest="log_keys",
                     help="a log's verifier key, for ORIGIN (default: EXCHANGE_AUDIT_ORIGIN); repeatable")
    run.add_argument("--key", type=Path, required=True, metavar="FILE",
                     help="the witness's private key file (mode 0600; see `exchange audit witness keygen`)")
    run.add_argument("--state", type=Path, required=True, metavar="DIR",
                     help="where the witness records the last checkpoint it cosigned for each log")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    run.add_argument("--port", type=int, default=_DEFAULT_PORT, metavar="N",
                     help=f"port to listen on (default: {_DEFAULT_PORT}; 0 picks a free one)")
    run.set_defaults(func=_run)

    keygen = actions.add_parser("keygen", help="write a witness private key; print its verifier key")
    keygen.add_argument("--name", required=True, help="the witness's key name, e.g. dpa.example/witness")
    keygen.add_argument("--out", type=Path, required=True, metavar="FILE", help="private key file to create")
    keygen.set_defaults(func=_keygen)


def parse_log_keys(values: Sequence[str], default_origin: str) -> dict[str, list[Verifier]]:
    """``[ORIGIN=]VKEY`` values as origin -> verifier keys; a bare VKEY is for ``default_origin``."""
    logs: dict[str, list[Verifier]] = {}
    for value in values:
        try:
            origin, key = default_origin, Verifier.from_key_string(value)
        except KeyFormatError:
            origin, sep, vkey = value.partition("=")
            if not sep or not origin:
                raise ConfigError(f"--log-key {value!r} is not [ORIGIN=]VKEY with an Ed25519 verifier key") from None
            try:
                key = Verifier.from_key_string(vkey)
            except KeyFormatError as exc:
                raise ConfigError(f"--log-key for {origin!r}: {exc}") from None
        logs.setdefault(origin, [])
        if key not in logs[origin]:
            logs[origin].append(key)
    return logs


def load_witness_key(path: Path) -> Cosigner:
    """The witness's key from a private key file that only its owner can read; :class:`ConfigError` otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read the witness key {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)  # the file checked is the file read
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"the witness key {path} is not a regular file")
        if st.st_mode & 0o077:
            raise ConfigError(f"the witness key {path} has mode {stat.S_IMODE(st.st_mode):04o}: group or others "
                              f"can access it (fix: chmod 600 {path})")
        data = os.read(fd, _MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE:
        raise ConfigError(f"the witness key {path} is not a private key file: more than {_MAX_KEY_FILE} bytes")
    try:
        return Cosigner(Signer.from_private_key_string(data.decode("ascii")))
    except (UnicodeDecodeError, KeyFormatError) as exc:
        reason = exc if isinstance(exc, KeyFormatError) else "not ASCII text"
        raise ConfigError(f"the witness key {path} is not a private key file: {reason}") from None


def _keygen(args: argparse.Namespace) -> int:
    path: Path = args.out
    signer = Signer.generate(args.name)
    cosigner = Cosigner(signer)
    data = (signer.export_private_key_string() + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists: refusing to overwrite a key file") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        try:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    print(f"wrote the private key of witness {cosigner.name} to {path} (mode 0600)", file=sys.stderr)
    print(cosigner.verifier_key())
    return 0


def _run(args: argparse.Namespace) -> int:
    cosigner = load_witness_key(args.key)
    logs = parse_log_keys(args.log_keys, get_settings().audit_origin)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    with Witness(cosigner, logs, args.state) as witness:
        try:
            server = WitnessHTTPServer((args.host, args.port), witness)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            thread = serve_in_thread(server)
            print(f"witness {cosigner.verifier_key()}", file=sys.stderr)
            for origin in witness.origins:
                head = witness.latest(origin)
                keys = ", ".join(f"{k.name}+{k.key_id}" for k in logs[origin])
                print(f"  log {origin} (keys {keys}): cosigned size {0 if head is None else head.size}",
                      file=sys.stderr)
            print(f"listening on {server.url}", file=sys.stderr, flush=True)
            stop.wait()
            server.shutdown()
            thread.join()
        finally:
            server.server_close()
            for s, handler in previous.items():
                signal.signal(s, handler)
    print("witness stopped", file=sys.stderr)
    return 0
