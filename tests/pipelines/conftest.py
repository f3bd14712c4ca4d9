"""Fixtures for the pipeline tests: a pipeline home of their own, the real Dagster instance in
it, and one full ingest against the real sandbox, DuckDB and Meilisearch shared by the module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import meilisearch
import pytest
from dagster import DagsterInstance

from onecart.services import sandbox_credentials
from onecart.settings import Settings, get_settings
from pipelines.run import IngestReport, dagster_instance, materialize_all

# The sandbox accepts any non-empty credentials; real deployments set these in the environment.
# Placeholder keys for every marketplace marketplaces.toml serves from the sandbox.
SANDBOX_CREDENTIALS = sandbox_credentials(get_settings(), environ={})


def sandbox_credential_environment() -> dict[str, str]:
    """The credentials a pipeline run against the sandbox needs: the environment's where set
    (CI may set real-looking ones), the placeholders otherwise."""
    return {name: os.environ.get(name) or value for name, value in SANDBOX_CREDENTIALS.items()}


@dataclass(frozen=True)
class Ingest:
    """One materialize_all call: its report and the progress lines it printed."""

    report: IngestReport
    lines: list[str]


def clear_settings_caches() -> None:
    """Make OneCart's (and the assistant's, when installed) settings re-read the environment."""
    get_settings.cache_clear()
    try:
        from assistant.config import get_assistant_settings
    except ImportError:
        return
    get_assistant_settings.cache_clear()


@pytest.fixture(scope="module")
def pipeline_settings(
    settings: Settings, sandbox_server: str, meili_server: str
) -> Iterator[Settings]:
    """Settings with a private ONECART_HOME and index uid for this module, restored afterwards,
    so pipeline runs never see another module's warehouse or index."""
    run = uuid.uuid4().hex[:8]
    overrides = {
        "ONECART_HOME": str(settings.home_dir / f"pipeline-{run}"),
        "MEILI_INDEX": f"pipeline_{run}",
        # The embedding model takes minutes on a small CPU; the assistant's tests cover it, and
        # test_full_materialization feeds search_products stored vectors instead.
        "ONECART_ASSISTANT_EMBEDDINGS": "off",
        **sandbox_credential_environment(),
    }
    # DAGSTER_HOME and DATABASE_URL unset: the Dagster instance and the storefront database are
    # the module's own, under its ONECART_HOME (a DATABASE_URL left in the shell, e.g. the
    # PostgreSQL pass's, had the storefront sync find tables another run made).
    saved = {name: os.environ.get(name) for name in [*overrides, "DAGSTER_HOME", "DATABASE_URL"]}
    os.environ.update(overrides)
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.pop("DATABASE_URL", None)
    clear_settings_caches()
    try:
        yield get_settings()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        clear_settings_caches()


@pytest.fixture(scope="module")
def instance(pipeline_settings: Settings) -> Iterator[DagsterInstance]:
    """The persistent Dagster instance under the module's ONECART_HOME/dagster."""
    home = pipeline_settings.home_dir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = dagster_instance(home)
    try:
        yield dagster
    finally:
        dagster.dispose()


@pytest.fixture(scope="module")
def meili(pipeline_settings: Settings) -> Iterator[meilisearch.Client]:
    """A client for the test Meilisearch; the module's indexes are deleted afterwards."""
    client = meilisearch.Client(pipeline_settings.meili_url, pipeline_settings.meili_master_key)
    yield client
    for uid in (pipeline_settings.meili_index, f"{pipeline_settings.meili_index}_next"):
        client.delete_index(uid)


@pytest.fixture(scope="module")
def first_ingest(
    pipeline_settings: Settings, instance: DagsterInstance, meili: meilisearch.Client
) -> Ingest:
    """The first full materialization of the module's fresh pipeline home."""
    lines: list[str] = []
    report = materialize_all(instance=instance, progress=lines.append)
    return Ingest(report=report, lines=lines)
