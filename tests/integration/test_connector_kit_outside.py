"""The conformance kit from a connector package outside the exchange: an agency's own source (a journal of JSON
lines) in a folder of its own, with a conftest that only loads the kit's plugin, passes the kit's tests on the
real broker — with none of the exchange's own test code importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.router_world import ROOT

CONFTEST = '''\
import sys

sys.modules["tests"] = None  # the exchange's own tests are not there for an agency's package
pytest_plugins = ["connectors.sdk.testing.plugin"]
'''

SOURCE = '''\
"""An agency's journal: one JSON record per line; the offset is the last line published."""

from collections.abc import Iterator
from pathlib import Path

from connectors.sdk import BadRecord, Offset, OffsetError, Source, SourceRecord
from connectors.sdk.jsonrecord import JsonRecordError, parse_json_object, read_json_record
from exchange.context import Context


class JournalSource(Source):
    def __init__(self, path: Path, record_type: str) -> None:
        self.path, self.record_type = path, record_type
        self.schema = Context().catalogue.current(record_type)

    def poll(self, after: Offset | None) -> Iterator[SourceRecord]:
        done = 0 if after is None else int(after["line"])
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        if done > len(lines):
            raise OffsetError(f"line {done} is past the journal's {len(lines)} lines")
        for number, line in enumerate(lines[done:done + 100], start=done + 1):
            try:
                values = read_json_record(self.schema, parse_json_object(line))
            except JsonRecordError as exc:
                raise BadRecord(f"line {number}: {exc}", offset={"line": number}, original=line.encode()) from None
            yield SourceRecord(self.record_type, values, {"line": number})
'''

TESTS = '''\
import random

from connectors.sdk import ConnectorConfig
from connectors.sdk.testing import SourceConformance, canonical
from exchange.schemas.samples import sample_record
from journal_source import JournalSource

TYPE = "population.address-changed"


class TestJournalSource(SourceConformance):
    agency = "population-registry"
    record_type = TYPE

    def make(self, directory):
        self.journal = directory / "journal.jsonl"
        return JournalSource(self.journal, TYPE), ConnectorConfig(name="journal", kind="journal")

    def _append(self, lines):
        with self.journal.open("a", encoding="utf-8") as out:
            out.writelines(line + "\\n" for line in lines)

    def inject(self, n):
        first = len(self.journal.read_text().splitlines()) if self.journal.exists() else 0
        records = [sample_record(TYPE, random.Random(first + i)) for i in range(n)]
        self._append([canonical(r) for r in records])
        return records

    def inject_bad(self):
        self._append(['{"person_id": 7}'])

    def future_offset(self):
        return {"line": 10**6}
'''

CHOSEN = "injected or kill_at or nothing_new or tolerance_none or out_of_order"
"""The kit's tests run here (the others are the same code, run for every connector of the exchange)."""


def test_a_package_outside_the_exchange_passes_the_kit(bootstrap: str, tmp_path: Path) -> None:
    package = tmp_path / "agency-journal"
    package.mkdir()
    (package / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (package / "journal_source.py").write_text(SOURCE, encoding="utf-8")
    (package / "test_journal.py").write_text(TESTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "PYTHON"))}
    env |= {"EXCHANGE_BOOTSTRAP": bootstrap, "EXCHANGE_SCHEMAS": str(ROOT / "schemas"),
            "EXCHANGE_POLICIES": str(ROOT / "policies"), "EXCHANGE_REGISTRY": str(ROOT / "policies" / "registry.yaml")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", CHOSEN, "."],
                          cwd=package, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "7 passed" in done.stdout, done.stdout[-2000:]
