"""What `onecart ingest` tells as it runs, shared by the in-process run (pipelines.run) and the
queued one (pipelines.queued_run): each partition's and each downstream asset's result, and which
step an in-process run is on, as it starts each one: the downstream run lasts minutes on a large
catalog (423 s for a full run at a million offers), and its assets' results are only read from
the finished run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from onecart import progress as progress_status
from onecart.progress import counted_noun
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


if TYPE_CHECKING:
    from pipelines.run import PartitionOutcome


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


def describe_downstream(asset: str, metadata: Mapping[str, Any]) -> str:
    """One line of what a downstream asset did, from its materialization's metadata."""
    if asset == "fx_rates":
        return f"{metadata.get('currencies')} currencies as of {metadata.get('as_of')}"
    if asset == "product_groups":
        spread = metadata.get("groups_by_marketplace_count") or {}
        wide = sum(count for size, count in spread.items() if int(size) >= 3)
        return (
            f"{metadata.get('groups')} groups, {metadata.get('multi_offer_groups')} with 2+ offers, "
            f"{wide} spanning 3+ marketplaces"
        )
    if asset == "price_history":
        return f"+{metadata.get('appended')} rows ({metadata.get('dagster/row_count')} in total)"
    if asset == "offer_embeddings":
        if metadata.get("skipped"):
            return f"skipped: {metadata['skipped']}"
        return f"embedded {metadata.get('embedded')}, reused {metadata.get('reused')}"
    if asset in ("search_products", "search_product_groups"):
        mode = (
            f"rebuilt ({metadata.get('rebuild_reason')})"
            if metadata.get("rebuilt")
            else "incremental"
        )
        return (
            f"{mode}: sent {metadata.get('sent')}, deleted {metadata.get('deleted')}, "
            f"unchanged {metadata.get('unchanged')}"
        )
    if asset == "storefront_products":
        if metadata.get("skipped"):
            return f"skipped: {metadata['skipped']}"
        return (
            f"inserted {metadata.get('products_inserted')}, updated {metadata.get('products_updated')}, "
            f"removed {metadata.get('products_removed')}, "
            f"{metadata.get('price_alerts_fired', 0)} price alert(s) fired"
        )
    if asset == "analyst_warehouse":
        return f"published {metadata.get('path')}"
    return json.dumps(metadata, default=str)


def _pages(count: int) -> str:
    return counted_noun(count, "page")


def describe_partition(outcome: PartitionOutcome) -> list[str]:
    """The lines `onecart ingest` prints for one marketplace's partition: what was fetched,
    normalized and rejected (by reason), then each check's warning; or why it failed."""
    slug = outcome.marketplace
    waited = [outcome.waited] if outcome.waited else []
    if not outcome.success:
        # The report's last lines say whether it keeps a catalog (none after a first fetch).
        return [*waited, f"{slug}: FAILED ({outcome.error})"]
    reasons = ", ".join(f"{reason} {count}" for reason, count in outcome.rejected_by_reason.items())
    fetched = (
        f"not modified since the last fetch (HTTP 304), {counted_noun(outcome.fetched, 'record')} held"
        if outcome.not_modified
        else f"fetched {counted_noun(outcome.changed_since, 'record')} changed since the last fetch "
        f"and every id, {counted_noun(outcome.fetched, 'record')} ({_pages(outcome.pages)})"
        if outcome.changed_since is not None
        else f"fetched {counted_noun(outcome.fetched, 'record')} ({_pages(outcome.pages)}"
        + (
            f", {outcome.pages_not_modified} not modified since the last fetch)"
            if outcome.pages_not_modified
            else ")"
        )
    )
    lines = [
        *waited,
        f"{slug}: {fetched}, "
        f"normalized {outcome.normalized}, rejected {outcome.rejected}"
        + (f" ({reasons})" if reasons else ""),
    ]
    lines.extend(f"{slug}:   {warning}" for warning in outcome.check_warnings)
    return lines


def downstream_skip_line(partitions: Mapping[str, PartitionOutcome]) -> str | None:
    """Why an ingest runs nothing downstream, or None when it should run.

    When every partition failed no catalog changed: the failed marketplaces keep their last
    good catalog, so the downstream job (~30 s on the demo) would rebuild what already is."""
    if not partitions or any(outcome.success for outcome in partitions.values()):
        return None
    failed = ", ".join(partitions)
    return (
        f"downstream: skipped, no marketplace's catalog was loaded ({failed} failed): "
        "nothing downstream changes"
    )
