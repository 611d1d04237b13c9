"""What the kit's checks share: comparable record values, and assertions that say what failed."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["canonical", "equal", "expect", "within"]


def canonical(values: Mapping[str, Any]) -> str:
    """A record's values as one comparable string (dates ISO, times in UTC, bytes hex, keys sorted)."""
    return json.dumps(_plain(dict(values)), sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def expect(condition: bool, message: str) -> None:
    """An assertion that stays under ``python -O`` and says what failed (the kit is not rewritten by pytest)."""
    if not condition:
        raise AssertionError(message)


def equal(got: object, want: object, what: str) -> None:
    expect(got == want, f"{what}: got {got!r}, expected {want!r}")


def within(step: Callable[[], object], timeout: float) -> None:
    """Run ``step``; fail if it does not return within ``timeout`` seconds, raise what it raised."""
    failure: list[BaseException] = []

    def call() -> None:
        try:
            step()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which re-raises it
            failure.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    expect(not thread.is_alive(), f"did not return within {timeout:g} s")
    if failure:
        raise failure[0]
