"""The tracker's index on SQLite: migrations, idempotent writes, hiding and releasing, paging and filters."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from exchange.tracker.store import MIGRATIONS, AccessRow, Position, StoreError, TrackerStore

SECOND = 1_000_000
ALICE, BOB = "a" * 32, "b" * 32


def row(index: int, subject: str | None = ALICE, *, at: int | None = None, outcome: str = "PERMIT",
        recipient: str | None = "tax-board", hidden_for: int = 0) -> AccessRow:
    decided = (at if at is not None else index) * SECOND
    return AccessRow(index, subject, decided, recipient, "Tax Board", "population.address-changed", f"ev-{index}",
                     "tcb-address-changed-tax", "taxation", "statute:Tax Act §1", None, outcome,
                     ("postal_code",), ("AGREEMENT_PERMITS",), decided + hidden_for)


@pytest.fixture
def store(tmp_path: Path) -> TrackerStore:
    with TrackerStore.open(path=tmp_path / "tracker.sqlite") as opened:
        yield opened


def test_migrations_apply_once_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """Opening twice migrates once; a database from a newer exchange is refused, not damaged."""
    path = tmp_path / "t.sqlite"
    TrackerStore.open(path=path).close()
    with TrackerStore.open(path=path) as again:
        assert again.version() == len(MIGRATIONS)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO tracker_migrations VALUES (?, 0)", (len(MIGRATIONS) + 1,))
    with pytest.raises(StoreError, match="newer than this exchange knows"):
        TrackerStore.open(path=path)


def test_only_permits_about_a_subject_are_shown_and_the_rest_is_kept(store: TrackerStore) -> None:
    """DENY, REJECT and unreadable entries are indexed for auditors but never listed for the citizen."""
    rows = [row(0), row(1, outcome="DENY"), row(2, None, outcome="REJECT", recipient=None), row(3, BOB)]
    store.add(rows, Position(4, 10))
    assert store.page(ALICE).total == 1
    assert [r.log_index for r in store.page(ALICE).rows] == [0]
    assert [r.outcome for r in store.entries(ALICE)] == ["PERMIT", "DENY"]
    assert store.counts() == {"entries": 4, "rows": 2, "hidden": 0}
    assert store.position() == Position(4, 10)


def test_indexing_the_same_rows_twice_changes_nothing(store: TrackerStore) -> None:
    """Re-indexing is idempotent: rows are keyed by log index and the first write stays."""
    rows = [row(i, ALICE if i % 2 else BOB) for i in range(50)]
    store.add(rows[:30], Position(30, 30))
    store.add(rows, Position(50, 50))
    before = (store.counts(), store.page(ALICE, limit=200), store.page(BOB, limit=200))
    store.add(rows, Position(50, 50))
    assert (store.counts(), store.page(ALICE, limit=200), store.page(BOB, limit=200)) == before
    assert before[0] == {"entries": 50, "rows": 50, "hidden": 0}


def test_pages_are_newest_first_and_filtered_by_period_and_agency(store: TrackerStore) -> None:
    rows = [row(i, at=100 + i, recipient="tax-board" if i % 3 else "police-board") for i in range(10)]
    store.add(rows, Position(10, 10))
    page = store.page(ALICE, offset=2, limit=3)
    assert page.total == 10
    assert [r.log_index for r in page.rows] == [7, 6, 5]
    period = store.page(ALICE, start=102 * SECOND, end=105 * SECOND)
    assert [r.log_index for r in period.rows] == [4, 3, 2]
    police = store.page(ALICE, recipient="police-board")
    assert [r.log_index for r in police.rows] == [9, 6, 3, 0]
    assert police.total == 4


def test_equal_times_order_by_log_index(store: TrackerStore) -> None:
    store.add([row(i, at=5) for i in range(4)], Position(4, 4))
    assert [r.log_index for r in store.page(ALICE).rows] == [3, 2, 1, 0]


def test_a_hidden_row_appears_exactly_at_its_time(store: TrackerStore) -> None:
    """Before its time nothing counts it; at its time (not a microsecond later) it is listed."""
    store.add([row(0), row(1, hidden_for=100 * SECOND)], Position(2, 2), now=2 * SECOND)
    due = 1 * SECOND + 100 * SECOND
    assert store.release(now=due - 1) == 0
    assert store.page(ALICE).total == 1
    assert store.shown(1, ALICE) is None
    assert store.release(now=due) == 1
    page = store.page(ALICE)
    assert page.total == 2
    assert [r.log_index for r in page.rows] == [1, 0]
    assert store.shown(1, ALICE) is not None


def test_reindexing_after_release_does_not_hide_a_row_again(store: TrackerStore) -> None:
    hidden = row(0, hidden_for=10 * SECOND)
    store.add([hidden], Position(1, 1), now=0)
    store.release(now=20 * SECOND)
    store.add([hidden], Position(1, 1), now=0)
    assert store.counts() == {"entries": 1, "rows": 1, "hidden": 0}


def test_a_row_is_shown_only_to_its_subject(store: TrackerStore) -> None:
    store.add([row(0, ALICE), row(1, BOB)], Position(2, 2))
    assert store.shown(0, ALICE) is not None
    assert store.shown(0, BOB) is None
    assert store.shown(99, ALICE) is None


def test_hidden_rows_cost_a_citizen_query_nothing(store: TrackerStore, tmp_path: Path) -> None:
    """The page query of a subject runs the same SQLite program steps whether or not they have hidden rows
    (against a log of the same size, where those entries are about someone else): neither the count, the page
    nor the time to answer depends on them."""
    visible = [row(i, at=i) for i in range(40)]
    later = 10**12 * SECOND
    with TrackerStore.open(path=tmp_path / "other.sqlite") as other:
        store.add([*visible, *(replace(row(100 + i, BOB, at=100 + i), visible_from=later) for i in range(500))],
                  Position(540, 540), now=10**9 * SECOND)
        other.add([*visible, *(replace(row(100 + i, at=100 + i), visible_from=later) for i in range(500))],
                  Position(540, 540), now=10**9 * SECOND)
        assert other.counts()["hidden"] == 500
        assert store.page(ALICE, limit=20) == other.page(ALICE, limit=20)
        assert _steps(store) == _steps(other)


def _steps(store: TrackerStore) -> int:
    db = store._db  # the SQLite connection: the test counts its virtual-machine steps
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    db.set_progress_handler(tick, 1)
    try:
        store.page(ALICE, limit=20)
        store.page(ALICE, offset=20, limit=20)
    finally:
        db.set_progress_handler(None, 1)
    return steps[0]


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, 201)])
def test_page_bounds_are_checked(store: TrackerStore, offset: int, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.page(ALICE, offset=offset, limit=limit)


def test_a_database_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open"):
        TrackerStore.open(path=blocker / "tracker.sqlite")
