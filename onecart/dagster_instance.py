"""The Dagster instance `onecart up` and `onecart ingest` share: DAGSTER_HOME, the dagster.yaml
OneCart writes there (telemetry off, bounded run concurrency, PostgreSQL storage in the cluster
profile), and its storage created before any Dagster process starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from onecart.processes import ProcessError
from onecart.settings import Settings


def dagster_postgres_url(settings: Settings) -> str | None:
    """ONECART_DAGSTER_POSTGRES_URL with the psycopg2 driver named: dagster-postgres is written
    for psycopg2, and SQLAlchemy 2.1 reads a plain postgresql:// URL as psycopg 3 (whose
    connections the webserver then found closed)."""
    url = settings.dagster_postgres_url
    if url and url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME for the Dagster services and `onecart ingest`: run history lives here."""
    return settings.home_dir / "dagster"


DAGSTER_YAML: Final = """\
# Written by `onecart up` (onecart/dagster_instance.py); edits are overwritten.
telemetry:
  enabled: false
nux:
  enabled: false
{storage}# Runs wait in Dagster's queue and the daemon launches up to this many at once: catalog
# partitions fetch in parallel (their DuckDB writes serialize through warehouse.connect()'s lock).
concurrency:
  runs:
    max_concurrent_runs: {max_runs}
    # One offer embeddings run at a time (pipelines/jobs.py tags each one): a second one waits
    # in the queue, then finds only what the first did not embed.
    tag_concurrency_limits:
      - key: "{one_key}"
        value: "{one_value}"
        limit: 1
  # An asset that declares a pool (pool="search_index") never runs twice at once: two index
  # rebuilds would fight over the same <uid>_next index.
  pools:
    default_limit: 1
code_servers:
  local_startup_timeout: 180
"""

# pipelines.jobs.ONE_AT_A_TIME_TAG (not imported: the CLI does not load the pipeline for this).
EMBEDDINGS_ONE_AT_A_TIME: Final = ("onecart/one_at_a_time", "offer_embeddings_job")

# The URL is read from the environment when Dagster starts, so no password lands in the file.
POSTGRES_STORAGE: Final = """\
storage:
  postgres:
    postgres_url:
      env: ONECART_DAGSTER_POSTGRES_URL
"""


def dagster_yaml(settings: Settings) -> str:
    """dagster.yaml for the settings' profile: SQLite storage locally, PostgreSQL in a cluster."""
    if settings.profile == "cluster" and not settings.dagster_postgres_url:
        raise ProcessError(
            "the cluster profile keeps Dagster's storage in PostgreSQL: set "
            "ONECART_DAGSTER_POSTGRES_URL (postgresql://user:password@host:5432/dagster)"
        )
    storage = POSTGRES_STORAGE if settings.profile == "cluster" else ""
    one_key, one_value = EMBEDDINGS_ONE_AT_A_TIME
    return DAGSTER_YAML.format(
        storage=storage,
        max_runs=settings.dagster_max_concurrent_runs,
        one_key=one_key,
        one_value=one_value,
    )


def write_dagster_yaml(settings: Settings) -> Path:
    """Create DAGSTER_HOME with OneCart's dagster.yaml (telemetry off, bounded concurrency)."""
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    text = dagster_yaml(settings)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def prepare_dagster_instance(settings: Settings) -> str:
    """Write dagster.yaml and create the instance's storage now, before any Dagster process
    starts: `dagster dev` and an `onecart ingest` running beside it would otherwise both create
    the SQLite tables and one of them fail ("table alembic_version already exists")."""
    path = write_dagster_yaml(settings)
    from dagster import DagsterInstance

    previous = os.environ.get("ONECART_DAGSTER_POSTGRES_URL")
    postgres = dagster_postgres_url(settings)
    if postgres:  # dagster.yaml reads the URL from the environment
        os.environ["ONECART_DAGSTER_POSTGRES_URL"] = postgres
    try:
        instance = DagsterInstance.from_config(str(path.parent))
        try:
            # Touching each storage creates (or migrates) its tables.
            instance.get_runs_count()
            instance.event_log_storage.get_event_tags_for_asset  # noqa: B018
            instance.schedule_storage  # noqa: B018
        finally:
            instance.dispose()
    finally:
        if previous is None:
            os.environ.pop("ONECART_DAGSTER_POSTGRES_URL", None)
    return f"Dagster instance: {path}"
