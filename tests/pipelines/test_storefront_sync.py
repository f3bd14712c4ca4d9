"""When the storefront DB is not there yet, the sync says why instead of creating or failing."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb
import pytest

from pipelines.storefront_sync import storefront_unavailable_reason, sync_storefront_catalog


def test_a_missing_sqlite_file_is_reported_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "storefront.db"
    reason = storefront_unavailable_reason(f"sqlite:///{path}")
    assert reason is not None and "does not exist yet" in reason
    assert not path.exists()


def test_a_database_without_the_storefront_tables_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "storefront.db"
    sqlite3.connect(path).close()
    reason = storefront_unavailable_reason(f"sqlite:///{path}")
    assert reason is not None and "run the storefront migrations" in reason


def test_skipping_never_opens_the_warehouse(tmp_path: Path) -> None:
    def connect_warehouse() -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        pytest.fail("the warehouse was opened although there is nothing to sync into")

    outcome = sync_storefront_catalog(
        f"sqlite:///{tmp_path / 'absent.db'}", connect_warehouse, marketplaces=[]
    )
    assert outcome.skipped_reason is not None
    assert outcome.counts == {}
