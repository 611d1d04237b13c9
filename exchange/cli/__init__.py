"""The ``exchange`` command.

Every public module in this package is one sub-command: it defines ``register(subparsers)``, which adds its
parser and sets ``func`` (``args -> exit code``) on it. ``main`` finds the modules itself, so adding a command
is adding a file.
"""

from __future__ import annotations

from exchange.cli._app import main

__all__ = ["main"]
