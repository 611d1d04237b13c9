"""The connector SDK."""
