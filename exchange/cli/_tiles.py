"""``exchange audit serve``: serve the access log's tiles over HTTP (registered by :mod:`exchange.cli.audit`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exchange.audit.serve import TileServer

__all__ = ["register_serve"]


def register_serve(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve --tiles DIR [--port 8080] [--host 127.0.0.1]`` to ``exchange audit``."""
    parser = audit_subparsers.add_parser(
        "serve", help="serve a tiles directory over HTTP as C2SP tlog-tiles (GET /checkpoint, /tile/...)",
        description="Serve the access log's checkpoint, hash tiles and entry bundles (https://c2sp.org/tlog-tiles) "
                    "from a tiles directory, read-only, until interrupted.")
    parser.add_argument("--tiles", required=True, type=Path, metavar="DIR", help="the tiles directory")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    with TileServer(args.tiles, args.host, args.port) as server:
        print(f"serving {args.tiles} at {server.url}", file=sys.stderr, flush=True)
        server.serve_forever()
    return 0
