"""Fixtures of the operations tests: an empty ONECART_HOME and every address on a free port."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onecart import processes


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def environment(home: Path) -> dict[str, str]:
    """Every address on a free loopback port, so nothing of a developer's `make run` answers."""
    ports = {
        name: processes.free_port()
        for name in ("meili", "sandbox", "stripe", "dagster", "site", "redis")
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ONECART_", "MEILI_", "DAGSTER_", "DATABASE_URL"))
    }
    env.update(
        ONECART_HOME=str(home),
        MEILI_URL=f"http://127.0.0.1:{ports['meili']}",
        ONECART_SANDBOX_HOST="127.0.0.1",
        ONECART_SANDBOX_PORT=str(ports["sandbox"]),
        ONECART_SANDBOX_OFFERS="600",
        STRIPE_API_BASE=f"http://127.0.0.1:{ports['stripe']}",
        ONECART_DAGSTER_PORT=str(ports["dagster"]),
        ONECART_SITE_PORT=str(ports["site"]),
        REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0",
    )
    return env
