"""`onecart status` says what a running catalog run is loading, whoever started it.

Only `onecart ingest` wrote the status file `onecart status` reads ("loading catalogs: 2 of 6
marketplaces"); a refresh the schedule or the Dagster UI started showed a partition run
"started" and nothing of its progress (ops10's leftover), though its run log said how far the
fetch was. The catalog assets themselves now say it, so every catalog run does. A real run of
the catalog job for one partition against the real sandbox, as the schedule launches it (no
ingest); the status lines are read each time the run writes one.
"""

from __future__ import annotations

import dagster as dg
import pytest

from onecart import progress as progress_status
from onecart.settings import Settings
from pipelines.assets import catalog
from pipelines.definitions import build_definitions
from pipelines.jobs import MARKETPLACE_CATALOG_JOB


def test_a_catalog_run_not_started_by_ingest_says_in_status_what_it_is_loading(
    pipeline_settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    write_status = progress_status.write_status

    def write_and_read(*args: object, **kwargs: object) -> None:
        write_status(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(progress_status.describe_loading(pipeline_settings))

    monkeypatch.setattr(progress_status, "write_status", write_and_read)
    monkeypatch.setattr(catalog, "FETCH_PROGRESS_EVERY_S", 0.0)  # every page says how far
    job = build_definitions(pipeline_settings).resolve_job_def(MARKETPLACE_CATALOG_JOB)

    result = job.execute_in_process(partition_key="kiondo", instance=instance)

    assert result.success
    short = result.run_id[:8]
    assert f"kiondo: fetching the catalog (run {short})" in seen
    assert any(
        line and line.startswith("kiondo: 1 page (") and line.endswith(f" s in (run {short})")
        for line in seen
    ), seen
    assert any(line and line.startswith("kiondo: storing ") for line in seen), seen
    assert f"kiondo: normalizing the catalog (run {short})" in seen
    # Once the run is done nothing is said to be loading.
    assert progress_status.describe_loading(pipeline_settings) is None


def test_writers_of_the_status_file_at_once_keep_each_other_s_lines(
    pipeline_settings: Settings,
) -> None:
    """Catalog runs of several marketplaces, an ingest and the embeddings write one file: each
    rewrite is read-modify-write, under a lock so that none drops a line another just wrote."""
    import threading

    def write(step: str) -> None:
        for number in range(50):
            progress_status.write_status(pipeline_settings, step, number, 50, f"{step} {number}")

    writers = [threading.Thread(target=write, args=(f"step-{n}",)) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    steps = progress_status.loading_steps(pipeline_settings)
    try:
        assert {step: entry["line"] for step, entry in steps.items()} == {
            f"step-{n}": f"step-{n} 49" for n in range(4)
        }
    finally:
        for n in range(4):
            progress_status.clear_status(pipeline_settings, f"step-{n}")
