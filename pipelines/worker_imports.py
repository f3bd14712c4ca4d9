"""What a partition worker would import after it forks, imported once in the forkserver instead.

`onecart ingest` runs each marketplace partition in a fresh worker process forked from a
forkserver that imported pipelines.run (pipelines/run.py, `_partition_worker_pool`). Importing
pipelines.run does not import what Dagster loads lazily when the worker opens the instance and
executes the job: the SQLite storages with SQLAlchemy, Alembic (and Mako, Pygments), the daemon
modules with structlog and rich, universal_pathlib and fsspec, the in-process executor; nor the
marketplace's adapter and httpx's transport (httpcore, h11), loaded at the first request. That
was ~415 modules per worker, 0.45-2.2 s of every partition at a load of 4-8 on two cores (0.3-0.5 s
quiet), paid again by each of the 8 workers of an ingest (each runs one partition and exits).

Forked from a forkserver that holds them, a worker finds them in sys.modules. The forkserver
grows by what these modules take (measured in bench/RESULTS.md); each worker's resident set is
about what it was, since it imported the same modules itself before.

A module that a later Dagster or httpx no longer has is skipped: the worker then imports what
it needs itself, as before, and nothing else changes.
"""

from __future__ import annotations

import importlib

from adapters.registry import ADAPTER_KINDS

WORKER_MODULES: tuple[str, ...] = (
    # Opening the instance (DagsterInstance.from_config over the SQLite storages).
    "dagster._core.instance.factory",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.root",
    "dagster._core.storage.migration.utils",
    "dagster._core.secrets.loader",
    "dagster._core.secrets.env_file",
    "alembic.script",
    "alembic.runtime.migration",
    # universal_pathlib loads its parts on first use (the instance's defs state storage).
    "upath.core",
    "upath.implementations.local",
    "fsspec.implementations.local",
    # Resolving the job and executing it in process.
    "dagster._core.definitions.repository_definition.repository_data_builder",
    "dagster._core.definitions.external_asset",
    "dagster._core.system_config.composite_descent",
    "dagster._core.instance.runs.run_domain",
    "dagster._core.execution.execute_in_process",
    "dagster._core.execution.plan.active",
    "dagster._core.executor.in_process",
    # The first HTTP request of an adapter.
    "httpcore",
    "h11",
    # The normalization's format queries.
    "warehouse.vectorized_formats",
    # Every adapter a marketplace can be configured with (adapters.registry imports it lazily).
    *dict.fromkeys(target.split(":")[0] for target in ADAPTER_KINDS.values()),
)


def import_worker_modules(names: tuple[str, ...] = WORKER_MODULES) -> list[str]:
    """Import `names`; return those that could not be imported (left to the worker)."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


import_worker_modules()
