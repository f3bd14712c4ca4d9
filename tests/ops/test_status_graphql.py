"""`onecart status` asks the running Dagster webserver (its GraphQL API) instead of opening
Dagster's instance in its own process: ~2.4 s of CPU per status while the stack runs (ops9's
leftover), most of it importing Dagster. Both ways must print the same lines."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from onecart import catalog_status, processes
from onecart.dagster_instance import dagster_home, prepare_dagster_instance
from onecart.settings import Settings
from tests.ops.test_catalog_status import _run_checked_partitions, _run_partitions


@pytest.fixture
def settings(shop: dict[str, str]) -> Settings:
    settings = Settings(**{k: v for k, v in shop.items() if k.startswith("ONECART_")})
    prepare_dagster_instance(settings)
    return settings


@pytest.fixture
def shop(environment: dict[str, str], tmp_path: Path) -> dict[str, str]:
    from tests.ops.test_catalog_status import MARKETPLACES

    marketplaces = tmp_path / "marketplaces.toml"
    marketplaces.write_text(MARKETPLACES)
    return {**environment, "ONECART_MARKETPLACES": str(marketplaces)}


@pytest.fixture
def graphql_url(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """A Dagster webserver on the home's instance (no code location: status reads only the
    instance's runs, materializations and check results through it)."""
    port = processes.free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home(settings))}
    log = (tmp_path / "webserver.log").open("wb")
    server = subprocess.Popen(
        [
            str(processes.VENV_BIN / "dagster-webserver"),
            "--empty-workspace",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:  # until it answers or dies
            assert server.poll() is None, (tmp_path / "webserver.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        yield f"{url}/graphql"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
        log.close()


def test_status_reads_the_same_runs_and_checks_through_the_webserver(
    settings: Settings, graphql_url: str
) -> None:
    _run_checked_partitions(settings)
    _run_partitions(settings, {"kiondo": True, "amazon": True})
    _run_partitions(settings, {"kiondo": True, "amazon": False})  # the partitions' last runs

    from_instance = catalog_status.DagsterReader(settings)
    through_webserver = catalog_status.DagsterReader(settings, graphql_url=graphql_url)
    try:
        expected = catalog_status.describe_catalogs(
            settings, from_instance
        ) + catalog_status.describe_checks(settings, from_instance)
        lines = catalog_status.describe_catalogs(
            settings, through_webserver
        ) + catalog_status.describe_checks(settings, through_webserver)
        opened = through_webserver._opened
    finally:
        from_instance.close()
        through_webserver.close()

    assert lines == expected
    # Something to compare: a failed partition and a warning with its metadata.
    assert any("amazon: its last run failed" in line for line in lines)
    assert any(line.split()[:1] == ["WARN"] and "gtin_invalid=30" in line for line in lines)
    assert any("offers_without_rate={'lusaka': 5}" in line for line in lines)
    assert not opened, "status opened Dagster's instance though the webserver answered"


def test_status_opens_the_instance_when_the_webserver_does_not_answer(
    settings: Settings,
) -> None:
    _run_partitions(settings, {"kiondo": True, "amazon": False})
    silent = f"http://127.0.0.1:{processes.free_port()}/graphql"
    reader = catalog_status.DagsterReader(settings, graphql_url=silent)
    try:
        lines = catalog_status.describe_catalogs(settings, reader)
    finally:
        reader.close()
    assert any("amazon: its last run failed" in line for line in lines)
