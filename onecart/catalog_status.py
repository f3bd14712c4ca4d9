"""`onecart status`'s catalog section: per marketplace, when its catalog was last fetched and how
the last run of its partition ended (the Dagster instance `onecart up` and `onecart ingest`
share), so a marketplace failing every scheduled refresh shows in the shell, not only in the
Dagster UI.

The last fetch is the later of the analysts' copy's (`marketplace_fetches`) and the newest
`raw_catalog` materialization of the partition: the copy is published once a refresh's catalog
runs are done (by the downstream run, or the fetch times job after a refresh that changed no
offer), so while a refresh runs, or when its publish failed, the copy lags Dagster's record.

Status is a question: whatever cannot be read (no ingest yet, a copy being swapped, Dagster's
storage unreachable) becomes a line saying so, never an exception.

Status is also run often (by operators, and by tests waiting for services): Dagster and DuckDB
are imported only when there is something of theirs to read (importing Dagster is most of a
status's CPU), and Dagster's instance is opened once for both sections (:class:`DagsterReader`).
While the Dagster webserver `onecart up` started answers, both sections ask it instead, through
its GraphQL API (onecart/dagster_graphql_status.py), and status imports no Dagster at all.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from onecart.dagster_instance import dagster_home, dagster_postgres_url
from onecart.dagster_runs import left_unfinished_by_down
from onecart.settings import Settings

# Dagster's tag on every run of one partition (scheduled, `onecart ingest`, a UI launch).
PARTITION_TAG = "dagster/partition"
# Materialized once per successful fetch of a partition.
RAW_CATALOG = "raw_catalog"


@dataclass(frozen=True, slots=True)
class PartitionRun:
    """The newest run of one marketplace's partition."""

    run_id: str
    status: str  # Dagster's DagsterRunStatus name: SUCCESS, FAILURE, STARTED, QUEUED …
    at: datetime | None  # when it ended (or was created, while it has not)
    # `onecart down` cancelled it and no `up` has carried it on yet (onecart/dagster_runs.py).
    stopped_by_down: bool = False


def last_fetches(settings: Settings) -> dict[str, datetime]:
    """Each marketplace's latest fetch the published offers come from; {} without a copy."""
    path = settings.warehouse_path
    if not path.exists():
        return {}
    import duckdb

    conn = duckdb.connect(str(path), read_only=True)
    try:
        conn.execute("SET TimeZone = 'UTC'")
        rows = conn.execute("SELECT marketplace, fetched_at FROM marketplace_fetches").fetchall()
    finally:
        conn.close()
    return {marketplace: fetched_at for marketplace, fetched_at in rows}


@contextmanager
def _postgres_url_in_environment(settings: Settings) -> Iterator[None]:
    # The cluster profile's dagster.yaml reads its storage URL from the environment.
    previous = os.environ.get("ONECART_DAGSTER_POSTGRES_URL")
    postgres = dagster_postgres_url(settings)
    if postgres:
        os.environ["ONECART_DAGSTER_POSTGRES_URL"] = postgres
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("ONECART_DAGSTER_POSTGRES_URL", None)
        else:
            os.environ["ONECART_DAGSTER_POSTGRES_URL"] = previous


class DagsterReader:
    """The Dagster instance `onecart up` and `onecart ingest` share, as status reads it: opened
    on first use and at most once (each opening reads every storage's schema version), never
    created (None before an `up` or ingest made one); an opening that failed fails each use.
    `graphql_url`: the GraphQL endpoint of this home's Dagster webserver, when it answers: each
    section asks it first and opens the instance only when its answer cannot stand in."""

    def __init__(self, settings: Settings, graphql_url: str | None = None) -> None:
        self._settings = settings
        self.graphql_url = graphql_url
        self._home = dagster_home(settings)
        self._opened = False
        self._instance: Any = None
        self._error: Exception | None = None

    @property
    def exists(self) -> bool:
        return (self._home / "dagster.yaml").exists()

    def instance(self) -> Any:
        """The DagsterInstance, or None when there is none yet; raises what opening it raised."""
        if not self._opened:
            self._opened = True
            if self.exists:
                import dagster as dg

                with _postgres_url_in_environment(self._settings):
                    try:
                        self._instance = dg.DagsterInstance.from_config(str(self._home))
                    except Exception as exc:  # kept: each section says it cannot read it
                        self._error = exc
        if self._error is not None:
            raise self._error
        return self._instance

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None


def last_partition_runs(
    settings: Settings, slugs: list[str], dagster: DagsterReader | None = None
) -> tuple[dict[str, PartitionRun], dict[str, datetime]]:
    """The newest run of each slug's partition, and when its raw_catalog was last materialized
    (a fetch that succeeded); empty before Dagster's instance exists (status never creates it).
    `dagster`: an instance already opened (status's), else one is opened and closed here."""
    reader = dagster or DagsterReader(settings)
    try:
        if reader.graphql_url and reader.exists:
            from onecart import dagster_graphql_status as graphql

            try:
                return graphql.partition_runs(graphql.post_to(reader.graphql_url), slugs)
            except graphql.GraphQLUnavailable:
                pass  # the instance answers the same
        instance = reader.instance()
        if instance is None:
            return {}, {}
        return _partition_runs_in(instance, slugs)
    finally:
        if dagster is None:
            reader.close()


def _partition_runs_in(
    instance: Any, slugs: list[str]
) -> tuple[dict[str, PartitionRun], dict[str, datetime]]:
    import dagster as dg

    runs: dict[str, PartitionRun] = {}
    fetched: dict[str, datetime] = {}
    for slug in slugs:
        records = instance.get_run_records(
            filters=dg.RunsFilter(tags={PARTITION_TAG: slug}), limit=1
        )
        if not records:
            continue
        record = records[0]
        ended = record.end_time or record.create_timestamp.timestamp()
        runs[slug] = PartitionRun(
            run_id=record.dagster_run.run_id,
            status=record.dagster_run.status.value,
            at=datetime.fromtimestamp(ended, UTC) if ended else None,
            # Not one that succeeded as `down` came: that did its work.
            stopped_by_down=left_unfinished_by_down(record.dagster_run),
        )
        materialized = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(RAW_CATALOG), asset_partitions=[slug]),
            limit=1,
        ).records
        if materialized:
            fetched[slug] = datetime.fromtimestamp(materialized[0].timestamp, UTC)
    return runs, fetched


def never_fetched(settings: Settings, slugs: Collection[str]) -> set[str]:
    """Of `slugs`, the marketplaces no fetch ever succeeded for: in neither the analysts' copy
    nor Dagster's materializations of raw_catalog, so a failed run of one kept no catalog."""
    if not slugs:
        return set()
    try:
        fetched = set(last_fetches(settings)) | set(last_partition_runs(settings, list(slugs))[1])
    except Exception:  # unreadable storage says nothing either way: nothing is claimed
        return set()
    return set(slugs) - fetched


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _run_cell(run: PartitionRun | None) -> str:
    if run is None:
        return "-"
    words = {"SUCCESS": "ok", "FAILURE": "FAILED", "CANCELED": "canceled"}
    return f"{words.get(run.status, run.status.lower())} {_when(run.at)} (run {run.run_id[:8]})"


def catalog_lines(
    slugs: list[str],
    fetches: Mapping[str, datetime],
    runs: Mapping[str, PartitionRun],
    dagster_url: str,
) -> list[str]:
    """The table `onecart status` prints, and what to do about a failed partition."""
    rows = [("MARKETPLACE", "LAST FETCH", "LAST PARTITION RUN")]
    for slug in slugs:
        rows.append((slug, _when(fetches.get(slug)), _run_cell(runs.get(slug))))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = ["Catalogs:"]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append(f"  {cells.rstrip()}")
    failed = [slug for slug in slugs if (run := runs.get(slug)) and run.status == "FAILURE"]
    for slug in failed:
        # A marketplace down at its first ingest has no catalog to keep: the shop has none of it.
        kept = (
            " (its last good catalog is kept)"
            if slug in fetches
            else ", and it was never fetched: no catalog of it yet"
        )
        lines.append(
            f"  {slug}: its last run failed{kept}; the log: {dagster_url}/runs/{runs[slug].run_id}"
        )
    if failed:
        retry = " ".join(f"--marketplace {slug}" for slug in failed)
        answer = "it answers" if len(failed) == 1 else "they answer"
        lines.append(f"  retry once {answer}: onecart ingest {retry}")
    for slug in slugs:
        if (run := runs.get(slug)) and run.stopped_by_down:
            lines.append(
                f"  {slug}: its last run was cancelled by `onecart down`; the next `onecart up` "
                "re-executes it"
            )
    return lines


def describe_catalogs(settings: Settings, dagster: DagsterReader | None = None) -> list[str]:
    """The catalog section of `onecart status`, or one line saying why it cannot be shown.
    `dagster`: the instance the checks section reads too (else opened here)."""
    from pipelines.partitions import marketplace_slugs

    try:
        slugs = marketplace_slugs(settings)
    except Exception as exc:  # the ingest says more; status only reports
        return [f"Catalogs: {settings.marketplaces_file} cannot be read ({exc})"]
    lines: list[str] = []
    fetches: dict[str, datetime] = {}
    if settings.warehouse_path.exists():  # else nothing to read, and DuckDB is not imported
        import duckdb

        try:
            fetches = last_fetches(settings)
        except duckdb.Error as exc:
            lines.append(f"  (last fetches unknown: {settings.warehouse_path}: {exc})")
    try:
        runs, fetched = last_partition_runs(settings, slugs, dagster)
    except Exception as exc:  # Dagster's storage unreachable (the cluster's PostgreSQL down)
        runs, fetched = {}, {}
        lines.append(f"  (partition runs unknown: Dagster's instance cannot be read: {exc})")
    latest = {
        slug: max(moments)
        for slug in slugs
        if (moments := [m for m in (fetches.get(slug), fetched.get(slug)) if m is not None])
    }
    return catalog_lines(slugs, latest, runs, settings.dagster_url) + lines


def describe_checks(settings: Settings, dagster: DagsterReader | None = None) -> list[str]:
    """The checks section of `onecart status`: the latest result of each asset check per
    marketplace (onecart/check_status.py), or one line saying why it cannot be shown.
    `dagster`: the instance the catalogs section read (else opened here)."""
    from onecart.check_status import check_lines, describe_checks_in
    from pipelines.partitions import marketplace_slugs

    reader = dagster or DagsterReader(settings)
    if not reader.exists:
        return check_lines([])  # status never creates the instance
    try:
        slugs = marketplace_slugs(settings)
    except Exception as exc:  # the catalogs section above says so too
        return [f"Checks: {settings.marketplaces_file} cannot be read ({exc})"]
    try:
        if reader.graphql_url:
            from onecart import dagster_graphql_status as graphql
            from onecart.check_status import check_names

            try:
                post = graphql.post_to(reader.graphql_url)
                return check_lines(graphql.check_results(post, *check_names(), slugs))
            except graphql.GraphQLUnavailable:
                pass  # the instance answers the same
        try:
            instance = reader.instance()
        except Exception as exc:  # Dagster's storage unreachable (the cluster's PostgreSQL down)
            return [f"Checks: unknown: Dagster's instance cannot be read ({exc})"]
        return describe_checks_in(instance, slugs)
    finally:
        if dagster is None:
            reader.close()
