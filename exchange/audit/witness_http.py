"""The witness over HTTP (C2SP tlog-witness), on the standard library's ThreadingHTTPServer.

- ``POST /add-checkpoint``: the body is parsed and answered by :class:`~exchange.audit.witness.Witness`;
  200 with the cosignature line(s), or the status of its :class:`~exchange.audit.witness.WitnessError` (409 with
  the witness's size in a ``text/x.tlog.size`` body). The body must come with a ``Content-Length`` (411 without
  one); a length above the limit is refused with 413 before anything is read.
- ``GET /<hex SHA-256 of the origin>/checkpoint``: the checkpoint last cosigned for that log, with the log's
  signatures and the witness's cosignature (the spec's monitoring API); 404 if there is none.

Connections are kept alive (HTTP/1.1); a socket idle for longer than ``request_timeout`` seconds is closed.
A checkpoint that is validly signed but inconsistent is logged with its note, as evidence of a misbehaving log.
"""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exchange.audit.witness import (
    ConflictError,
    InconsistentCheckpointError,
    Witness,
    WitnessError,
)
from exchange.log import get_logger

__all__ = ["ADD_CHECKPOINT_PATH", "SIZE_CONTENT_TYPE", "WitnessHTTPServer", "serve_in_thread"]

ADD_CHECKPOINT_PATH = "/add-checkpoint"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_TEXT = "text/plain; charset=utf-8"
_CHECKPOINT_PATH = re.compile(r"/([0-9a-f]{64})/checkpoint")
_LENGTH = re.compile(r"[0-9]{1,19}", re.ASCII)

log = get_logger("exchange.audit.witness")


class WitnessHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer answering tlog-witness requests for one :class:`Witness`.

    ``WitnessHTTPServer((host, port), witness)``; port 0 picks a free port (see :attr:`url`). The caller owns
    the witness and closes it after :meth:`server_close`.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # clients of several logs may connect at once; the default backlog is 5

    def __init__(self, address: tuple[str, int], witness: Witness, *, request_timeout: float = 10.0) -> None:
        self.witness = witness
        self.request_timeout = request_timeout
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """``http://host:port``, the witness's submission and monitoring prefix."""
        host, port = self.server_address[:2]
        shown = host.decode() if isinstance(host, bytes) else host
        return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def serve_in_thread(server: WitnessHTTPServer, *, poll_interval: float = 0.5) -> threading.Thread:
    """Run ``server.serve_forever()`` in a daemon thread; ``server.shutdown()`` stops it within ``poll_interval``."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval},
                              name="witness-http", daemon=True)
    thread.start()
    return thread


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "exchange-witness"
    server: WitnessHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)

    def do_POST(self) -> None:
        if self.path != ADD_CHECKPOINT_PATH:
            self._reply(HTTPStatus.NOT_FOUND, b"not found\n", close=True)
            return
        body = self._read_body()
        if body is None:
            return
        witness = self.server.witness
        try:
            lines = witness.handle(body)
        except ConflictError as exc:
            self._reply(HTTPStatus.CONFLICT, f"{exc.size}\n".encode(), content_type=SIZE_CONTENT_TYPE)
        except InconsistentCheckpointError as exc:
            log.warning("witness.inconsistent_checkpoint", detail=str(exc),
                        checkpoint=exc.note.decode(errors="replace"))
            self._reply(HTTPStatus(exc.status), f"{exc}\n".encode())
        except WitnessError as exc:
            if exc.status >= 500:  # the detail (paths, errno) is for the operator's log, not for the client
                log.exception("witness.failed", detail=str(exc))
                self._reply(HTTPStatus(exc.status), b"the witness cannot record its state\n")
            else:
                self._reply(HTTPStatus(exc.status), f"{exc}\n".encode())
        except Exception:  # a bug must still answer 500 (having cosigned nothing), not drop the socket
            log.exception("witness.crashed")
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", close=True)
        else:
            self._reply(HTTPStatus.OK, "".join(lines).encode())

    def do_GET(self) -> None:
        if self.path == ADD_CHECKPOINT_PATH:
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, b"use POST\n", extra={"Allow": "POST"})
            return
        match = _CHECKPOINT_PATH.fullmatch(self.path)
        head = None if match is None else self.server.witness.latest_by_hash(match.group(1))
        if head is None:
            self._reply(HTTPStatus.NOT_FOUND, b"not found\n")
        else:
            self._reply(HTTPStatus.OK, head.note.encode())

    def _read_body(self) -> bytes | None:
        # The body is read whole, and only once its announced length is known to be within the limit.
        if self.headers.get("Transfer-Encoding") is not None:
            self._reply(HTTPStatus.LENGTH_REQUIRED, b"send the body with a Content-Length\n", close=True)
            return None
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            self._reply(HTTPStatus.LENGTH_REQUIRED, b"send the body with a Content-Length\n", close=True)
            return None
        if len(lengths) != 1 or not _LENGTH.fullmatch(lengths[0].strip()):
            self._reply(HTTPStatus.BAD_REQUEST, b"malformed Content-Length\n", close=True)
            return None
        length = int(lengths[0])
        limit = self.server.witness.max_request_bytes
        if length > limit:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"more than {limit} bytes\n".encode(), close=True)
            return None
        try:
            body = self.rfile.read(length)
        except OSError:  # a timeout or a reset while the client sends: nobody is there to answer
            self.close_connection = True
            return None
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _reply(self, status: HTTPStatus, body: bytes, *, content_type: str = _TEXT, close: bool = False,
               extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("witness.http", client=self.client_address[0], line=format % args)

