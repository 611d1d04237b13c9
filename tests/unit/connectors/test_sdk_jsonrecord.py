"""The connectors' one JSON reading (connectors.sdk.jsonrecord): the errors it raises, and that the sources
that use it do not pull in the webhook's HTTP server."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import date
from typing import Any

import pytest

from connectors.sdk.jsonrecord import (
    JsonRecordError,
    general_record,
    parse_json_object,
    read_json_record,
    record_from_json,
)
from exchange.schemas import Catalogue
from exchange.schemas.samples import SAMPLE_TYPES, sample_record
from tests.unit.connectors.conftest import as_json

TYPE = "population.address-changed"


def _body(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in record.items()}


def test_a_record_is_read_and_every_problem_named_without_its_value(catalogue: Catalogue) -> None:
    schema = catalogue.current(TYPE)
    record = sample_record(TYPE, random.Random(3))
    assert read_json_record(schema, parse_json_object(json.dumps(_body(record)))) == record
    with pytest.raises(JsonRecordError) as caught:
        read_json_record(schema, {**_body(record), "postal_code": 4242424, "moved_on": 7})
    assert [p.field for p in caught.value.problems] == ["postal_code", "moved_on"]
    assert str(caught.value) == ("field 'postal_code': expected a string, got a number; field 'moved_on': "
                                 'expected a date "YYYY-MM-DD", got a number')
    assert "4242424" not in str(caught.value)


@pytest.mark.parametrize(("raw", "problem"), [
    ("{not json", "not JSON"), (b"\xff", "not UTF-8"), ("[1]", "not a JSON object but an array"),
    (memoryview(b"7"), "not a JSON object but a number"),
])
def test_what_is_not_one_json_object_is_refused_saying_why(raw: Any, problem: str) -> None:
    with pytest.raises(JsonRecordError, match=problem):
        parse_json_object(raw)


def test_the_files_sql_and_feed_connectors_do_not_import_the_webhook() -> None:
    script = ("import sys, connectors.files, connectors.sql, connectors.feed; "
              "print(sorted(m for m in ('starlette', 'uvicorn', 'connectors.http') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


ODD_VALUES: tuple[Any, ...] = (None, 0, -1, 2**40, 2**70, 1.5, float("1e39"), True, "", "x", "2024-02-30",
                               "2026-11-02", "2026-11-02T08:30:00Z", "2026-11-02T08:30:00", "\ud800", "AAAA", [],
                               {}, ["x"], {"a": 1})


@pytest.mark.parametrize("record_type", SAMPLE_TYPES)
def test_the_fast_path_reads_every_record_as_the_general_reading_does(catalogue: Catalogue,
                                                                     record_type: str) -> None:
    """Sample records of every type, and each with every field set to odd values, left out, or joined by an
    unknown one: the same values and the same problems, fast path or not."""
    schema = catalogue.current(record_type)
    rng = random.Random(record_type)
    for _ in range(5):
        body = as_json(sample_record(record_type, rng))
        bodies = [body, {**body, "unknown": 1}]
        for name in body:
            bodies.append({k: v for k, v in body.items() if k != name})
            bodies += [{**body, name: odd} for odd in ODD_VALUES]
        for candidate in bodies:
            assert record_from_json(schema, candidate) == general_record(schema, candidate), candidate
