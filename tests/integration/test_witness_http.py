"""The witness over real HTTP on 127.0.0.1: the server in a thread of the test, the client and raw requests
against it, and the CLI in a subprocess. No broker is needed."""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.audit.witness import MAX_REQUEST_BYTES, Witness, format_add_checkpoint, origin_hash
from exchange.audit.witness_client import (
    WitnessConflictError,
    WitnessForbiddenError,
    WitnessInconsistentError,
    WitnessResponseError,
    WitnessUnavailableError,
    WitnessUnknownLogError,
    add_checkpoint,
)
from exchange.audit.witness_http import SIZE_CONTENT_TYPE, WitnessHTTPServer, serve_in_thread
from exchange.cli._witness import load_witness_key, parse_log_keys, register_witness
from exchange.crypto.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from exchange.crypto.cosignature import CosignatureVerifier, Cosigner, verify_cosignature_line
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.errors import ConfigError, ExchangeError

ORIGIN = "test.local/access-log"
LOG = Signer.generate("exchange-audit")
COSIGNER = Cosigner(Signer.generate("witness.test/w1"))
HASHES = [leaf_hash(b"entry %d" % i) for i in range(40)]
FORK = HASHES[:6] + [leaf_hash(b"forged %d" % i) for i in range(6, 40)]

Serve = Callable[[Path], str]


def tree(size: int, hashes: list[bytes] = HASHES) -> CompactTree:
    t = CompactTree()
    t.extend(hashes[:size])
    return t


def note(size: int, *, hashes: list[bytes] = HASHES, signer: Signer = LOG, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, tree(size, hashes).root()), [signer])


def proof(old: int, new: int, hashes: list[bytes] = HASHES) -> list[bytes]:
    return tree(new, hashes).consistency_proof(old, hashes) if old else []


def text_of(signed: str) -> str:
    return signed[: signed.rfind("\n\n") + 1]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a witness on a state directory, served on an ephemeral port; everything is stopped afterwards."""
    running: list[tuple[WitnessHTTPServer, threading.Thread, Witness]] = []

    def start(state: Path) -> str:
        witness = Witness(COSIGNER, {ORIGIN: [LOG.verifier()]}, state)
        server = WitnessHTTPServer(("127.0.0.1", 0), witness, request_timeout=5)
        running.append((server, serve_in_thread(server, poll_interval=0.02), witness))
        return server.url

    yield start
    stop_all(running)


def stop_all(running: list[tuple[WitnessHTTPServer, threading.Thread, Witness]]) -> None:
    while running:
        server, thread, witness = running.pop()
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        witness.close()


def raw(url: str, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def test_growing_checkpoints_are_cosigned_over_http(serve: Serve, tmp_path: Path) -> None:
    url = serve(tmp_path)
    verifier = CosignatureVerifier.from_key_string(COSIGNER.verifier_key())
    old = 0
    for size in (1, 2, 5, 8, 13, 21, 34, 40):
        signed = note(size)
        lines = add_checkpoint(url, old, proof(old, size), signed, timeout=5)
        assert len(lines) == 1
        verify_cosignature_line(text_of(signed), lines[0], verifier)
        checkpoint = open_checkpoint(signed + lines[0], [verifier], log_key=LOG.verifier())
        assert checkpoint.size == size
        old = size
    # The same checkpoint again is cosigned again (idempotent), through the full /add-checkpoint URL too.
    assert len(add_checkpoint(url + "/add-checkpoint", 40, [], note(40), timeout=5)) == 1


def test_a_stale_old_size_is_409_with_the_witness_size(serve: Serve, tmp_path: Path) -> None:
    url = serve(tmp_path)
    add_checkpoint(url, 0, [], note(8), timeout=5)
    with pytest.raises(WitnessConflictError) as caught:
        add_checkpoint(url, 0, [], note(13), timeout=5)
    assert (caught.value.size, caught.value.status) == (8, 409)
    status, content_type, body = raw(url, "POST", "/add-checkpoint", format_add_checkpoint(5, proof(5, 13), note(13)))
    assert (status, content_type, body) == (409, SIZE_CONTENT_TYPE, b"8\n")
    # The client retries from the size it learned.
    add_checkpoint(url, caught.value.size, proof(8, 13), note(13), timeout=5)


def test_bad_proofs_forks_and_smaller_checkpoints_are_refused(serve: Serve, tmp_path: Path) -> None:
    url = serve(tmp_path)
    add_checkpoint(url, 0, [], note(13), timeout=5)
    good = proof(13, 21)
    bad = [good[0][:-1] + bytes([good[0][-1] ^ 1]), *good[1:]]
    with pytest.raises(WitnessInconsistentError) as caught:
        add_checkpoint(url, 13, bad, note(21), timeout=5)
    assert caught.value.status == 422
    with pytest.raises(WitnessInconsistentError):  # another root at the same size
        add_checkpoint(url, 13, [], note(13, hashes=FORK), timeout=5)
    with pytest.raises(WitnessInconsistentError):  # a fork with its own proof
        add_checkpoint(url, 13, proof(13, 21, FORK), note(21, hashes=FORK), timeout=5)
    with pytest.raises(WitnessResponseError) as smaller:  # old above the checkpoint's size: 400
        add_checkpoint(url, 13, [], note(8), timeout=5)
    assert smaller.value.status == 400
    with pytest.raises(WitnessConflictError):
        add_checkpoint(url, 8, [], note(8), timeout=5)
    add_checkpoint(url, 13, good, note(21), timeout=5)


def test_a_bad_log_signature_is_403_and_an_unknown_origin_404(serve: Serve, tmp_path: Path) -> None:
    url = serve(tmp_path)
    with pytest.raises(WitnessForbiddenError) as forbidden:
        add_checkpoint(url, 0, [], note(8, signer=Signer.generate(LOG.name)), timeout=5)
    assert forbidden.value.status == 403
    tampered = note(8).replace("\n8\n", "\n9\n")
    with pytest.raises(WitnessForbiddenError):
        add_checkpoint(url, 0, [], tampered, timeout=5)
    with pytest.raises(WitnessUnknownLogError) as unknown:
        add_checkpoint(url, 0, [], note(8, origin="other.example/log"), timeout=5)
    assert unknown.value.status == 404


@pytest.mark.parametrize(("body", "status"), [
    (b"", 400),
    (b"old 1\n\n", 400),
    (b"new 1\n\nx\n", 400),
    (b"old 0\nnot base64\n\nx\n", 400),
    (b"old 0\n\n" + b"x" * (MAX_REQUEST_BYTES - 7), 400),  # exactly the limit: read, then refused as malformed
    (b"old 0\n\n" + b"x" * (MAX_REQUEST_BYTES - 6), 413),
])
def test_malformed_and_oversized_bodies(serve: Serve, tmp_path: Path, body: bytes, status: int) -> None:
    url = serve(tmp_path)
    assert raw(url, "POST", "/add-checkpoint", body)[0] == status


def test_an_announced_oversized_body_is_refused_before_it_is_sent(serve: Serve, tmp_path: Path) -> None:
    url = serve(tmp_path)
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.putrequest("POST", "/add-checkpoint")
        conn.putheader("Content-Length", str(10**12))
        conn.endheaders()
        response = conn.getresponse()
        assert (response.status, response.getheader("Connection")) == (413, "close")
    finally:
        conn.close()


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    ("POST", "/add-checkpoint", {}, 411),  # no Content-Length
    ("POST", "/add-checkpoint", {"Transfer-Encoding": "chunked"}, 411),
    ("POST", "/add-checkpoint", {"Content-Length": "-1"}, 400),
    ("POST", "/add-checkpoint", {"Content-Length": "1e3"}, 400),
    ("POST", "/other", {"Content-Length": "0"}, 404),
    ("GET", "/add-checkpoint", {}, 405),
    ("GET", "/", {}, 404),
    ("GET", f"/{'0' * 64}/checkpoint", {}, 404),
    ("PUT", "/add-checkpoint", {"Content-Length": "0"}, 501),
])
def test_other_requests(serve: Serve, tmp_path: Path, method: str, path: str, headers: dict[str, str],
                        status: int) -> None:
    url = serve(tmp_path)
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        assert conn.getresponse().status == status
    finally:
        conn.close()


def test_the_monitoring_api_serves_the_cosigned_checkpoint(serve: Serve, tmp_path: Path) -> None:
    url = serve(tmp_path)
    path = f"/{origin_hash(ORIGIN)}/checkpoint"
    assert raw(url, "GET", path)[0] == 404
    add_checkpoint(url, 0, [], note(8), timeout=5)
    status, _, body = raw(url, "GET", path)
    assert status == 200
    checkpoint = open_checkpoint(body, [COSIGNER.verifier()], log_key=LOG.verifier())
    assert checkpoint.size == 8


def test_a_restarted_witness_keeps_its_state(tmp_path: Path) -> None:
    running: list[tuple[WitnessHTTPServer, threading.Thread, Witness]] = []
    try:
        for round_, (old, new) in enumerate([(0, 8), (8, 21)]):
            witness = Witness(COSIGNER, {ORIGIN: [LOG.verifier()]}, tmp_path)
            server = WitnessHTTPServer(("127.0.0.1", 0), witness)
            running.append((server, serve_in_thread(server, poll_interval=0.02), witness))
            if round_:
                with pytest.raises(WitnessConflictError) as caught:
                    add_checkpoint(server.url, 0, [], note(new), timeout=5)
                assert caught.value.size == 8
                with pytest.raises(WitnessInconsistentError):
                    add_checkpoint(server.url, 8, [], note(8, hashes=FORK), timeout=5)
            add_checkpoint(server.url, old, proof(old, new), note(new), timeout=5)
            stop_all(running)
    finally:
        stop_all(running)


def test_concurrent_clients_over_http_cannot_roll_the_log_back(serve: Serve, tmp_path: Path) -> None:
    url = serve(tmp_path)
    add_checkpoint(url, 0, [], note(8), timeout=5)
    outcomes: list[int] = []
    barrier = threading.Barrier(12)
    lock = threading.Lock()

    def submit(size: int) -> None:
        barrier.wait()
        try:
            add_checkpoint(url, 8, proof(8, size), note(size), timeout=10)
            result = size
        except WitnessConflictError as exc:
            result = -exc.size
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=submit, args=(size,)) for size in range(9, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o > 0]
    assert len(winners) == 1
    assert sorted(outcomes) == sorted([winners[0]] + [-winners[0]] * 11)


def test_the_client_reports_an_absent_witness_and_refuses_bad_urls(tmp_path: Path) -> None:
    server = WitnessHTTPServer(("127.0.0.1", 0), Witness(COSIGNER, {ORIGIN: [LOG.verifier()]}, tmp_path))
    url = server.url
    server.server_close()
    server.witness.close()
    with pytest.raises(WitnessUnavailableError) as caught:
        add_checkpoint(url, 0, [], note(8), timeout=2)
    assert caught.value.status is None
    for bad in ("file:///etc/passwd", "ftp://x/", "127.0.0.1:80"):
        with pytest.raises(ValueError, match="http"):
            add_checkpoint(bad, 0, [], note(8))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(
    [b"old ", b"0", b"8", b"\n", b"\n\n", b"\xe2\x80\x94 ", b"AAAA", ORIGIN.encode(), note(8).encode(), b"\xff"]),
    max_size=10).map(b"".join)))
def test_random_bodies_over_http_get_client_errors(serve_once: str, body: bytes) -> None:
    status = raw(serve_once, "POST", "/add-checkpoint", body)[0]
    assert status in (200, 400, 403, 404, 409, 422), status


@pytest.fixture
def serve_once(serve: Serve, tmp_path: Path) -> str:
    return serve(tmp_path)


def _cli(*args: str) -> list[str]:
    script = ("import argparse, sys\n"
              "from exchange.cli._witness import register_witness\n"
              "parser = argparse.ArgumentParser(prog='exchange audit')\n"
              "register_witness(parser.add_subparsers(dest='action', required=True))\n"
              "args = parser.parse_args(sys.argv[1:])\n"
              "sys.exit(args.func(args))\n")
    return [sys.executable, "-c", script, *args]


def _main(*args: str) -> int:
    """``exchange audit witness ...`` in this process, reporting errors as the exchange's CLI does."""
    parser = argparse.ArgumentParser(prog="exchange audit")
    register_witness(parser.add_subparsers(dest="action", required=True))
    parsed = parser.parse_args(args)
    try:
        return int(parsed.func(parsed))
    except ExchangeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def test_keygen_writes_a_private_key_file_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "witness.key"
    assert _main("witness", "keygen", "--name", "dpa.test/witness", "--out", str(key)) == 0
    vkey = capsys.readouterr().out.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert load_witness_key(key).verifier_key() == vkey == CosignatureVerifier.from_key_string(vkey).key_string()
    assert "PRIVATE" not in vkey
    assert _main("witness", "keygen", "--name", "other", "--out", str(key)) == 2
    assert "exists" in capsys.readouterr().err
    assert _main("witness", "keygen", "--name", "bad name", "--out", str(tmp_path / "k2")) == 2
    assert not (tmp_path / "k2").exists()


def test_run_refuses_a_key_others_can_read_and_bad_log_keys(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "witness.key"
    assert _main("witness", "keygen", "--name", "dpa.test/witness", "--out", str(key)) == 0
    args = ("witness", "run", "--key", str(key), "--state", str(tmp_path / "state"), "--port", "0")
    os.chmod(key, 0o640)
    assert _main(*args, "--log-key", LOG.verifier_key()) == 2
    assert "chmod 600" in capsys.readouterr().err
    os.chmod(key, 0o600)
    for bad in ("not a key", f"{ORIGIN}=not a key", f"={LOG.verifier_key()}", COSIGNER.verifier_key()):
        assert _main(*args, "--log-key", bad) == 2
        assert "--log-key" in capsys.readouterr().err
    (tmp_path / "garbage.key").write_text("PRIVATE+KEY+garbage\n")
    os.chmod(tmp_path / "garbage.key", 0o600)
    with pytest.raises(ConfigError, match="not a private key file"):
        load_witness_key(tmp_path / "garbage.key")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_witness_key(tmp_path)


def test_log_keys_are_bound_to_their_origins() -> None:
    other = Signer.generate("other-log")
    logs = parse_log_keys([LOG.verifier_key(), f"other.example/log={other.verifier_key()}",
                           f"other.example/log={LOG.verifier_key()}", LOG.verifier_key()], ORIGIN)
    assert logs == {ORIGIN: [LOG.verifier()], "other.example/log": [other.verifier(), LOG.verifier()]}


def test_the_cli_runs_a_witness_until_sigterm(tmp_path: Path) -> None:
    key = tmp_path / "witness.key"
    assert _main("witness", "keygen", "--name", "dpa.test/witness", "--out", str(key)) == 0
    verifier = load_witness_key(key).verifier()
    run = _cli("witness", "run", "--log-key", f"{ORIGIN}={LOG.verifier_key()}", "--key", str(key),
               "--state", str(tmp_path / "state"), "--port", "0")
    process = subprocess.Popen(run, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url is not None
        lines = add_checkpoint(url, 0, [], note(8), timeout=5)
        verify_cosignature_line(text_of(note(8)), lines[0], verifier)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert (tmp_path / "state" / f"{origin_hash(ORIGIN)}.checkpoint").exists()
