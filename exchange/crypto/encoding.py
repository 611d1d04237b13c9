"""Strict encodings: signed material must have exactly one textual form."""

from __future__ import annotations

import binascii

__all__ = ["b64decode_strict"]


def b64decode_strict(text: str | bytes) -> bytes:
    """Decode standard base64, refusing anything but the one canonical encoding of the result.

    ``base64.b64decode`` ignores the unused low bits of the last character, so ``…Q8=`` and ``…Q9=`` decode alike;
    accepting both would let anyone alter a signed note, key or proof without invalidating it.
    Raises :class:`binascii.Error` (a ValueError).
    """
    data = text.encode("ascii", "replace") if isinstance(text, str) else text
    raw = binascii.a2b_base64(data, strict_mode=True)  # only the alphabet, padding where it belongs
    if binascii.b2a_base64(raw, newline=False) != data:
        raise binascii.Error("not the canonical base64 encoding")
    return raw
