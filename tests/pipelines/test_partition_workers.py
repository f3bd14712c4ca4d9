"""The partition workers' environment: they fork from a long-lived server process, so they must
run with the environment of the ingest that submits them, not of the one that started it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onecart.settings import get_settings
from pipelines.run import _partition_worker_pool


def _worker_home(pool_home: Path, monkeypatch: pytest.MonkeyPatch) -> str | None:
    monkeypatch.setenv("ONECART_HOME", str(pool_home))
    get_settings.cache_clear()
    (pool_home / "dagster").mkdir(parents=True, exist_ok=True)
    with _partition_worker_pool(1, str(pool_home / "dagster")) as pool:
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
