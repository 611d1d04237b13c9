"""Hostile configuration files, shared by the loader tests of policies, the registry and the topic spec.

The defects an outside tester found (control characters, deep nesting, recursive and exponential aliases, huge
and endless files, FIFOs) as ready-made inputs; :func:`mutations` is a Hypothesis strategy that breaks a real
file the way its fuzzer did; :func:`refused` checks that a loader refuses within the time bound.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[3]
TIME_BOUND = 1.0  # seconds: every refusal below must come this fast

_E = TypeVar("_E", bound=BaseException)

RECURSIVE_ALIAS = "loop: &l [*l]\n"
DEEP_NESTING = "key: " + "[" * 2000 + "]" * 2000 + "\n"
DEEP_BLOCK_NESTING = "key:\n" + "- " * 2000 + "x\n"


def billion_laughs(levels: int = 9) -> str:
    """The classic exponential alias expansion: 10**levels strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        refs = ",".join(f"*a{level - 1}" for _ in range(10))
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def refused(call: Callable[[], object], error: type[_E]) -> _E:
    """Run ``call``, which must raise ``error`` within :data:`TIME_BOUND` seconds; return the error."""
    start = time.monotonic()
    with pytest.raises(error) as caught:
        call()
    elapsed = time.monotonic() - start
    assert elapsed < TIME_BOUND, f"took {elapsed:.2f}s"
    return caught.value


def write_huge(path: Path, size: int = 50 * 1024 * 1024) -> Path:
    """A sparse file of ``size`` bytes (zeros, which is also what /dev/zero would give)."""
    with path.open("wb") as file:
        file.truncate(size)
    return path


def endless(path: Path, kind: str) -> Path:
    """``path`` made a symlink to an endless device, or a FIFO no one writes to."""
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(kind)
    return path


ENDLESS = ["/dev/zero", "/dev/urandom", "fifo"]

_CONTROL = [chr(c).encode() for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x80, 0x9F)]


@st.composite
def mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` broken by one to three of: a flipped byte, an inserted control character, a truncation, a
    duplicated line, deep nesting, an alias or an anchor, random bytes."""
    data = original
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "control", "truncate", "duplicate", "nest", "alias", "bytes"]))
        if kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif kind == "control":
            data = data[:at] + draw(st.sampled_from(_CONTROL)) + data[at:]
        elif kind == "truncate":
            data = data[:at]
        elif kind == "duplicate":
            lines = data.splitlines(keepends=True)
            if lines:
                index = draw(st.integers(0, len(lines) - 1))
                data = b"".join([*lines[:index + 1], lines[index], *lines[index + 1:]])
        elif kind == "nest":
            depth = draw(st.integers(1, 3000))
            opener, closer = draw(st.sampled_from([(b"[", b"]"), (b"{a: ", b"}"), (b"- ", b"")]))
            data = data[:at] + opener * depth + closer * depth + data[at:]
        elif kind == "alias":
            piece = draw(st.sampled_from([b"*a", b"&a ", b" &a [*a]", b"<<: *a\n", billion_laughs(4).encode()]))
            data = data[:at] + piece + data[at:]
        else:
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return data
