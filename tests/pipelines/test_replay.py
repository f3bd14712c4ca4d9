"""`onecart ingest --history DAYS` refuses what only the sandbox could make true."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from onecart.settings import get_settings
from pipelines.replay import HistoryReplayError, replay_sandbox_history
from tests.pipelines.conftest import clear_settings_caches

REAL_MARKETPLACE = """
[[marketplace]]
slug = "realshop"
name = "Real Shop"
kind = "dummyjson"
base_url = "https://shop.example.com"
currency = "USD"
country = "US"
"""


@pytest.fixture
def real_marketplaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    toml = tmp_path / "marketplaces.toml"
    toml.write_text(REAL_MARKETPLACE)
    monkeypatch.setenv("ONECART_MARKETPLACES", str(toml))
    monkeypatch.setenv("ONECART_HOME", str(tmp_path / "home"))
    clear_settings_caches()
    yield
    clear_settings_caches()


def test_history_is_refused_for_marketplaces_outside_the_sandbox(real_marketplaces: None) -> None:
    with pytest.raises(HistoryReplayError, match="only the sandbox"):
        replay_sandbox_history(3, progress=lambda line: None)
    assert not get_settings().pipeline_db_path.exists()


@pytest.mark.parametrize("days", [0, -1, 91])
def test_history_days_are_bounded(days: int) -> None:
    with pytest.raises(HistoryReplayError, match="1 to 90"):
        replay_sandbox_history(days, progress=lambda line: None)
