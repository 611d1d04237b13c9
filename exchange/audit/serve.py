"""Serve a tiles directory (:mod:`exchange.audit.tiles`) over HTTP as C2SP tlog-tiles, with the standard library.

GET only. A path is served only if it is ``/checkpoint`` or a canonical ``/tile/...`` path of the tlog-tiles
grammar (:func:`~exchange.audit.tiles.parse_tile_path`), so no other file of the directory, and nothing outside
it, is reachable; everything else is 404. Full tiles and entry bundles never change and are cached for a year;
the checkpoint and partial tiles are ``no-cache``. Entry bundles are gzipped for a client that accepts gzip.
"""

from __future__ import annotations

import gzip
import os
import socket
import stat
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from exchange.audit.tiles import CHECKPOINT_PATH, TILE_WIDTH, TileError, parse_tile_path
from exchange.log import get_logger

__all__ = ["IMMUTABLE", "MUTABLE", "TileServer", "serve"]

IMMUTABLE = "public, max-age=31536000, immutable"
MUTABLE = "no-cache"
_OCTETS = "application/octet-stream"

_log = get_logger("exchange.audit.serve")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    root: Path


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; no 40 ms wait for a delayed ACK
    server_version = "exchange-tiles"
    sys_version = ""
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def do_GET(self) -> None:
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a GET with a body: never read it as the next request
        found = _resolve(self.server.root, self.path)
        if found is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        file, content_type, cache = found
        body = _read_file(file)
        if body is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", cache)
        if self.path.startswith("/tile/entries/"):
            self.send_header("Vary", "Accept-Encoding")
            if _accepts_gzip(self.headers.get("Accept-Encoding", "")):
                body = gzip.compress(body, mtime=0)
                self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self) -> None:
        self.close_connection = True  # any body is left unread
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._refuse()

    def do_POST(self) -> None:
        self._refuse()

    def do_PUT(self) -> None:
        self._refuse()

    def do_DELETE(self) -> None:
        self._refuse()

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("tiles request", client=self.client_address[0], line=format % args)


def _resolve(root: Path, request_path: str) -> tuple[Path, str, str] | None:
    # The file a request path names, its type and its caching; None unless the path is exactly tlog-tiles'.
    if request_path == "/" + CHECKPOINT_PATH:
        found = root / CHECKPOINT_PATH, "text/plain; charset=utf-8", MUTABLE
    elif request_path.startswith("/tile/"):
        try:
            ref = parse_tile_path(request_path[1:])
        except TileError:
            return None
        found = root / ref.path, _OCTETS, IMMUTABLE if ref.width == TILE_WIDTH else MUTABLE
    else:
        return None
    return found if found[0].resolve().is_relative_to(root) else None  # a symbolic link out is not followed


def _read_file(file: Path) -> bytes | None:
    # A regular file's bytes; None for anything else (non-blocking, so a FIFO cannot hold a thread).
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read() if stat.S_ISREG(os.fstat(f.fileno()).st_mode) else None


def _accepts_gzip(header: str) -> bool:
    for item in header.lower().replace(" ", "").split(","):
        coding, *params = item.split(";")
        if coding == "gzip":
            return not any(p in {"q=0", "q=0.0", "q=0.00", "q=0.000"} for p in params)
    return False


class TileServer:
    """An HTTP server of one tiles directory; :meth:`start` runs it in a thread (port 0: an ephemeral port)."""

    def __init__(self, directory: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        root = Path(directory).resolve()
        if not root.is_dir():
            raise TileError(f"{directory} is not a directory")
        try:
            self._httpd = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        except OSError as exc:
            raise TileError(f"cannot listen on {host}:{port}: {exc}") from exc
        self._httpd.root = root
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, ending in a slash."""
        host, port = self._httpd.server_address[:2]
        shown = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def start(self) -> TileServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="tile-server",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> TileServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def serve(directory: str | Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``directory`` at ``http://host:port/`` until interrupted."""
    with TileServer(directory, host, port) as server:
        _log.info("serving tiles", directory=str(directory), url=server.url)
        server.serve_forever()
