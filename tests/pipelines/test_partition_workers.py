"""The partition workers: they fork from a long-lived server process, so they must run with the
environment of the ingest that submits them, not of the one that started it; and they find what
a partition run imports already imported by that server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onecart.settings import get_settings
from pipelines.run import _partition_worker_pool
from pipelines.worker_imports import WORKER_MODULES


def _worker_home(pool_home: Path, monkeypatch: pytest.MonkeyPatch) -> str | None:
    monkeypatch.setenv("ONECART_HOME", str(pool_home))
    get_settings.cache_clear()
    (pool_home / "dagster").mkdir(parents=True, exist_ok=True)
    with _partition_worker_pool(1) as pool:
        return pool.submit(os.getenv, "ONECART_HOME").result(timeout=300)


def test_each_ingest_s_workers_see_its_own_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first pool may start the forkserver (with the first home in its environment); the
    # second must still hand its workers the second home.
    first, second = tmp_path / "first", tmp_path / "second"
    assert _worker_home(first, monkeypatch) == str(first)
    assert _worker_home(second, monkeypatch) == str(second)
    get_settings.cache_clear()


def test_a_worker_starts_with_what_a_partition_run_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the worker holds before it runs anything: `eval` pickles by reference, so asking
    # imports nothing in the worker. Without the server's preload the worker holds pipelines.run
    # and what it imports, and none of Dagster's SQLite storages, Alembic or the adapters.
    monkeypatch.setenv("ONECART_HOME", str(tmp_path))
    get_settings.cache_clear()
    with _partition_worker_pool(1) as pool:
        held = set(pool.submit(eval, "list(__import__('sys').modules)").result(timeout=300))
    get_settings.cache_clear()
    assert "pipelines.run" in held
    assert [name for name in WORKER_MODULES if name not in held] == []


def test_a_parallel_ingest_says_which_marketplaces_are_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "loading catalogs: 0 of 8 marketplaces" stood alone for the first partitions' whole
    fetch; the progress now names the ones running, as the pool starts them (in order, one as
    each finishes). Threads stand in for the worker processes; each partition waits for its
    turn so the order of completion is known."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import pipelines.run as run

    turn = {slug: threading.Event() for slug in ("kiondo", "shopwave", "bazaar")}

    def partition(slug: str, *_args: object) -> run.PartitionOutcome:
        turn[slug].wait(timeout=30)
        return run.PartitionOutcome(marketplace=slug, success=True, run_id=f"run-{slug}")

    heard: list[tuple[int, list[str]]] = []

    def on_progress(done: int, now: list[str]) -> None:
        heard.append((done, now))
        finished = ["shopwave", "kiondo", "bazaar"]  # the order the partitions are let finish
        if done < len(finished):
            turn[finished[done]].set()

    monkeypatch.setattr(run, "_partition_in_child", partition)
    monkeypatch.setattr(run, "_partition_worker_pool", lambda workers: ThreadPoolExecutor(workers))

    outcomes = run._run_partitions_concurrently(
        ["kiondo", "shopwave", "bazaar"],
        2,
        "/unused",
        False,
        lambda _line: None,
        on_progress=on_progress,
    )

    assert list(outcomes) == ["kiondo", "shopwave", "bazaar"]
    assert heard == [
        (0, ["kiondo", "shopwave"]),
        (1, ["kiondo", "bazaar"]),
        (2, ["bazaar"]),
        (3, []),
    ]
