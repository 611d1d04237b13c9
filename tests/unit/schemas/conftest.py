"""Fixtures shared by the schema catalogue tests: the shipped schema tree and a helper to build schemas in memory."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exchange.schemas import Catalogue, RecordSchema, parse_record_schema

SCHEMAS_ROOT = Path(__file__).resolve().parents[3] / "schemas"

MakeSchema = Callable[..., RecordSchema]


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue.load(SCHEMAS_ROOT)


def record_json(fields: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A valid record schema of type ``test.thing`` with the given fields (doc and classification filled in)."""
    full = [{"doc": f"The {f['name']}.", "classification": "public", **f} for f in fields]
    return {
        "type": "record", "name": "Thing", "namespace": "gov.exchange.test", "doc": "A test record.",
        "key_field": full[0]["name"], "key_kind": "record", "fields": full, **extra,
    }


@pytest.fixture
def make_schema() -> MakeSchema:
    def make(fields: list[dict[str, Any]], revision: int = 1, **extra: Any) -> RecordSchema:
        return parse_record_schema(record_json(fields, **extra), "test.thing", revision)

    return make


def seeded(seed: int | str) -> random.Random:
    """A deterministic generator for sample records."""
    return random.Random(seed)
