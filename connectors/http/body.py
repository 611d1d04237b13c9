"""A request body read within a limit, and parsed as one JSON object with nothing ambiguous in it.

Refused: a body longer than the limit (however it is sent), bytes that are not UTF-8, anything but an object at
the top, an object with a key twice (which value would count?), ``NaN`` and ``Infinity``, nesting deeper than
the parser's stack, and a number of 4,300 digits or more. No message quotes the body.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

__all__ = ["parse_object", "read_body"]


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it proves longer than ``limit`` (stops reading there; Content-Length is only
    believed when it says the body is too long)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""
    return b"".join(chunks)


def parse_object(body: bytes) -> dict[str, Any] | str:
    """The JSON object ``body`` holds, or why it does not hold one (never quoting it)."""
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    except _RefusedJsonError as exc:
        return f"the body is not usable JSON: {exc}"
    except json.JSONDecodeError as exc:
        return f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError):  # int() of a 4,300+ digit number; nesting deeper than the stack
        return "the body is not usable JSON: nested too deep, or a number too long"
    if not isinstance(document, dict):
        return "the body must be a JSON object of the record's fields"
    return document


class _RefusedJsonError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _RefusedJsonError("an object has the same key twice")
    return document


def _no_constant(name: str) -> Any:
    raise _RefusedJsonError(f"{name} is not a JSON number")
