"""The site's gunicorn hooks (onecart/gunicorn_config.py), called as gunicorn calls them."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator

import pytest

from onecart import gunicorn_config


class FakeWorker:
    """What the hook reads of a gunicorn worker: its log."""

    log = logging.getLogger("test-gunicorn-worker")


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

    gunicorn_config.post_worker_init(FakeWorker())

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
    gunicorn_config.post_worker_init(FakeWorker())
    monkeypatch.setattr(threading.Thread, "start", original_start)

    assert started == ["assistant-warm-up"]
