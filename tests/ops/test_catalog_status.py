"""`onecart status` shows each marketplace's last fetch and how its partition's last run ended.

Before, status showed services only: a marketplace failing every scheduled refresh was seen in
the Dagster UI alone. Real parts: the `onecart` command, a Dagster instance prepared as
`onecart up` prepares it with runs of a partitioned job executed into it, and a DuckDB copy.
"""

import os
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from onecart.catalog_status import PartitionRun, catalog_lines
from onecart.dagster_instance import dagster_home, prepare_dagster_instance
from onecart.settings import REPO_ROOT, Settings
from tests.ops.test_cli import onecart

MARKETPLACES = """
[[marketplace]]
slug = "kiondo"
name = "Kiondo"
kind = "shopify"
base_url = "https://kiondo.example.com"
currency = "KES"
country = "KE"

[[marketplace]]
slug = "amazon"
name = "Amazon"
kind = "shopify"
base_url = "https://amazon.example.com"
currency = "USD"
country = "US"
"""


@pytest.fixture
def shop(environment: dict[str, str], tmp_path: Path) -> dict[str, str]:
    marketplaces = tmp_path / "marketplaces.toml"
    marketplaces.write_text(MARKETPLACES)
    return {**environment, "ONECART_MARKETPLACES": str(marketplaces)}


def _run_partitions(settings: Settings, outcomes: dict[str, bool]) -> None:
    """A run per partition into the shared instance, tagged as Dagster tags every partition run;
    a partition whose outcome is False fails, as a marketplace answering 503 does."""
    partitions = dg.StaticPartitionsDefinition(["kiondo", "amazon"])

    @dg.asset(partitions_def=partitions)
    def raw_catalog(context: dg.AssetExecutionContext) -> None:
        if not outcomes[context.partition_key]:
            raise RuntimeError("503 from the marketplace")

    job = dg.define_asset_job("catalog", selection=[raw_catalog])
    resolved = dg.Definitions(assets=[raw_catalog], jobs=[job]).resolve_job_def("catalog")
    instance = dg.DagsterInstance.from_config(str(dagster_home(settings)))
    try:
        for slug, succeeds in outcomes.items():
            result = resolved.execute_in_process(
                partition_key=slug, instance=instance, raise_on_error=False
            )
            assert result.success is succeeds
    finally:
        instance.dispose()


def _raw_catalog_times(settings: Settings) -> dict[str, datetime]:
    """When each partition's raw_catalog was last materialized (a fetch that succeeded)."""
    instance = dg.DagsterInstance.from_config(str(dagster_home(settings)))
    try:
        times = {}
        for slug in ("kiondo", "amazon"):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey("raw_catalog"), asset_partitions=[slug]
                ),
                limit=1,
            ).records
            if records:
                times[slug] = datetime.fromtimestamp(records[0].timestamp, UTC)
        return times
    finally:
        instance.dispose()


def test_status_shows_each_marketplace_last_fetch_and_failed_partition_run(
    shop: dict[str, str],
) -> None:
    settings = Settings(**{k: v for k, v in shop.items() if k.startswith("ONECART_")})
    prepare_dagster_instance(settings)
    _run_partitions(settings, {"kiondo": True, "amazon": True})
    _run_partitions(settings, {"kiondo": True, "amazon": False})  # the next refresh
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    copy = duckdb.connect(str(settings.warehouse_path))
    copy.execute("CREATE TABLE marketplace_fetches (marketplace VARCHAR, fetched_at TIMESTAMPTZ)")
    fetched = datetime(2026, 12, 6, 14, 15, tzinfo=UTC)
    copy.execute(
        "INSERT INTO marketplace_fetches VALUES ('kiondo', ?), ('amazon', ?)", [fetched] * 2
    )
    copy.close()

    result = onecart(shop, "status")

    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    # The runs fetched after the copy's 14:15: kiondo's last run and amazon's first one. The
    # copy is published only when some marketplace's offers changed, so a refresh that changed
    # nothing left LAST FETCH at the last change (fakestore: 17:09 after runs at 17:13, 17:16
    # and 17:30, bench/RESULTS.md ops QA pass 3).
    fetched_last = _raw_catalog_times(settings)
    assert set(fetched_last) == {"kiondo", "amazon"}
    for slug in ("kiondo", "amazon"):
        assert fetched_last[slug] > fetched
        last_fetch = " ".join(rows[slug].split()[1:4])  # the LAST FETCH column
        assert last_fetch == fetched_last[slug].strftime("%Y-%m-%d %H:%M UTC")
    assert " ok " in rows["kiondo"] and "FAILED" in rows["amazon"]
    assert "amazon: its last run failed" in result.stdout
    assert "retry once it answers: onecart ingest --marketplace amazon\n" in result.stdout


def test_the_retry_line_speaks_of_one_marketplace_or_of_several() -> None:
    """ "retry once they answer" was said of a single marketplace (ops QA pass 3)."""
    at = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)

    def failed(*slugs: str) -> list[str]:
        runs = {slug: PartitionRun(status="FAILURE", at=at, run_id=f"{slug}-run") for slug in slugs}
        return catalog_lines(["amazon", "kiondo"], {}, runs, "http://dagster")

    assert failed("amazon")[-1] == "  retry once it answers: onecart ingest --marketplace amazon"
    assert failed("amazon", "kiondo")[-1] == (
        "  retry once they answer: onecart ingest --marketplace amazon --marketplace kiondo"
    )


def test_a_failed_marketplace_never_fetched_is_not_said_to_keep_a_catalog() -> None:
    """A first fetch that failed was said to keep "its last good catalog" (exploratory pass,
    a marketplace down at the first ingest): there is none, and the shop shows no offer of it."""
    at = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)
    runs = {
        slug: PartitionRun(status="FAILURE", at=at, run_id=f"{slug}-run")
        for slug in ("amazon", "kiondo")
    }

    lines = catalog_lines(["amazon", "kiondo"], {"amazon": at}, runs, "http://dagster")

    assert (
        "  amazon: its last run failed (its last good catalog is kept); the log: "
        "http://dagster/runs/amazon-run" in lines
    )
    assert (
        "  kiondo: its last run failed, and it was never fetched: no catalog of it yet; the "
        "log: http://dagster/runs/kiondo-run" in lines
    )


def test_status_on_an_empty_home_lists_the_marketplaces_never_fetched(
    shop: dict[str, str], home: Path
) -> None:
    result = onecart(shop, "status")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    catalogs = lines.index("Catalogs:")
    assert lines[catalogs + 2].split() == ["kiondo", "-", "-"]
    assert lines[catalogs + 3].split() == ["amazon", "-", "-"]
    assert not (home / "dagster").exists()  # status only asks; it creates nothing


# `onecart status` run in a Python that then says which heavy modules it imported and how often
# Dagster's instance was opened (each opening reads and checks every storage's schema).
STATUS_REPORTING_IMPORTS = """
import sys
import dagster_counter
from onecart.cli import main
main(["status"])
heavy = ("dagster", "duckdb", "polars", "pyarrow")
print("imported:", *sorted(m for m in heavy if m in sys.modules), file=sys.stderr)
print("instances opened:", dagster_counter.opened(), file=sys.stderr)
"""
# Counts DagsterInstance.from_config calls once dagster is imported, without importing it.
DAGSTER_COUNTER = """
import importlib.util
import sys
from importlib.abc import MetaPathFinder

_opened = []


def opened():
    return len(_opened)


class _CountWhenImported(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "dagster":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_count(module):
            exec_module(module)
            original = module.DagsterInstance.from_config

            def from_config(*args, **kwargs):
                _opened.append(args)
                return original(*args, **kwargs)

            module.DagsterInstance.from_config = staticmethod(from_config)

        spec.loader.exec_module = exec_and_count
        return spec


sys.meta_path.insert(0, _CountWhenImported())
"""


def _status_reporting_imports(env: dict[str, str], tmp_path: Path) -> tuple[str, str]:
    """`onecart status`'s output, and what it imported and opened (its stderr)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "dagster_counter.py").write_text(DAGSTER_COUNTER)
    result = subprocess.run(
        [sys.executable, "-c", STATUS_REPORTING_IMPORTS],
        env={**env, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_status_without_dagster_s_instance_imports_neither_dagster_nor_duckdb(
    shop: dict[str, str], tmp_path: Path
) -> None:
    """Status cost ~2 s of CPU, most of it importing Dagster (ops8): on a home no ingest or
    `up` has made a Dagster instance in, and no analysts' copy, it has nothing to read there."""
    stdout, stderr = _status_reporting_imports(shop, tmp_path / "counter")

    assert "Catalogs:" in stdout and "Checks: none has run yet" in stdout
    assert "imported:\n" in stderr
    assert "instances opened: 0" in stderr


def test_status_opens_dagster_s_instance_once(shop: dict[str, str], tmp_path: Path) -> None:
    """The catalogs and the checks sections each opened the instance (and so read every
    storage's schema version again): they share one now, and print what they printed."""
    settings = Settings(**{k: v for k, v in shop.items() if k.startswith("ONECART_")})
    prepare_dagster_instance(settings)
    _run_checked_partitions(settings)

    stdout, stderr = _status_reporting_imports(shop, tmp_path / "counter")

    assert "instances opened: 1" in stderr
    assert "WARN    normalized_products[kiondo]  gtin_checksum_share" in stdout
    lines = stdout.splitlines()
    catalogs = lines.index("Catalogs:")
    assert lines[catalogs + 2].split()[0] == "kiondo"


def _run_checked_partitions(settings: Settings) -> None:
    """Runs into the shared instance whose checks are named as the pipeline's: kiondo's GTIN
    share warns (twice: only the latest counts), amazon's passes, the rates check fails."""
    partitions = dg.StaticPartitionsDefinition(["kiondo", "amazon"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [
            dg.AssetCheckSpec(name, asset="normalized_products", partitions_def=partitions)
            for name in ("gtin_checksum_share", "price_is_positive")
        ]

    @dg.asset(partitions_def=partitions, check_specs=specs)
    def normalized_products(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warn = context.partition_key == "kiondo"
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="gtin_checksum_share",
                    passed=not warn,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"gtin_invalid": 30 if warn else 0, "gtin_claimed": 50},
                ),
                dg.AssetCheckResult(check_name="price_is_positive", passed=True),
            ]
        )

    @dg.asset(check_specs=[dg.AssetCheckSpec("rates_cover_offer_currencies", asset="fx_rates")])
    def fx_rates() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="rates_cover_offer_currencies",
                    passed=False,
                    metadata={
                        "missing_rates": dg.MetadataValue.json(["ZMW"]),
                        "offers_without_rate": dg.MetadataValue.json({"lusaka": 5}),
                    },
                )
            ]
        )

    definitions = dg.Definitions(
        assets=[normalized_products, fx_rates],
        jobs=[
            dg.define_asset_job("catalog", selection=[normalized_products]),
            dg.define_asset_job("rates", selection=[fx_rates]),
        ],
    )
    instance = dg.DagsterInstance.from_config(str(dagster_home(settings)))
    try:
        catalog = definitions.resolve_job_def("catalog")
        for slug in ("kiondo", "amazon", "kiondo"):
            assert catalog.execute_in_process(partition_key=slug, instance=instance).success
        assert definitions.resolve_job_def("rates").execute_in_process(instance=instance).success
    finally:
        instance.dispose()


def test_status_shows_the_latest_check_results_failures_and_warnings_first(
    shop: dict[str, str],
) -> None:
    """A WARN (a feed's broken GTINs, drift) or a failed check was seen only in the ingest's
    output and the Dagster UI (data QA pass 4): status shows each check's latest result per
    marketplace, failures then warnings with their metadata, and counts the passes."""
    settings = Settings(**{k: v for k, v in shop.items() if k.startswith("ONECART_")})
    prepare_dagster_instance(settings)
    _run_checked_partitions(settings)

    result = onecart(shop, "status")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Checks"))
    section = lines[start + 1 : start + 4]
    assert section[0].split()[:3] == ["FAILED", "fx_rates", "rates_cover_offer_currencies"]
    assert (
        "missing_rates=['ZMW']" in section[0] and "offers_without_rate={'lusaka': 5}" in section[0]
    )
    assert section[1].split()[:3] == ["WARN", "normalized_products[kiondo]", "gtin_checksum_share"]
    assert "gtin_invalid=30" in section[1] and "gtin_claimed=50" in section[1]
    # Amazon's GTIN check and both price checks passed: one line, not three.
    assert section[2].strip().startswith("3 passed")
    assert "amazon" not in "\n".join(lines[start:])


def test_status_says_no_check_has_run_on_an_empty_home(shop: dict[str, str]) -> None:
    result = onecart(shop, "status")

    assert result.returncode == 0, result.stderr
    assert "Checks: none has run yet" in result.stdout


def test_a_partition_run_down_cancelled_says_the_next_up_carries_it_on() -> None:
    """After `onecart down` a refresh it cancelled showed as "canceled" and nothing more: an
    operator could not tell it from one cancelled in the Dagster UI (which nothing resumes), nor
    that the next `up` re-executes it (onecart/dagster_runs.py)."""
    at = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)
    runs = {
        "amazon": PartitionRun(status="CANCELED", at=at, run_id="amazon-run", stopped_by_down=True),
        "kiondo": PartitionRun(status="CANCELED", at=at, run_id="kiondo-run"),
    }

    lines = catalog_lines(["amazon", "kiondo"], {}, runs, "http://dagster")

    assert lines[-1] == (
        "  amazon: its last run was cancelled by `onecart down`; the next `onecart up` "
        "re-executes it"
    )
    assert not any("kiondo:" in line for line in lines)


def test_the_help_says_what_status_shows(environment: dict[str, str]) -> None:
    """`onecart --help` said status shows the services alone (state, pid, restarts, health,
    URL), though it has shown each marketplace's catalog and the checks' results too."""
    result = onecart(environment, "--help")

    assert result.returncode == 0, result.stderr
    status_help = " ".join(result.stdout.split("status", 1)[1].split("ingest", 1)[0].split())
    assert "catalog" in status_help and "check" in status_help
