"""What a site worker does around its app (onecart/site_worker.py), called as onecart.site_wsgi
calls it once a uWSGI worker has built the app."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from onecart import site_worker


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process keeps collecting everything


def test_a_worker_freezes_what_it_holds_once_the_app_is_loaded(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONECART_ASSISTANT_WARM_UP", "0")
    long_lived = {"kept": [object() for _ in range(100)]}

    site_worker.worker_started()

    assert gc.get_freeze_count() >= len(long_lived["kept"])
    # Frozen objects are out of every generation a collection walks.
    assert not any(tracked is long_lived for tracked in gc.get_objects())
    # Garbage made after the freeze is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


def test_without_the_switch_the_model_preload_starts_in_the_background(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ONECART_ASSISTANT_WARM_UP", raising=False)
    started: list[str] = []
    original_start = threading.Thread.start

    def record_start(thread: threading.Thread) -> None:
        started.append(thread.name)

    monkeypatch.setattr(threading.Thread, "start", record_start)
    site_worker.worker_started()
    monkeypatch.setattr(threading.Thread, "start", original_start)

    assert started == ["assistant-warm-up"]


def test_the_app_config_comes_from_a_json_object() -> None:
    assert site_worker.config_from_environment({}) == {}
    assert site_worker.config_from_environment(
        {"ONECART_SITE_CONFIG": '{"SEARCH_CACHE_SECONDS": 0}'}
    ) == {"SEARCH_CACHE_SECONDS": 0}
    with pytest.raises(ValueError, match="JSON object"):
        site_worker.config_from_environment({"ONECART_SITE_CONFIG": "[1]"})
