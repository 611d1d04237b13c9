"""Canonical JSON: the one byte form of a policy bundle and of a consent artefact before signing.

Keys sorted, no whitespace, UTF-8 without escaping, no NaN; times as RFC 3339 UTC with ``Z``, dates as
``YYYY-MM-DD``. Anything else that is not JSON is refused rather than guessed at.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from exchange.policy.errors import PolicyError
from exchange.policy.models import format_instant

__all__ = ["canonical_json"]


def _default(value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PolicyError(f"canonical JSON needs times with a zone, got {value.isoformat()}")
        return format_instant(value)
    if isinstance(value, date):
        return value.isoformat()
    raise PolicyError(f"canonical JSON cannot encode {type(value).__name__}")


def canonical_json(value: object) -> bytes:
    """``value`` as canonical JSON bytes; raises :class:`PolicyError` on anything JSON cannot say exactly."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
        )
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"canonical JSON: {exc}") from exc
    return text.encode("utf-8")
