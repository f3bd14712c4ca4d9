"""Process management: groups, pid files, and the pure parts of the service catalog."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from onecart import cli, processes
from onecart.settings import REPO_ROOT, Settings

STUBBORN_LEADER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write("ready")
time.sleep(600)
''', sys.argv[1]])
time.sleep(600)
"""


def wait_for_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def test_stop_kills_a_child_that_ignores_sigterm(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "child-ready"
    leader = processes.start_process(
        settings, "stubborn-test", [sys.executable, "-c", STUBBORN_LEADER, str(marker)]
    )
    wait_for_file(marker)
    members = processes.group_members(leader.pid)
    assert len(members) == 2 and leader.pid in members
    child = next(pid for pid in members if pid != leader.pid)

    processes.stop_pid(leader.pid, timeout=1.0)

    assert not processes.pid_alive(leader.pid)
    assert not processes.pid_alive(child)
    assert processes.group_members(leader.pid) == []


def test_stop_process_forgets_its_pid_file(settings: Settings) -> None:
    started = processes.start_process(
        settings, "sleeper-test", [sys.executable, "-c", "import time; time.sleep(600)"]
    )
    assert processes.read_pid(settings, "sleeper-test") == started.pid

    assert processes.stop_process(settings, "sleeper-test", timeout=5) is True

    assert processes.read_pid(settings, "sleeper-test") is None
    assert not (processes.run_dir(settings) / "sleeper-test.pid").exists()
    assert processes.stop_process(settings, "sleeper-test") is False


def test_a_pid_file_pointing_at_a_reused_pid_is_ignored(settings: Settings) -> None:
    # Our own pid is alive but was not started at the recorded time: it is someone else now.
    (processes.run_dir(settings) / "recycled-test.pid").write_text(f"{os.getpid()}\n1\n")
    assert processes.read_pid(settings, "recycled-test") is None


def test_select_services_keeps_start_order_and_rejects_unknown_names(settings: Settings) -> None:
    services = processes.build_services(settings)
    assert [s.name for s in services] == list(processes.SERVICE_ORDER)
    chosen = processes.select_services(services, only=["worker", "redis"], skip=[])
    assert [s.name for s in chosen] == ["redis", "worker"]
    without_site = processes.select_services(services, skip=["site", "worker"])
    assert "site" not in {s.name for s in without_site}
    with pytest.raises(ValueError, match="unknown service"):
        processes.select_services(services, only=["nginx"])


def test_services_bind_where_the_settings_say(tmp_path: Path) -> None:
    settings = Settings(
        ONECART_HOME=tmp_path,
        REDIS_URL="redis://127.0.0.1:6390/2",
        MEILI_URL="http://127.0.0.1:7790",
        ONECART_SITE_PORT=5090,
    )
    services = {service.name: service for service in processes.build_services(settings)}
    assert services["redis"].argv[1:3] == ("--port", "6390")
    assert "127.0.0.1" in services["redis"].argv
    assert "127.0.0.1:7790" in services["meilisearch"].argv
    assert "127.0.0.1:5090" in services["site"].argv
    assert services["worker"].requires == ("redis",)
    assert services["dagster"].env["DAGSTER_HOME"] == str(tmp_path / "dagster")


def test_the_site_runs_threaded_gunicorn_workers(tmp_path: Path) -> None:
    site = {s.name: s for s in processes.build_services(Settings(ONECART_HOME=tmp_path))}["site"]
    argv = list(site.argv)
    assert Path(argv[0]).name == "gunicorn"
    options = dict(zip(argv[1:-1:2], argv[2:-1:2], strict=False))
    assert options["--worker-class"] == "gthread"
    assert options["--threads"] == "4"
    assert options["--workers"] == "2"
    assert argv[-1] == "storefront:create_app()"


def test_remote_addresses_are_probed_not_started(tmp_path: Path) -> None:
    settings = Settings(
        ONECART_HOME=tmp_path,
        REDIS_URL="redis://redis.internal:6379/0",
        MEILI_URL="http://search.internal:7700",
    )
    services = {service.name: service for service in processes.build_services(settings)}
    assert services["redis"].managed is False
    assert services["meilisearch"].managed is False
    assert services["sandbox"].managed is True


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, []),
        ({"failed_partitions": []}, []),
        ({"failed_partitions": ["kiondo", "naijamall"]}, ["kiondo", "naijamall"]),
        ({"failed_partitions": "bazaar"}, ["bazaar"]),
        ({"success": False, "failed_downstream_assets": ["search_products"]}, []),
    ],
)
def test_failed_partitions_are_read_from_the_pipeline_result(
    result: object, expected: list[str]
) -> None:
    assert cli.failed_partitions(result) == expected


def ingest_report(
    *, failed: tuple[str, ...] = (), downstream_success: bool, assets: tuple[str, ...] = ()
) -> object:
    from pipelines.run import IngestReport, PartitionOutcome

    return IngestReport(
        partitions={
            slug: PartitionOutcome(slug, success=slug not in failed, run_id=f"run-{slug}")
            for slug in ("kiondo", "shopwave")
        },
        downstream_success=downstream_success,
        downstream_run_id="downstream-run",
        downstream_metadata={},
        failed_downstream_assets=list(assets),
    )


def never_called(run_id: str) -> list[str]:
    raise AssertionError(f"no step lookup expected, asked for {run_id}")


def test_a_successful_ingest_reports_no_failure() -> None:
    report = ingest_report(downstream_success=True)
    assert cli.ingest_failure_lines(report, failed_steps_of_run=never_called) == []


def test_failed_downstream_assets_are_named_when_every_partition_succeeded() -> None:
    report = ingest_report(downstream_success=False, assets=("search_products",))

    lines = cli.ingest_failure_lines(report, failed_steps_of_run=never_called)

    assert lines == ["ingest failed in downstream asset(s): search_products"]
    assert cli.failed_downstream_assets(report) == ["search_products"]


def test_failed_partitions_and_downstream_assets_get_a_line_each() -> None:
    report = ingest_report(failed=("kiondo",), downstream_success=False, assets=("product_groups",))

    lines = cli.ingest_failure_lines(report, failed_steps_of_run=never_called)

    assert lines == [
        "ingest failed for partition(s): kiondo (their last good catalogs are kept)",
        "ingest failed in downstream asset(s): product_groups",
    ]


def test_a_failure_without_a_named_asset_names_the_failed_steps_of_the_run() -> None:
    report = ingest_report(downstream_success=False)
    asked: list[str] = []

    def failed_steps(run_id: str) -> list[str]:
        asked.append(run_id)
        return ["normalized_products_products_are_fresh"]

    lines = cli.ingest_failure_lines(report, failed_steps_of_run=failed_steps)

    assert asked == ["downstream-run"]
    assert lines == [
        "ingest failed in downstream run downstream-run, step(s): "
        "normalized_products_products_are_fresh"
    ]


def test_a_failure_nobody_can_name_still_points_at_the_run() -> None:
    report = ingest_report(downstream_success=False)

    (line,) = cli.ingest_failure_lines(report, failed_steps_of_run=lambda run_id: [])

    assert "downstream run downstream-run reported failure" in line
    assert "unnamed" not in line


@dg.asset
def catalog_size() -> int:
    """A healthy asset whose check breaks."""
    return 3


@dg.asset_check(asset=catalog_size)
def catalog_size_is_known() -> dg.AssetCheckResult:
    """A check that raises instead of reporting, like one whose query failed."""
    raise RuntimeError("warehouse locked")


def test_failed_steps_are_read_from_the_dagster_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.run import dagster_home, dagster_instance

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings(ONECART_HOME=tmp_path)
    home = dagster_home(settings)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    instance = dagster_instance(home)
    try:
        result = dg.materialize(
            [catalog_size, catalog_size_is_known], instance=instance, raise_on_error=False
        )
    finally:
        instance.dispose()
    assert not result.success

    steps = cli.failed_steps_of_run(settings, result.run_id)

    assert len(steps) == 1 and "catalog_size_is_known" in steps[0]
    report = {"success": False, "downstream_run_id": result.run_id}
    (line,) = cli.ingest_failure_lines(
        report, failed_steps_of_run=lambda run_id: cli.failed_steps_of_run(settings, run_id)
    )
    assert result.run_id in line and steps[0] in line


def test_every_setting_is_documented() -> None:
    documented = (REPO_ROOT / "docs" / "configuration.md").read_text()
    aliases = [field.alias for field in Settings.model_fields.values() if field.alias]
    missing = [alias for alias in aliases if f"`{alias}`" not in documented]
    assert missing == []


def test_every_cli_command_is_documented() -> None:
    documented = (REPO_ROOT / "docs" / "configuration.md").read_text()
    parser = cli.build_parser()
    commands = next(action for action in parser._actions if action.dest == "command").choices
    missing = [name for name in commands if not re.search(rf"`onecart {name}\b", documented)]
    assert missing == []


def test_only_sandbox_marketplaces_get_placeholder_keys(tmp_path: Path) -> None:
    marketplaces = tmp_path / "marketplaces.toml"
    marketplaces.write_text(
        """
[[marketplace]]
slug = "demo"
base_url = "${ONECART_SANDBOX_URL}/demo"
api_key_env = "DEMO_KEY"

[[marketplace]]
slug = "configured"
base_url = "${ONECART_SANDBOX_URL}/configured"
api_key_env = "CONFIGURED_KEY"

[[marketplace]]
slug = "real"
base_url = "https://shop.example.com"
api_key_env = "REAL_KEY"

[[marketplace]]
slug = "open"
base_url = "${ONECART_SANDBOX_URL}/open"
"""
    )
    settings = Settings(ONECART_HOME=tmp_path, ONECART_MARKETPLACES=marketplaces)

    credentials = processes.sandbox_credentials(settings, {"CONFIGURED_KEY": "mine"})

    assert credentials == {"DEMO_KEY": processes.SANDBOX_API_KEY}


def test_the_worker_runs_order_jobs_and_schedules_the_sweeper_and_tracker(tmp_path: Path) -> None:
    import redis
    from rq.job import Job

    settings = Settings(ONECART_HOME=tmp_path / "home")
    worker = {s.name: s for s in processes.build_services(settings)}["worker"]
    assert "storefront.jobs.OrderWorker" in worker.argv
    assert worker.prepare is not None

    note = worker.prepare()

    assert note == "order sweeper and tracker scheduled"
    connection = redis.Redis.from_url(settings.redis_url)
    try:
        job_ids = [
            key.decode().removeprefix("rq:job:") for key in connection.scan_iter("rq:job:onecart-*")
        ]
        kinds = {Job.fetch(job_id, connection=connection).func_name for job_id in job_ids}
    finally:
        connection.close()
    assert {"storefront.jobs.sweep_job", "storefront.jobs.track_job"} <= kinds
