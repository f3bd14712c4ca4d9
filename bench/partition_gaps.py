"""Where an ingest's partition phase spends the time that is not a step: read from the Dagster
run records of a home kept by ``bench.pipeline_bench --keep`` (issue 11).

    .venv/bin/python -m bench.partition_gaps <kept home> [--ingest -1]

For the partition runs of one ingest (default the last: the refresh), in creation order, with
times relative to the first run's creation:

- ``created``, ``start``, ``end``: the run record's creation, start and end;
- ``gap``: from the end of the run that freed a worker (the earliest unclaimed end before
  this run's creation) to this run's creation: the worker's exit, the fork of the next one,
  building the job, opening the instance and Dagster's run creation (the first two runs have
  none: their workers start with the pool);
- ``to start``: creation to start (Dagster's planned-asset events, one write each);
- ``to step``: start to the first step's start (engine, resource and log-capture events);
- ``after``: the last step's end to the run's end;
- ``events``: event log entries of the run (each one SQLite write to its own run database).

The last line is ``GAPS {json}`` with the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STEP_EVENTS = ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE")


def _ingests(records: list[Any]) -> list[list[Any]]:
    """Runs grouped by ingest: partition runs up to and including a downstream run."""
    groups: list[list[Any]] = [[]]
    for record in records:
        run = record.dagster_run
        if run.job_name == "marketplace_catalog_job":
            groups[-1].append(record)
        elif run.job_name == "catalog_downstream_job" and groups[-1]:
            groups.append([])
    return [group for group in groups if group]


def partition_gaps(home: Path, ingest: int = -1) -> list[dict[str, Any]]:
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    try:
        records = sorted(instance.get_run_records(), key=lambda record: record.create_timestamp)
        runs = _ingests(records)[ingest]
        origin = runs[0].create_timestamp.timestamp()
        rows: list[dict[str, Any]] = []
        free_ends: list[float] = []
        for index, record in enumerate(runs):
            run = record.dagster_run
            logs = instance.all_logs(run.run_id)
            steps = [
                entry.timestamp
                for entry in logs
                if entry.dagster_event is not None
                and entry.dagster_event.event_type_value in STEP_EVENTS
            ]
            created = record.create_timestamp.timestamp() - origin
            start = (record.start_time or 0.0) - origin
            end = (record.end_time or 0.0) - origin
            gap = None
            if index >= 2:
                earlier = sorted(e for e in free_ends if e <= created)
                if earlier:
                    gap = created - earlier[0]
                    free_ends.remove(earlier[0])
            rows.append(
                {
                    "marketplace": run.tags.get("dagster/partition", "?"),
                    "created": round(created, 2),
                    "start": round(start, 2),
                    "end": round(end, 2),
                    "gap": round(gap, 2) if gap is not None else None,
                    "to_start": round(start - created, 2),
                    "to_step": round(min(steps) - origin - start, 2) if steps else None,
                    "after": round(end - (max(steps) - origin), 2) if steps else None,
                    "events": len(logs),
                }
            )
            free_ends.append(end)
        return rows
    finally:
        instance.dispose()


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row[key] is not None]
    return round(statistics.median(values), 2) if values else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.partition_gaps", description=__doc__)
    parser.add_argument("home", type=Path, help="an ONECART_HOME kept by pipeline_bench --keep")
    parser.add_argument(
        "--ingest", type=int, default=-1, help="which ingest (Python index; default the last)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DAGSTER_HOME", str(args.home / "dagster"))
    rows = partition_gaps(args.home, args.ingest)
    columns = ("created", "start", "end", "gap", "to_start", "to_step", "after", "events")
    print(f"{'marketplace':12s} " + " ".join(f"{column:>8s}" for column in columns))
    for row in rows:
        print(
            f"{row['marketplace']:12s} "
            + " ".join(f"{'' if row[column] is None else row[column]:>8}" for column in columns)
        )
    medians = {key: _median(rows, key) for key in ("gap", "to_start", "to_step", "after")}
    print("GAPS " + json.dumps({"runs": len(rows), **medians}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
