"""Which step an in-process run is on, as it starts each one: `onecart ingest`'s downstream run
lasts minutes on a large catalog (423 s for a full run at a million offers), and its assets'
results are only read from the finished run."""

from __future__ import annotations

import time
from collections.abc import Callable

import dagster as dg

from onecart import progress as progress_status
from onecart.settings import Settings
from pipelines.checks import products_are_fresh

# The downstream job's check steps: a check's step key joins its asset's name and its own.
(_FRESHNESS,) = products_are_fresh.check_keys
_CHECK_STEPS = {
    products_are_fresh.op.name: f"check {_FRESHNESS.name} of {_FRESHNESS.asset_key.to_user_string()}"
}


def step_label(step_key: str) -> str:
    """The asset a step materializes, or the check it evaluates: "downstream: now
    normalized_products_products_are_fresh" read as if the catalogs were normalized again."""
    return _CHECK_STEPS.get(step_key, step_key)


def report_steps(
    instance: dg.DagsterInstance,
    run_id: str,
    settings: Settings,
    progress: Callable[[str], None],
    *,
    marketplaces: int,
) -> None:
    """Print `downstream: now <step> (N s in)` as each step of run `run_id` starts, and say the
    same in the status file (`onecart status`; the site still counts `marketplaces` loaded). An
    in-process run hands its events to the instance's listeners in the executing thread, so the
    lines come in order."""
    started = time.monotonic()

    def on_event(record: dg.EventLogEntry) -> None:
        event = record.dagster_event
        if event is None or not event.is_step_start or not event.step_key:
            return
        elapsed = f"{time.monotonic() - started:.0f} s in"
        step = step_label(event.step_key)
        progress(f"downstream: now {step} ({elapsed})")
        progress_status.write_status(
            settings,
            "catalogs",
            marketplaces,
            marketplaces,
            f"indexing catalogs for search: now {step} ({elapsed})",
        )

    instance.add_event_listener(run_id, on_event)
