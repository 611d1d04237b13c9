"""Connectors between agency systems and the exchange."""
