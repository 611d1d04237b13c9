"""``python -m exchange`` runs the command line."""

from exchange.cli._app import run

run()
