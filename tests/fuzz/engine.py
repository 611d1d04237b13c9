"""What every harness shares: the harness interface, the recorder of failures, and a plain mutational loop.

A harness turns one input (bytes) into a call of the code under test and returns when the outcome is allowed; it
raises when it is not (an unexpected exception escapes as it is; a broken rule is a :class:`RuleBroken`). The
:class:`Recorder` counts inputs, times each one and keeps, per distinct failure kind, the shortest input that
showed it, written to the crash folder with its traceback so ``python -m tests.fuzz repro`` can replay it.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
CRASHES = CORPUS / "crashes"
REGRESSIONS = CORPUS / "regressions"
"""Inputs that once failed (copied from the crash folder once fixed): replayed by the smoke test, and fuzzed from
as seeds."""
TIME_BOUND = 1.0
"""Seconds an input may take: the bound of the hostile-input rule."""
_OWN_CODE = (str(ROOT / "exchange"), str(ROOT / "connectors"))


class RuleBroken(Exception):  # noqa: N818 - it names what happened to the rule, as the harnesses raise it
    """The code under test answered, but not as the rule says (an untyped location, an echoed input, …);
    ``kind`` names the broken rule and is the failure's kind."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class Harness:
    """One target. Subclasses set ``name`` and implement :meth:`seeds` and :meth:`run`."""

    name = ""
    max_len = 4096
    """The longest input the engine makes (seeds longer than this raise it)."""

    def seeds(self) -> list[bytes]:
        """Genuine inputs to start from (built fresh, or read from the shipped files)."""
        raise NotImplementedError

    def run(self, data: bytes) -> None:
        """Feed ``data`` to the code under test; return if the outcome is allowed, raise otherwise."""
        raise NotImplementedError

    def tokens(self) -> Sequence[bytes]:
        """Byte strings worth inserting (the plain loop uses them; libFuzzer finds its own)."""
        return ()


_SCRATCH: list[Path] = []
_TMPFS = "/dev/shm"  # noqa: S108 - a private folder is made inside it with mkdtemp; it only saves disk writes


def scratch() -> Path:
    """A private folder for a harness's files (on tmpfs where there is one), removed when the process ends."""
    base = _TMPFS if os.path.isdir(_TMPFS) and os.access(_TMPFS, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="exchange-fuzz-", dir=base))
    _SCRATCH.append(folder)
    atexit.register(shutil.rmtree, folder, True)
    return folder


def remove_scratch() -> None:
    """Remove the scratch folders now (a worker leaves with ``os._exit``, which runs no exit handlers)."""
    while _SCRATCH:
        shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)


def regressions(name: str) -> list[bytes]:
    """The saved inputs of harness ``name`` that once failed."""
    return [path.read_bytes() for path in sorted(REGRESSIONS.glob(f"{name}-*.bin"))]


def failure_kind(exc: BaseException) -> str:
    """``Type at file:line in function``: the innermost frame in the exchange's own code (or the innermost of
    all, if none is). A broken rule is its own kind."""
    if isinstance(exc, RuleBroken):
        return f"RuleBroken: {exc.kind}"
    frames = list(traceback.extract_tb(exc.__traceback__))
    own = [f for f in frames if f.filename.startswith(_OWN_CODE)]
    if not (own or frames):
        return type(exc).__name__
    frame = (own or frames)[-1]
    where = Path(frame.filename)
    where = where.relative_to(ROOT) if where.is_relative_to(ROOT) else Path(where.name)
    return f"{type(exc).__name__} at {where}:{frame.lineno} in {frame.name}"


def internal_kind(who: str, exc: BaseException) -> str:
    """The kind of an INTERNAL error: what it wraps decides it."""
    cause = exc.__cause__ or exc.__context__
    return f"{who} raised INTERNAL" + (f" from {failure_kind(cause)}" if cause is not None else "")


class Stats(TypedDict):
    """A harness's counts, as the workers write them and the summary table reads them."""

    harness: str
    inputs: int
    seconds: float
    failures: dict[str, int]
    """Inputs that failed, per distinct failure kind."""


@dataclass
class Failure:
    kind: str
    count: int
    example: bytes
    trace: str


@dataclass
class Recorder:
    """Runs inputs through a harness, counting them and recording failures (one file pair per kind)."""

    harness: Harness
    crashes: Path = CRASHES
    inputs: int = 0
    failures: dict[str, Failure] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def one(self, data: bytes) -> None:
        self.inputs += 1
        start = time.perf_counter()
        try:
            self.harness.run(data)
        except Exception as exc:  # noqa: BLE001 - any exception is what the fuzzer hunts: it is recorded, not hidden
            self._record(exc, data)
            return
        if time.perf_counter() - start > TIME_BOUND and self._slow_again(data):
            self._record(RuleBroken("slower than the time bound", f"{time.perf_counter() - start:.2f}s"), data)

    def _slow_again(self, data: bytes) -> bool:
        """A slow input is timed twice more (the machine may just have been busy); slow only if it stays so."""
        for _ in range(2):
            start = time.perf_counter()
            try:
                self.harness.run(data)
            except Exception:  # noqa: BLE001 - an exception the second time is not this check's business
                return False
            if time.perf_counter() - start <= TIME_BOUND:
                return False
        return True

    def _record(self, exc: BaseException, data: bytes) -> None:
        kind = failure_kind(exc)
        known = self.failures.get(kind)
        if known is not None:
            known.count += 1
            if len(data) >= len(known.example):
                return
        trace = "".join(traceback.format_exception(exc))
        self.failures[kind] = Failure(kind, known.count if known else 1, data, trace)
        self._save(self.failures[kind])

    def _save(self, failure: Failure) -> None:
        self.crashes.mkdir(parents=True, exist_ok=True)
        stem = f"{self.harness.name}-{hashlib.sha256(failure.kind.encode()).hexdigest()[:12]}"
        (self.crashes / f"{stem}.bin").write_bytes(failure.example)
        (self.crashes / f"{stem}.txt").write_text(f"harness: {self.harness.name}\nkind: {failure.kind}\n\n"
                                                  f"{failure.trace}", encoding="utf-8")

    def stats(self) -> Stats:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {"harness": self.harness.name, "inputs": self.inputs, "seconds": round(elapsed, 2),
                "failures": {k: f.count for k, f in sorted(self.failures.items())}}

    def write_stats(self, path: Path) -> None:
        path.write_text(json.dumps(self.stats()), encoding="utf-8")


# -- the plain mutational loop (without atheris, and for the smoke test) -------------------------------------

_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\n", b"\r\n", b"\t", b" ", b"'", b'"', b"\\", b"=", b":",
                b"- ", b"[", b"]", b"{", b"}", b"*a", b"&a ", b"!!binary ", b"!!python/object ", b"<<: ",
                b"%YAML 1.1\n", b"---\n", b"...\n", b"#", b"|\n", b">\n", b"~", b"null", b"true", b"1e999",
                b"-1", b"0", b"18446744073709551616", b"-9223372036854775809", b"9" * 30, b"0x", b"0o", b".inf",
                b"2024-02-30", b"9999-12-31T23:59:59Z", b"\xc3\x28", b"\xed\xa0\x80", b"\xef\xbb\xbf",
                "\u2028".encode(), "\x85".encode())


def mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes], max_len: int) -> bytes:
    """``data`` with one to four edits: byte flips, insertions, deletions, repeats, splices of another seed."""
    for _ in range(rng.randint(1, 4)):
        n = len(data)
        at = rng.randint(0, n)
        op = rng.randrange(8)
        if op == 0 and n:
            at = min(at, n - 1)
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
        elif op == 1 and n:
            at = min(at, n - 1)
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
        elif op == 2:
            data = data[:at] + rng.randbytes(rng.randint(1, 8)) + data[at:]
        elif op == 3 and n:
            data = data[:at] + data[at + rng.randint(1, min(64, n)):]
        elif op == 4 and n:
            end = min(n, at + rng.randint(1, 64))
            data = data[:end] + data[at:end] * rng.randint(1, 8) + data[end:]
        elif op == 5:
            data = data[:at] + rng.choice([*_INTERESTING, *tokens]) + data[at:]
        elif op == 6 and seeds:
            other = rng.choice(seeds)
            cut = rng.randint(0, len(other))
            data = data[:at] + other[cut:cut + rng.randint(1, 256)] + data[at:]
        else:
            data = data[:at]
    return data[:max_len]


def plain_loop(recorder: Recorder, *, inputs: int, seconds: float, seed: int = 0,
               report: Callable[[Recorder], None] | None = None) -> None:
    """Run ``inputs`` inputs (or until ``seconds`` pass): the seeds first, then mutations of seeds and of inputs
    that raised a new failure or a new outcome."""
    harness = recorder.harness
    rng = random.Random(seed)
    seeds = harness.seeds() + regressions(harness.name)
    pool = list(seeds)
    tokens = harness.tokens()
    max_len = max([harness.max_len, *(2 * len(s) for s in seeds)])
    deadline = time.monotonic() + seconds
    last_report = time.monotonic()
    for data in seeds[:inputs]:
        recorder.one(data)
    while recorder.inputs < inputs and time.monotonic() < deadline:
        data = mutate(rng, rng.choice(pool), seeds, tokens, max_len)
        before = len(recorder.failures)
        recorder.one(data)
        if len(recorder.failures) > before and len(pool) < 10_000:
            pool.append(data)
        if report is not None and time.monotonic() - last_report > 2:
            report(recorder)
            last_report = time.monotonic()


def replay(harness: Harness, data: bytes) -> BaseException | None:
    """The exception ``data`` raises in ``harness`` (None if it is handled as the rule says)."""
    try:
        harness.run(data)
    except Exception as exc:  # noqa: BLE001 - returned to the caller, who shows it
        return exc
    return None

