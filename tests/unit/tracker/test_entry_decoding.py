"""The indexer reads entries of the current decision revision without the generic decoder: the rows must be the
ones the generic decoder gives, for good entries and for every kind of damaged one."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from exchange.tracker import _decision
from exchange.tracker.indexer import HiddenPeriods, entry_row
from exchange.tracker.store import AccessRow
from tests.unit.tracker.support import AGENCIES, BUNDLE, CATALOGUE, START, decision, encode


def _rows(values: list[bytes]) -> list[AccessRow]:
    periods = HiddenPeriods(lambda: [BUNDLE.data])
    return [entry_row(i, v, CATALOGUE, AGENCIES, periods) for i, v in enumerate(values)]


def _generic_rows(values: list[bytes]) -> list[AccessRow]:
    saved = dict(_decision._headers)
    _decision._headers[id(CATALOGUE)] = (CATALOGUE, None)
    try:
        return _rows(values)
    finally:
        _decision._headers.clear()
        _decision._headers.update(saved)


def _entries() -> list[bytes]:
    records = [
        decision("p1", START),
        decision("p2", START + timedelta(days=3), outcome="DENY"),
        decision(None, START, outcome="DENY", agreement=None, purpose=None, legal_basis=None, fields=()),
        decision("p3", START, recipient="police-board", agreement="pbb-address-changed-law-enforcement",
                 record_type="population.address-changed", fields=("street_address",) * 70),
        {**decision("p4", START), "reason_codes": [], "consent_ref": "c" * 200, "event_time": None,
         "consent_offset": 12345678901, "restrictions_held": ["protected-address"], "agreement_version": 2**31 - 1,
         "event_digest": None, "event_id": None, "event_type": None, "ingress_partition": -5,
         "ingress_offset": 2**62},
        {**decision("p5", START), "outcome": "REJECT", "subject_ref": None, "recipient": None},
        {**decision("p6", datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))},
        {**decision("p7", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))},
        {**decision("p8", START), "subject_ref": bytes(range(256))},
        {**decision("p9", START), "legal_basis": "statute:Ühistranspordiseadus § 1 ✓"},
    ]
    return [encode(r) for r in records]


def test_the_fast_reader_is_used_for_the_current_revision() -> None:
    assert _decision.decision_header(CATALOGUE) == CATALOGUE.current("exchange.decision").header


def test_good_entries_give_the_rows_of_the_generic_decoder() -> None:
    values = _entries()
    fast = _rows(values)
    assert fast == _generic_rows(values)
    assert {r.outcome for r in fast} == {"PERMIT", "DENY", "REJECT"}
    assert fast[3].visible_from > fast[3].decided_at  # hidden by its agreement


def test_damaged_entries_give_the_rows_of_the_generic_decoder() -> None:
    rng = random.Random(7)
    good = _entries()
    damaged = []
    for _ in range(4000):
        value = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(10, len(value)) if len(value) > 10 else 10
            kind = rng.random()
            if kind < 0.6 and where < len(value):
                value[where] = rng.randrange(256)
            elif kind < 0.8:
                del value[where:]
            else:
                value[where:where] = bytes([rng.randrange(256)])
        damaged.append(bytes(value))
    fast = _rows(damaged)
    assert fast == _generic_rows(damaged)
    assert any(r.outcome == "UNREADABLE" for r in fast)
    assert any(r.outcome != "UNREADABLE" for r in fast)


def test_an_older_revision_is_read_generically() -> None:
    older = CATALOGUE.revision("exchange.decision", 1)
    record = {k: v for k, v in decision("p1", START).items() if k in older.field_names}
    row = _rows([older.encode(record)])[0]
    assert row.outcome == "PERMIT"
    assert row.decided_at == int(START.timestamp()) * 1_000_000
