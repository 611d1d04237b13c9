"""The fuzz harnesses of tests/fuzz keep working: each builds its genuine seeds (which must verify, open or load)
and runs a short plain mutational loop of up to 2,000 inputs (at most half a second) without a failure. The long run
is ``make fuzz``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.engine import REGRESSIONS, Harness, Recorder, RuleBroken, failure_kind, plain_loop, replay
from tests.fuzz.records import Record, decode, encode
from tests.fuzz.targets import TARGETS, build


@pytest.mark.parametrize("name", list(TARGETS))
def test_each_harness_runs_without_a_failure(name: str, tmp_path: Path) -> None:
    recorder = Recorder(build(name), crashes=tmp_path)
    plain_loop(recorder, inputs=2000, seconds=0.5, seed=1)
    assert recorder.inputs >= 50
    assert {kind: f.trace for kind, f in recorder.failures.items()} == {}


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*.bin")), ids=lambda p: p.name)
def test_inputs_that_once_failed_are_handled(path: Path) -> None:
    """Every saved failure stays fixed (each is also a unit test where the fix is: see its commit)."""
    assert replay(build(path.name.split("-", 1)[0]), path.read_bytes()) is None


def test_a_failure_is_recorded_once_per_kind_with_its_shortest_input(tmp_path: Path) -> None:
    class Broken(Harness):
        name = "broken"

        def seeds(self) -> list[bytes]:
            return [b"seed"]

        def run(self, data: bytes) -> None:
            if data.startswith(b"x"):
                raise RuleBroken("starts with x")
            if len(data) > 3:
                raise KeyError(data)

    recorder = Recorder(Broken(), crashes=tmp_path)
    for data in (b"xyz", b"x", b"abcd", b"ab", b"abcdef"):
        recorder.one(data)
    assert recorder.inputs == 5
    key_error, rule = sorted(recorder.failures)
    assert key_error.startswith("KeyError at tests/unit/test_fuzz_smoke.py:")
    assert key_error.endswith(" in run")
    assert rule == "RuleBroken: starts with x"
    assert recorder.failures[rule].example == b"x"
    assert recorder.failures[key_error].count == 2
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert len(saved) == 4
    assert {(tmp_path / n).read_bytes() for n in saved if n.endswith(".bin")} == {b"x", b"abcd"}


def test_records_survive_the_round_trip_and_any_bytes_decode() -> None:
    record = Record(b"k", None, [("ce_id", b"1"), ("x", b"\x00=")], -5, "delivery.x")
    assert decode(encode(record, with_topic=True), with_topic=True) == record
    for data in (b"", b"\xff" * 10, b"9" * 100, encode(record)[:7]):
        decode(data)
        decode(data, with_topic=True)
    assert failure_kind(RuleBroken("why")) == "RuleBroken: why"
