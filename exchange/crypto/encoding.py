"""Strict encodings: signed material must have exactly one textual form."""

from __future__ import annotations

import base64
import binascii

__all__ = ["b64decode_strict"]


def b64decode_strict(text: str | bytes) -> bytes:
    """Decode standard base64, refusing anything but the one canonical encoding of the result.

    ``base64.b64decode`` ignores the unused low bits of the last character, so ``…Q8=`` and ``…Q9=`` decode alike;
    accepting both would let anyone alter a signed note, key or proof without invalidating it.
    Raises :class:`binascii.Error` (a ValueError).
    """
    raw = base64.b64decode(text, validate=True)
    canonical = base64.b64encode(raw)
    if canonical != (text.encode() if isinstance(text, str) else text):
        raise binascii.Error("not the canonical base64 encoding")
    return raw
