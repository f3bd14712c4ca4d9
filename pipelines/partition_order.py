"""The order partition runs start in: longest first.

Two workers (or the run queue's concurrency limit) take marketplaces one at a time. Started in
configuration order, a long catalog that comes late runs alone at the end while the other core
idles; started longest first (the classic LPT rule), the short ones fill the gaps. At 1,000,000
offers a refresh's partitions take 2–38 s each, so the order decides several seconds of wall time
(bench/RESULTS.md, "Partition runs longest first").

How long a partition takes is read from its last successful run of the same kind (a full refresh
reads every page, an incremental one mostly does not) in the Dagster instance; a partition never
run that way goes first, since a first read is the longest there is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from pipelines.jobs import MARKETPLACE_CATALOG_JOB

PARTITION_TAG = "dagster/partition"
# How far back to look for each partition's last run of each kind: enough for a few refreshes of
# every marketplace, and one cheap query instead of one per partition.
RECENT_RUNS = 200


def _is_full_refresh(run_config: Mapping[str, Any]) -> bool:
    ops = run_config.get("ops") or {}
    config = (ops.get("raw_catalog") or {}).get("config") or {}
    return bool(config.get("full_refresh"))


def last_durations(instance: dg.DagsterInstance, *, full_refresh: bool) -> dict[str, float]:
    """Seconds each marketplace's newest successful catalog run of this kind took."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            job_name=MARKETPLACE_CATALOG_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]
        ),
        limit=RECENT_RUNS,  # newest first
    )
    durations: dict[str, float] = {}
    for record in records:
        slug = record.dagster_run.tags.get(PARTITION_TAG)
        if not slug or slug in durations or record.start_time is None or record.end_time is None:
            continue
        if _is_full_refresh(record.dagster_run.run_config or {}) != full_refresh:
            continue
        durations[slug] = record.end_time - record.start_time
    return durations


def longest_first(slugs: Iterable[str], durations: Mapping[str, float]) -> list[str]:
    """`slugs` with never-measured ones first, then by last duration, longest first; ties keep
    the given (configuration) order."""
    ordered = list(slugs)
    position = {slug: index for index, slug in enumerate(ordered)}
    return sorted(
        ordered,
        key=lambda slug: (slug in durations, -durations.get(slug, 0.0), position[slug]),
    )


def partitions_longest_first(
    instance: dg.DagsterInstance, slugs: Iterable[str], *, full_refresh: bool
) -> list[str]:
    """`slugs` in the order their runs should start (see the module docstring)."""
    return longest_first(slugs, last_durations(instance, full_refresh=full_refresh))
