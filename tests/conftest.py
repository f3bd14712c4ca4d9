"""Shared fixtures: the real services every integration test talks to.

The whole session gets its own ONECART_HOME under pytest's temporary directory, its own
Meilisearch server and sandbox on free loopback ports, and its own Redis database number, so a
test run never touches a developer's `make run` state.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from onecart import processes
from onecart.settings import Settings, get_settings

# Small but realistic: ≈ 200 offers per marketplace keeps a full materialization quick.
TEST_SANDBOX_OFFERS = 1200
TEST_SANDBOX_SEED = 7


def pytest_configure(config: pytest.Config) -> None:
    """Point every setting at throw-away state before any test module reads settings."""
    base = Path(config.rootpath) / "var" / "test-runs" / str(os.getpid())
    base.mkdir(parents=True, exist_ok=True)
    os.environ["ONECART_HOME"] = str(base / "home")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ.pop("ONECART_SANDBOX_URL", None)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


def _reset_settings(**env: str) -> Settings:
    os.environ.update(env)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def meili_server(settings: Settings) -> Iterator[str]:
    """A real Meilisearch server for the session; yields its URL (MEILI_URL is set to it)."""
    port = processes.free_port()
    data = settings.home_dir / "meili-test"
    data.mkdir(parents=True, exist_ok=True)
    proc = processes.start_meilisearch(
        settings, "meilisearch-test", data / "data.ms", f"127.0.0.1:{port}"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(f"{url}/health", timeout=60, process=proc)
        _reset_settings(MEILI_URL=url)
        yield url
    finally:
        processes.stop_pid(proc.pid)


@contextmanager
def serve_sandbox(settings: Settings, name: str = "sandbox-test") -> Iterator[str]:
    """A sandbox process over real HTTP on a free port, stopped afterwards; yields its URL."""
    port = processes.free_port()
    argv = [
        sys.executable,
        "-m",
        "sandbox",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--offers",
        str(TEST_SANDBOX_OFFERS),
        "--seed",
        str(TEST_SANDBOX_SEED),
    ]
    proc = processes.start_process(settings, name, argv)
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(f"{url}/_sandbox/health", timeout=60, process=proc)
        yield url
    finally:
        processes.stop_pid(proc.pid)


@pytest.fixture(scope="session")
def sandbox_server(settings: Settings) -> Iterator[str]:
    """The sandbox marketplaces over real HTTP; yields the base URL (settings point at it)."""
    with serve_sandbox(settings) as url:
        port = url.rsplit(":", 1)[1]
        _reset_settings(ONECART_SANDBOX_PORT=port, ONECART_SANDBOX_HOST="127.0.0.1")
        yield url


@pytest.fixture
def sandbox_control(sandbox_server: str) -> Iterator[httpx.Client]:
    """A client for the sandbox's fault knobs; every knob is reset after the test."""
    client = httpx.Client(base_url=sandbox_server, timeout=10)
    try:
        yield client
    finally:
        client.post("/_sandbox/reset")
        client.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[int, list[Any]]]:
    """A local SMTP server (aiosmtpd) on a free loopback port; yields (port, received messages)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Collect(Message):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    port = processes.free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()
