"""``python -m tests.fuzz run --inputs N [--seconds S] [--jobs J] [--harness NAME …] [--engine atheris|plain]``:
every harness (or the named ones) for its share of N inputs, J at a time, all stopping once S seconds have
passed, then a table of inputs, inputs per second and distinct failures per harness. Exit status 1 if any failure
was found.

``python -m tests.fuzz repro FILE…``: replay saved inputs (``tests/fuzz/corpus/crashes/<harness>-….bin``) and show
what each raises now. ``python -m tests.fuzz seeds``: write each harness's seeds under ``corpus/seeds/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fuzz.engine import CORPUS, CRASHES, ROOT, Stats, replay
from tests.fuzz.targets import TARGETS, build

WEIGHTS = {"envelope": 3, "opener": 3, "plaintext": 1, "policy": 1, "registry": 0.25, "topics": 0.5,
           "connector": 0.75, "safeparse": 0.5}
"""Shares of the inputs, by how fast each harness runs (the registry's file is the largest to parse)."""


def _shares(names: list[str], total: int) -> dict[str, int]:
    weight = sum(WEIGHTS[n] for n in names)
    shares = {n: int(total * WEIGHTS[n] / weight) for n in names}
    shares[names[0]] += total - sum(shares.values())
    return shares


def _run_worker(engine: str, name: str, inputs: int, seconds: float, logs: Path) -> Stats:
    stats = logs / f"{name}.json"
    log = logs / f"{name}.log"
    command = [sys.executable, "-m", "tests.fuzz.worker", engine, name, str(stats), str(inputs), str(seconds)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        code = subprocess.call(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    result: Stats = (json.loads(stats.read_text(encoding="utf-8")) if stats.exists()
                     else {"harness": name, "inputs": 0, "seconds": 0.0, "failures": {}})
    if code != 0:  # a deadly signal, a libFuzzer timeout or out-of-memory: atheris saves the input
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        result["failures"][f"worker exited with {code}"] = 1
        print(f"{name}: the worker exited with {code}; its log ends:\n  " + "\n  ".join(tail), flush=True)
    return result


def _table(results: list[Stats]) -> str:
    rows = [("harness", "inputs", "inputs/s", "seconds", "distinct failures")]
    total_inputs, total_seconds = 0, 0.0
    kinds: dict[str, list[str]] = {}
    for r in results:
        inputs, seconds, failures = r["inputs"], r["seconds"], r["failures"]
        for kind in failures:
            kinds.setdefault(kind, []).append(r["harness"])
        total_inputs += inputs
        total_seconds += seconds
        rows.append((r["harness"], f"{inputs:,}", f"{inputs / max(seconds, 1e-9):,.0f}", f"{seconds:,.0f}",
                     str(len(failures))))
    rows.append(("total", f"{total_inputs:,}", f"{total_inputs / max(total_seconds, 1e-9):,.0f}",
                 f"{total_seconds:,.0f}", str(len(kinds))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                  strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(-1, lines[1])
    lines += [f"failure  {kind}  ({', '.join(names)})" for kind, names in sorted(kinds.items())]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    names = args.harness or list(TARGETS)
    engine = args.engine
    if engine == "atheris" and importlib.util.find_spec("atheris") is None:
        print("atheris is not installed: running the plain mutational loop", flush=True)
        engine = "plain"
    shares = _shares(names, args.inputs)
    started = time.monotonic()
    deadline = started + args.seconds  # each harness runs until its share of inputs is done or time is up
    print(f"fuzzing {', '.join(f'{n} {shares[n]:,}' for n in names)} inputs with {engine}, {args.jobs} at a time; "
          f"failures go to {CRASHES.relative_to(ROOT)}/", flush=True)
    with tempfile.TemporaryDirectory(prefix="exchange-fuzz-logs-") as folder:
        logs = Path(folder)

        def one(name: str) -> Stats:
            seconds = max(0.0, deadline - time.monotonic())
            result = _run_worker(engine, name, shares[name], seconds, logs)
            print(f"{name}: {result['inputs']:,} inputs in {result['seconds']:,.0f}s, "
                  f"{len(result['failures'])} distinct failures", flush=True)
            return result

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(one, names))
    print(f"\n{_table(results)}\nwall time {time.monotonic() - started:,.0f}s", flush=True)
    return 1 if any(r["failures"] for r in results) else 0


def repro(args: argparse.Namespace) -> int:
    status = 0
    for file in args.files:
        name = Path(file).name.split("-", 1)[0]
        exc = replay(build(name), Path(file).read_bytes())
        if exc is None:
            print(f"{file}: handled as the rule says")
        else:
            status = 1
            print(f"{file}:\n{''.join(traceback.format_exception(exc))}")
    return status


def seeds(_: argparse.Namespace) -> int:
    for name in TARGETS:
        folder = CORPUS / "seeds" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(build(name).seeds()):
            (folder / f"seed-{i}").write_bytes(seed)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("run", help="fuzz every harness for its share")
    r.add_argument("--inputs", type=int, default=100_000, help="inputs in all, shared among the harnesses")
    r.add_argument("--seconds", type=float, default=3600, help="time in all: every harness stops then")
    r.add_argument("--jobs", type=int, default=1, help="harnesses run at once")
    r.add_argument("--harness", action="append", choices=sorted(TARGETS), help="only these (repeatable)")
    r.add_argument("--engine", choices=["atheris", "plain"], default="atheris")
    r.set_defaults(func=run)
    p = commands.add_parser("repro", help="replay saved inputs")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=repro)
    s = commands.add_parser("seeds", help="write the seeds under corpus/seeds/")
    s.set_defaults(func=seeds)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
