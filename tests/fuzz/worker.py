"""One harness in a process of its own: ``python -m tests.fuzz.worker ENGINE NAME STATS INPUTS SECONDS
[libFuzzer flags…]``. Under ``atheris`` (libFuzzer) the exchange's code and PyYAML are instrumented for coverage
(nothing of the exchange is imported before); under ``plain`` the mutational loop of :mod:`tests.fuzz.engine`
runs.

It stops once it has run INPUTS inputs or SECONDS have passed, after writing its counts to STATS (JSON); failures
are written to the crash folder as they are found.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _escaped(token: bytes) -> str:
    """A libFuzzer dictionary entry: printable ASCII as it is (but quotes and backslashes), the rest as \\xNN."""
    return "".join(chr(b) if 0x20 <= b < 0x7f and b not in b'"\\' else f"\\x{b:02x}" for b in token)


def main(argv: list[str]) -> None:
    if argv[0] == "plain":
        plain(argv[1], Path(argv[2]), int(argv[3]), float(argv[4]))
    else:
        fuzz(argv[1], Path(argv[2]), int(argv[3]), float(argv[4]), argv[5:])


def plain(name: str, stats: Path, inputs: int, seconds: float) -> None:
    from tests.fuzz.engine import Recorder, plain_loop  # noqa: PLC0415 - as the atheris worker does
    from tests.fuzz.targets import build  # noqa: PLC0415 - as the atheris worker does

    recorder = Recorder(build(name))
    plain_loop(recorder, inputs=inputs, seconds=seconds, report=lambda r: r.write_stats(stats))
    recorder.write_stats(stats)


def fuzz(name: str, stats: Path, inputs: int, seconds: float, extra: list[str]) -> None:
    atheris: Any = importlib.import_module("atheris")  # optional (the plain loop runs without it), and untyped

    with atheris.instrument_imports(include=["exchange", "connectors", "yaml"]):
        from tests.fuzz.engine import Recorder, regressions, remove_scratch  # noqa: PLC0415 - imported once instrumentation is on
        from tests.fuzz.targets import build  # noqa: PLC0415 - imported once instrumentation is on
        harness = build(name)
    seeds = harness.seeds() + regressions(name)
    recorder = Recorder(harness)
    corpus = Path(tempfile.mkdtemp(prefix=f"exchange-fuzz-{name}-"))
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    deadline = time.monotonic() + seconds
    last = time.monotonic()

    def one(data: bytes) -> None:
        nonlocal last
        recorder.one(data)
        now = time.monotonic()
        if recorder.inputs >= inputs or now >= deadline:
            recorder.write_stats(stats)
            shutil.rmtree(corpus, ignore_errors=True)
            dictionary.unlink(missing_ok=True)
            remove_scratch()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        if now - last > 2:
            recorder.write_stats(stats)
            last = now

    max_len = max([harness.max_len, *(2 * len(s) for s in seeds)])
    tokens = {token[:64] for token in harness.tokens() if token}  # libFuzzer's longest dictionary entry
    dictionary = corpus.with_name(corpus.name + ".dict")
    dictionary.write_text("".join(f'"{_escaped(token)}"\n' for token in sorted(tokens)), encoding="ascii")
    flags = [*([f"-dict={dictionary}"] if tokens else []), f"-max_len={max_len}", "-timeout=60",
             "-rss_limit_mb=3072", "-print_final_stats=0", f"-artifact_prefix={recorder.crashes}/{name}-libfuzzer-",
             *extra]
    recorder.crashes.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], *flags, str(corpus)], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
