"""`onecart status`'s checks section: the latest result of every asset check of the pipeline
(per marketplace for the partitioned ones), read from the Dagster instance `onecart up` and
`onecart ingest` share. Failures and warnings come first, one line each with their metadata;
the passes are counted on one line, so a WARN seen once in an ingest's output or the UI is
still visible in the shell afterwards.

Only completed evaluations count: a run that stopped before its check says nothing about the
data, so the check's previous result is shown. Nothing run yet is said so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# One metadata summary per line at most this long: status is read in a terminal.
MAX_SUMMARY = 160


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The latest completed evaluation of one check (of one marketplace's partition)."""

    asset: str
    check: str
    partition: str | None
    passed: bool
    severity: str  # ERROR or WARN (Dagster's AssetCheckSeverity)
    at: datetime
    metadata: dict[str, Any]

    @property
    def outcome(self) -> str:
        if self.passed:
            return "ok"
        return "WARN" if self.severity == "WARN" else "FAILED"

    @property
    def target(self) -> str:
        return f"{self.asset}[{self.partition}]" if self.partition else self.asset


def check_names() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The pipeline's (partitioned, unpartitioned) checks as (asset, check) names
    (pipelines/check_names.py): not the code that declares them (pyarrow, polars, the warehouse:
    most of a `status`'s CPU), nor the whole definitions (seconds), nor Dagster."""
    from pipelines.check_names import (
        CATALOG_CHECKS,
        FX_RATES,
        NORMALIZED_PRODUCTS,
        PRODUCTS_ARE_FRESH,
        RATES_COVER_OFFERS,
    )

    partitioned = [(NORMALIZED_PRODUCTS, name) for name in CATALOG_CHECKS]
    unpartitioned = [(NORMALIZED_PRODUCTS, PRODUCTS_ARE_FRESH), (FX_RATES, RATES_COVER_OFFERS)]
    return partitioned, unpartitioned


def _check_keys() -> tuple[list[Any], list[Any]]:
    """check_names() as Dagster's AssetCheckKeys."""
    import dagster as dg

    partitioned, unpartitioned = check_names()
    return (
        [dg.AssetCheckKey(dg.AssetKey(asset), name) for asset, name in partitioned],
        [dg.AssetCheckKey(dg.AssetKey(asset), name) for asset, name in unpartitioned],
    )


def _metadata_value(value: Any) -> Any:
    # MetadataValue wrappers (json, text, int, …) keep the plain value in .value.
    return getattr(value, "value", value)


def _result(record: Any) -> CheckResult | None:
    event = record.event
    evaluation = event.dagster_event.event_specific_data if event and event.dagster_event else None
    if evaluation is None or not hasattr(evaluation, "passed"):
        return None
    return CheckResult(
        asset=record.key.asset_key.to_user_string(),
        check=record.key.name,
        partition=record.partition,
        passed=bool(evaluation.passed),
        severity=evaluation.severity.value,
        at=datetime.fromtimestamp(event.timestamp, UTC),
        metadata={k: _metadata_value(v) for k, v in (evaluation.metadata or {}).items()},
    )


def latest_check_results(instance: Any, slugs: Sequence[str]) -> list[CheckResult]:
    """The latest completed evaluation of each check, per marketplace for the partitioned ones."""
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import (
        COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    )

    storage = instance.event_log_storage
    partitioned, unpartitioned = _check_keys()
    wanted = [(key, PartitionKeyFilter(key=slug)) for key in partitioned for slug in slugs]
    wanted += [(key, None) for key in unpartitioned]
    results = []
    for key, partition_filter in wanted:
        records = storage.get_asset_check_execution_history(
            key,
            limit=1,
            status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
            partition_filter=partition_filter,
        )
        if records and (result := _result(records[0])) is not None:
            results.append(result)
    return results


def _summary(metadata: dict[str, Any]) -> str:
    parts = []
    for name, value in metadata.items():
        text = value if isinstance(value, str) else repr(value)
        if isinstance(value, dict | list) and not value:
            continue
        if isinstance(value, str) and "\n" in value:
            # The freshness check names each stale marketplace on a line of its own.
            text = "; ".join(line for line in value.splitlines() if line.strip())
        parts.append(f"{name}={text}")
    summary = ", ".join(parts)
    return summary if len(summary) <= MAX_SUMMARY else summary[: MAX_SUMMARY - 1] + "…"


def check_lines(results: Sequence[CheckResult]) -> list[str]:
    """The section `onecart status` prints."""
    if not results:
        return ["Checks: none has run yet (they run with each ingest and refresh)"]
    order = {"FAILED": 0, "WARN": 1}
    failing = sorted(
        (r for r in results if not r.passed),
        key=lambda r: (order[r.outcome], r.asset, r.check, r.partition or ""),
    )
    lines = ["Checks (the latest result of each; failures and warnings first):"]
    rows = [
        (r.outcome, r.target, r.check, f"{r.at:%Y-%m-%d %H:%M} UTC", _summary(r.metadata))
        for r in failing
    ]
    widths = [max((len(row[c]) for row in rows), default=0) for c in range(4)]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        lines.append(f"  {cells}  {row[4]}".rstrip())
    passed = [r for r in results if r.passed]
    if passed:
        newest = max(r.at for r in passed)
        lines.append(f"  {len(passed)} passed (the newest at {newest:%Y-%m-%d %H:%M} UTC)")
    return lines


def describe_checks_in(instance: Any, slugs: Sequence[str]) -> list[str]:
    """The checks section, or a line saying why it cannot be read."""
    try:
        results = latest_check_results(instance, slugs)
    except Exception as exc:  # status only reports; Dagster's storage says more
        return [f"Checks: unknown: Dagster's instance cannot be read ({exc})"]
    return check_lines(results)
