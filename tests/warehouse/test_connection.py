"""warehouse.connect(): schema on connect, one holder at a time across threads and processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

import warehouse
from warehouse.connection import WarehouseLockTimeout, WarehouseMissing, lock_path_for

TABLES = {
    "marketplaces",
    "raw_catalog",
    "products",
    "rejected_products",
    "catalog_loads",
    "fx_rates",
    "product_groups",
    "price_history",
}


def test_every_table_exists_on_first_connect_and_reconnecting_keeps_the_rows(
    tmp_path: Path,
) -> None:
    db = tmp_path / "pipeline.duckdb"
    with warehouse.connect(db) as conn:
        tables = {name for (name,) in conn.execute("SHOW TABLES").fetchall()}
        conn.execute("INSERT INTO price_history VALUES ('shop', '1', 100, 'USD', true, now())")
    assert tables >= TABLES
    with warehouse.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM price_history").fetchone() == (1,)
    assert lock_path_for(db).exists()


def test_read_only_connection_to_a_missing_file_says_so(tmp_path: Path) -> None:
    with (
        pytest.raises(WarehouseMissing, match="run the pipeline first"),
        warehouse.connect(tmp_path / "absent.duckdb", read_only=True),
    ):
        pass


def test_nested_connect_in_one_thread_is_refused_instead_of_deadlocking(tmp_path: Path) -> None:
    db = tmp_path / "pipeline.duckdb"
    with (
        warehouse.connect(db),
        pytest.raises(RuntimeError, match="nested"),
        warehouse.connect(db, read_only=True),
    ):
        pass


def test_a_second_thread_waits_for_the_first_connection(tmp_path: Path) -> None:
    db = tmp_path / "pipeline.duckdb"
    holding = threading.Event()
    other_done = threading.Event()
    outcome: list[str] = []

    def hold() -> None:
        with warehouse.connect(db):
            holding.set()
            other_done.wait(timeout=30)

    def contend() -> None:
        holding.wait(timeout=30)
        try:
            with warehouse.connect(db, lock_timeout=0.2):
                outcome.append("entered")
        except WarehouseLockTimeout:
            outcome.append("timed out")
        finally:
            other_done.set()

    threads = [threading.Thread(target=hold), threading.Thread(target=contend)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcome == ["timed out"]
    with warehouse.connect(db, lock_timeout=5) as conn:  # free again once the holder is done
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_another_process_holding_the_lock_blocks_until_it_lets_go(tmp_path: Path) -> None:
    db = tmp_path / "pipeline.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, warehouse\n"
            f"with warehouse.connect({str(db)!r}):\n"
            "    print('locked', flush=True)\n"
            "    sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(warehouse.__file__).resolve().parent.parent,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLockTimeout), warehouse.connect(db, lock_timeout=0.2):
            pass
        assert holder.stdin is not None
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
        with warehouse.connect(db, lock_timeout=5) as conn:
            assert {name for (name,) in conn.execute("SHOW TABLES").fetchall()} >= TABLES
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_transaction_rolls_back_everything_when_the_block_fails(tmp_path: Path) -> None:
    db = tmp_path / "pipeline.duckdb"
    with warehouse.connect(db) as conn:
        with pytest.raises(ValueError, match="half-way"), warehouse.transaction(conn):
            conn.execute("INSERT INTO price_history VALUES ('shop', '1', 100, 'USD', true, now())")
            raise ValueError("failed half-way")
        assert conn.execute("SELECT count(*) FROM price_history").fetchone() == (0,)
