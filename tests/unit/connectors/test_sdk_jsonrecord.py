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

from connectors.sdk.jsonrecord import JsonRecordError, parse_json_object, read_json_record
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record

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
