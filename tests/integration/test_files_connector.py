"""The drop-folder source: the conformance kit, then what is its own — a 5,000-line file resumed mid-file after
a SIGKILL, a crash between a file's last commit and its move, a wrong header rejected with its reason, bad CSV
values and JSON lines dead-lettered naming the field, late files refused, offsets the folder cannot have."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from connectors.files import FilesSource, FilesSourceConfig, UnknownOffsetError
from connectors.sdk import BadRecord, ConnectorConfig, Offset, Source, SourceContext
from connectors.sdk.testing import SourceConformance
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.integration.router_world import ROOT, World

TYPE = "population.address-changed"
AGENCY = "population-registry"
CATALOGUE = Catalogue.load(ROOT / "schemas")
FIELDS = CATALOGUE.current(TYPE).field_names


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_csv(path: Path, records: Iterable[Mapping[str, Any]], *, extra: Sequence[str] = (),
              header: Sequence[str] = FIELDS) -> None:
    """A CSV file of ``records`` under ``header``, then the raw ``extra`` lines."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for record in records:
        writer.writerow([_cell(record[f]) for f in header])
    out.writelines(line + "\n" for line in extra)
    path.write_text(out.getvalue(), encoding="utf-8")


def samples(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [sample_record(TYPE, rng) for _ in range(n)]


def files_config(drop: Path, name: str = "files-kit", **extra: Any) -> FilesSourceConfig:
    return FilesSourceConfig(name=name, agency=AGENCY, record_type=TYPE, directory=drop, **{"format": "csv", **extra})


class TestFilesSourceConformance(SourceConformance):
    """The kit on a CSV drop folder: each ``inject`` drops one new file, named to sort after the others."""

    agency = AGENCY
    record_type = TYPE

    def make(self, directory: Path) -> tuple[Source, ConnectorConfig]:
        self.drop = directory / "drop"
        self.drop.mkdir(exist_ok=True)
        config = files_config(self.drop, batch=50)
        return FilesSource(config, CATALOGUE), config

    def _next_name(self) -> tuple[str, int]:
        counter = self.drop.parent / "dropped"
        seq = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(seq))
        return f"{seq:04d}.csv", seq

    def inject(self, n: int) -> list[dict[str, Any]]:
        name, seq = self._next_name()
        records = samples(n, seed=seq)
        write_csv(self.drop / name, records)
        return records

    def inject_bad(self) -> None:
        name, _ = self._next_name()
        write_csv(self.drop / name, [], extra=["one,two"])

    def future_offset(self) -> Offset:
        return {"file": "9999-never-dropped.csv", "line": 3}


# -- what is specific to the files source -------------------------------------------------------------------

@pytest.fixture
def world(bootstrap: str, tmp_path: Path) -> World:
    return World.create(bootstrap, tmp_path / "world")


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    return path


class FiveThousand(SourceConformance):
    """The kit's crash helper on one 5,000-line file, in batches of 500 (not collected: no ``Test`` prefix)."""

    agency = AGENCY
    record_type = TYPE

    def make(self, directory: Path) -> tuple[Source, ConnectorConfig]:
        config = files_config(directory, name="files-bulk", batch=500, max_batch=500)
        return FilesSource(config, CATALOGUE), config


class TwoFiles(FiveThousand):
    """Two files whose first ends exactly at the end of the second batch of 10 (not collected)."""

    def make(self, directory: Path) -> tuple[Source, ConnectorConfig]:
        config = files_config(directory, name="files-two", batch=10, max_batch=10)
        return FilesSource(config, CATALOGUE), config


def _values(world: World) -> list[str]:
    return [json.dumps(r, default=str, sort_keys=True) for r in FiveThousand().events(world)]


def _expected(records: Iterable[Mapping[str, Any]]) -> list[str]:
    return [json.dumps(dict(r), default=str, sort_keys=True) for r in records]


def test_a_sigkill_mid_file_resumes_at_the_next_line_5000_events_exactly(world: World, drop: Path) -> None:
    records = samples(5000, seed=50)
    write_csv(drop / "register.csv", records)
    kit = FiveThousand()
    kit.kill_at(world, drop, "produced", batch=4, max_batch=500)  # three batches committed, the fourth open
    source, config = kit.make(drop)
    assert isinstance(source, FilesSource)
    progress: list[int] = []
    runner = kit.runner(world, source, config, progress=progress.append)
    assert runner.position == {"file": "register.csv", "line": 1501}  # the header is line 1
    assert source.remaining(runner.position) == 3500
    stats = runner.run(max_idle_s=0.5)
    assert (stats.records, stats.dead_letters) == (3500, 0)
    assert progress == list(range(500, 3501, 500))
    assert sorted(_values(world)) == sorted(_expected(records))  # exactly 5,000, each once
    assert runner.position == {"file": "register.csv", "line": 5001}
    assert (drop / "done" / "register.csv").is_file()
    assert not (drop / "register.csv").exists()


def test_a_kill_between_the_last_commit_and_the_move_reads_no_line_twice(world: World, drop: Path) -> None:
    first, second = samples(20, seed=60), samples(7, seed=61)
    write_csv(drop / "a.csv", first)
    write_csv(drop / "b.csv", second)
    kit = TwoFiles()
    kit.kill_at(world, drop, "committed", batch=2, max_batch=10)  # a.csv's last line is committed, a.csv not yet moved
    assert (drop / "a.csv").is_file()
    source, config = kit.make(drop)
    runner = kit.runner(world, source, config)
    assert runner.position == {"file": "a.csv", "line": 21}
    runner.run(max_idle_s=0.5)
    assert sorted(_values(world)) == sorted(_expected(first + second))
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["a.csv", "b.csv"]


def _run(world: World, config: FilesSourceConfig) -> tuple[int, int]:
    kit = FiveThousand()
    stats = kit.runner(world, FilesSource(config, CATALOGUE), config).run(max_idle_s=0.4)
    return stats.records, stats.dead_letters


def _letters(world: World, name: str) -> list[dict[str, Any]]:
    return [q for q in world.quarantined() if q["quarantined_by"] == f"connector:{name}"]


def test_a_wrong_header_rejects_the_file_with_its_reason_once(world: World, drop: Path) -> None:
    write_csv(drop / "a.csv", samples(3, seed=70))
    wrong = [*FIELDS[:2], "postcode", *FIELDS[3:]]
    write_csv(drop / "b.csv", samples(4, seed=71), header=FIELDS)
    (drop / "b.csv").write_text(",".join(wrong) + "\n" + (drop / "b.csv").read_text().split("\n", 1)[1])
    write_csv(drop / "c.csv", samples(2, seed=72))
    config = files_config(drop, name="files-header")
    assert _run(world, config) == (5, 1)
    (letter,) = _letters(world, "files-header")
    assert letter["reason_code"] == "BAD_RECORD"
    assert "b.csv: wrong header: unknown column 'postcode'; missing column postal_code" in letter["detail"]
    assert letter["original_key"] == b'{"file":"b.csv","line":1}'
    assert letter["original_value"] == ",".join(wrong).encode()
    assert (drop / "rejected" / "b.csv").is_file()
    assert "unknown column 'postcode'" in (drop / "rejected" / "b.csv.reason.txt").read_text()
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["a.csv", "c.csv"]
    assert _run(world, config) == (0, 0)  # reported once: a restart reports nothing again
    assert len(_letters(world, "files-header")) == 1


def test_csv_values_that_do_not_convert_are_dead_lettered_naming_the_field(world: World, drop: Path) -> None:
    good = samples(3, seed=80)
    row = {**samples(1, seed=81)[0]}
    lines = [",".join(_cell(row[f]) if f != field else bad for f in FIELDS)
             for field, bad in (("moved_on", "31.12.2024"), ("address_protected", "maybe"),
                                ("dwelling_type", "CASTLE"))]
    write_csv(drop / "a.csv", good[:2], extra=[*lines, ",".join(_cell(good[2][f]) for f in FIELDS)])
    config = files_config(drop, name="files-values")
    assert _run(world, config) == (3, 3)
    assert sorted(_values(world)) == sorted(_expected(good))
    letters = sorted(_letters(world, "files-values"), key=lambda q: str(q["detail"]))  # over three partitions
    assert [q["detail"] for q in letters] == [
        "a.csv line 4: field 'moved_on': expected date (YYYY-MM-DD)",
        "a.csv line 5: field 'address_protected': expected boolean (true or false)",
        "a.csv line 6: field 'dwelling_type': expected one of APARTMENT, HOUSE, OTHER (or empty for null)"]
    assert [q["original_value"] for q in letters] == [line.encode() for line in lines]
    assert [q["original_key"] for q in letters] == [f'{{"file":"a.csv","line":{n}}}'.encode() for n in (4, 5, 6)]
    assert not any(b"31.12.2024" in q["detail"].encode() or "maybe" in q["detail"] for q in letters)


def test_json_lines_are_read_and_bad_ones_dead_lettered(world: World, drop: Path) -> None:
    good = samples(4, seed=90)
    lines = [json.dumps(r, default=str) for r in good]
    lines.insert(2, '{"person_id": "3900101')
    lines.insert(3, json.dumps({**good[0], "moved_on": 20240101}, default=str))
    (drop / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = files_config(drop, name="files-jsonl", format="jsonl")
    assert _run(world, config) == (4, 2)
    assert sorted(_values(world)) == sorted(_expected(good))
    assert sorted(q["detail"] for q in _letters(world, "files-jsonl")) == [
        "a.jsonl line 3: not valid JSON: Unterminated string starting at (column 15)",
        "a.jsonl line 4: field 'moved_on': expected a date \"YYYY-MM-DD\", got a number"]
    assert (drop / "done" / "a.jsonl").is_file()


def test_a_file_dropped_after_the_source_passed_its_name_is_refused(world: World, drop: Path) -> None:
    write_csv(drop / "2024-02.csv", samples(3, seed=100))
    config = files_config(drop, name="files-late")
    assert _run(world, config) == (3, 0)
    write_csv(drop / "2024-01.csv", samples(2, seed=101))  # sorts before the file already read
    write_csv(drop / "2024-03.csv", samples(2, seed=102))
    assert _run(world, config) == (2, 1)
    (letter,) = _letters(world, "files-late")
    assert letter["detail"].startswith("2024-01.csv: it arrived after the source had passed its name")
    assert (drop / "rejected" / "2024-01.csv").is_file()
    assert (drop / "rejected" / "2024-01.csv.reason.txt").is_file()


# -- without the broker: offsets the folder cannot have, and the crash windows, step by step ----------------

@pytest.fixture
def opened(drop: Path) -> Iterator[Callable[..., FilesSource]]:
    """Open a files source on ``drop`` (closed after the test)."""
    made: list[FilesSource] = []

    def make(**extra: Any) -> FilesSource:
        made.append(FilesSource(files_config(drop, **extra), CATALOGUE))
        made[-1].open(SourceContext("files-kit", AGENCY))
        return made[-1]

    yield make
    for source in made:
        source.close()


@pytest.mark.parametrize(("offset", "message"), [
    ({"file": "gone.csv", "line": 2}, "there is no file gone.csv in"),
    ({"file": "a.csv", "line": 40}, "names line 40 of a.csv, which has 4 lines"),
    ({"file": "../a.csv", "line": 1}, "is not a files offset"),
    ({"i": 3}, "is not a files offset"),
])
def test_an_offset_the_folder_cannot_have_is_a_typed_error(drop: Path, opened: Callable[..., FilesSource],
                                                           offset: Offset, message: str) -> None:
    write_csv(drop / "a.csv", samples(3, seed=110))
    source = opened()
    with pytest.raises(UnknownOffsetError, match=message):
        source.poll(offset)
    assert (drop / "a.csv").is_file()  # nothing moved, nothing read past


def test_a_line_past_the_end_of_a_file_in_done_is_a_typed_error(drop: Path,
                                                                opened: Callable[..., FilesSource]) -> None:
    (drop / "done").mkdir()
    write_csv(drop / "done" / "a.csv", samples(3, seed=111))
    source = opened()
    assert source.poll({"file": "a.csv", "line": 4}) == []
    with pytest.raises(UnknownOffsetError, match=r"done/a.csv has 4 lines"):
        source.poll({"file": "a.csv", "line": 5})


def test_a_bad_line_after_good_ones_is_raised_by_the_next_poll(drop: Path,
                                                               opened: Callable[..., FilesSource]) -> None:
    good = samples(3, seed=112)
    write_csv(drop / "a.csv", good[:2], extra=["x", ",".join(_cell(good[2][f]) for f in FIELDS)])
    source = opened()
    first = list(source.poll(None))
    assert [r.offset for r in first] == [{"file": "a.csv", "line": 2}, {"file": "a.csv", "line": 3}]
    with pytest.raises(BadRecord) as caught:
        source.poll(first[-1].offset)
    assert caught.value.offset == {"file": "a.csv", "line": 4}
    assert caught.value.original == b"x"
    (last,) = source.poll(caught.value.offset)
    assert last.values == good[2]
    assert source.poll(last.offset) == []  # the end of the file ends the batch
    source.acknowledge(last.offset)
    assert (drop / "done" / "a.csv").is_file()
    source.acknowledge(last.offset)  # again: fine


def test_at_the_end_of_a_file_the_batch_ends_and_a_restart_moves_the_file_it_finished(
        drop: Path, opened: Callable[..., FilesSource]) -> None:
    write_csv(drop / "a.csv", samples(2, seed=113))
    write_csv(drop / "b.csv", samples(1, seed=114))
    source = opened()
    first = list(source.poll(None))
    assert source.poll(first[-1].offset) == []  # the batch is committed with an offset naming a.csv
    # A crash before the acknowledge: a fresh source polls from the committed offset.
    restarted = opened()
    (b,) = restarted.poll(first[-1].offset)
    assert b.offset == {"file": "b.csv", "line": 2}
    assert (drop / "done" / "a.csv").is_file()  # moved before any line of b.csv was handed out


def test_a_file_dropped_again_under_an_imported_name_is_refused(drop: Path,
                                                                 opened: Callable[..., FilesSource]) -> None:
    write_csv(drop / "a.csv", samples(2, seed=115))
    source = opened()
    records = list(source.poll(None))
    source.acknowledge(records[-1].offset)
    write_csv(drop / "a.csv", samples(5, seed=116))
    with pytest.raises(BadRecord, match=r"a\.csv: a file of this name was imported already") as caught:
        source.poll(records[-1].offset)
    assert caught.value.offset == records[-1].offset  # the offset does not move
    assert source.poll(records[-1].offset) == []
    source.acknowledge(records[-1].offset)
    assert (drop / "rejected" / "a.csv").is_file()
    assert (drop / "done" / "a.csv").is_file()


def test_a_header_alone_is_done_at_once_and_an_empty_csv_is_rejected(drop: Path,
                                                                      opened: Callable[..., FilesSource]) -> None:
    write_csv(drop / "a.csv", [])
    (drop / "b.csv").write_bytes(b"")
    source = opened()
    assert source.remaining(None) == 0
    with pytest.raises(BadRecord, match=r"b\.csv: wrong header: the file is empty") as caught:
        source.poll(None)
    assert (drop / "done" / "a.csv").is_file()
    assert caught.value.offset is not None
    assert source.poll(caught.value.offset) == []
    source.acknowledge(caught.value.offset)
    assert (drop / "rejected" / "b.csv.reason.txt").read_text().startswith("b.csv: wrong header: the file is")
