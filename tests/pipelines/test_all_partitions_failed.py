"""An ingest whose every partition failed: nothing downstream can change, so no downstream run.

Before (ops10's leftover), `onecart ingest --marketplace kiondo` with kiondo down still ran the
whole downstream job (FX rates, matching, the index, the storefront, the analysts' copy: ~30 s
on the demo) over catalogs no run had touched. The failed marketplaces keep their last good
catalog whether or not it runs; the operator is told why it was skipped.
"""

from __future__ import annotations

import dagster as dg
import httpx

from onecart.ingest_command import ingest_failure_lines
from onecart.settings import Settings
from pipelines.jobs import CATALOG_DOWNSTREAM_JOB
from pipelines.run import materialize_all


def test_an_ingest_whose_every_partition_failed_runs_nothing_downstream_and_says_why(
    pipeline_settings: Settings, instance: dg.DagsterInstance, sandbox_control: httpx.Client
) -> None:
    sandbox_control.post("/_sandbox/knobs/kiondo", json={"down": True}).raise_for_status()

    lines: list[str] = []
    report = materialize_all(instance=instance, progress=lines.append, marketplaces=["kiondo"])

    assert report.failed_partitions == ["kiondo"]
    assert report.downstream_run_id is None
    assert not instance.get_runs(dg.RunsFilter(job_name=CATALOG_DOWNSTREAM_JOB))
    skipped = [line for line in lines if line.startswith("downstream: skipped")]
    assert skipped == [
        "downstream: skipped, no marketplace's catalog was loaded (kiondo failed): "
        "nothing downstream changes"
    ], lines
    # The operator is still told what failed and how to retry it; nothing about downstream.
    failures = ingest_failure_lines(report, never_fetched={"kiondo"})
    assert failures[0].startswith("ingest failed for partition(s): kiondo")
    assert failures[1] == "  retry it once it answers: onecart ingest --marketplace kiondo"
    assert not any("downstream" in line for line in failures)
