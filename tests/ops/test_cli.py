"""The `onecart` command run for real: each test gets its own ONECART_HOME and free ports."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from supervisor.xmlrpc import Faults

import warehouse
from onecart import dagster_instance, processes, services, supervision, supervisor_config
from onecart.settings import REPO_ROOT, Settings

SANDBOX_AVAILABLE = importlib.util.find_spec("sandbox.__main__") is not None


def onecart(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onecart.cli", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def status_rows(output: str) -> dict[str, list[str]]:
    """`onecart status` rows by service: name, state, pid, restarts, health, URL."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] in services.SERVICE_ORDER:
            rows[cells[0]] = cells
    return rows


def running_pids(env: dict[str, str]) -> dict[str, int]:
    """The pid `onecart status` shows for each service that runs."""
    return pids_of(status_rows(onecart(env, "status").stdout))


def pids_of(rows: dict[str, list[str]]) -> dict[str, int]:
    """The pid of each service that runs, from `status_rows`."""
    return {name: int(cells[2]) for name, cells in rows.items() if cells[2] != "-"}


def supervisord_pid(home: Path) -> int | None:
    path = home / "run" / "supervisord.pid"
    return int(path.read_text()) if path.exists() else None


@pytest.fixture
def started_services(environment: dict[str, str], home: Path) -> Iterator[list[str]]:
    """Services the test may start; `onecart down` stops them, and whatever is left (a failed
    test) is stopped by pid."""
    names = ["meilisearch", "localstripe"] + (["sandbox"] if SANDBOX_AVAILABLE else [])
    yield names
    onecart(environment, "down", timeout=120)
    supervisor = supervisord_pid(home)
    if supervisor is not None and processes.pid_alive(supervisor):
        processes.stop_pid(supervisor, timeout=5)


def test_status_on_an_empty_home_shows_everything_stopped(environment: dict[str, str]) -> None:
    result = onecart(environment, "status")

    assert result.returncode == 0, result.stderr
    rows = status_rows(result.stdout)
    assert list(rows) == [name for name in services.SERVICE_ORDER if name != "dagster-daemon"]
    assert {cells[1] for cells in rows.values()} == {"stopped"}
    assert {cells[3] for cells in rows.values()} == {"0"}  # restarts
    assert rows["meilisearch"][-1] == environment["MEILI_URL"]
    assert "nothing of OneCart runs here: `make run` starts it" in result.stdout


def test_status_under_another_home_says_the_services_answering_are_not_this_home_s(
    environment: dict[str, str], tmp_path: Path, started_services: list[str]
) -> None:
    # A new terminal whose ONECART_HOME is not the one `up` used: the services answer at the
    # addresses, but nothing runs "here", and `make run` would start a second set.
    up = onecart(environment, "up", "--only", "localstripe")
    assert up.returncode == 0, up.stdout + up.stderr
    other_home = tmp_path / "another-home"

    result = onecart({**environment, "ONECART_HOME": str(other_home)}, "status")

    assert result.returncode == 0, result.stderr
    assert status_rows(result.stdout)["localstripe"][1] == "external"
    assert "nothing of OneCart runs here" not in result.stdout
    assert (
        f"answering, but not started from this home ({other_home}): "
        f"localstripe at {environment['STRIPE_API_BASE']}"
    ) in result.stdout
    assert "set ONECART_HOME to the home `onecart up` used" in result.stdout


@pytest.mark.parametrize("command", [("status",), ("sql", "select 1"), ("down",), ("up",)])
def test_a_home_that_is_a_file_is_a_clear_usage_error(
    environment: dict[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    # ONECART_HOME set to a file (a typo, a path to warehouse.duckdb): a traceback before.
    not_a_home = tmp_path / "warehouse.duckdb"
    not_a_home.write_text("")

    result = onecart({**environment, "ONECART_HOME": str(not_a_home / "sub")}, *command)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"ONECART_HOME={not_a_home / 'sub'}" in result.stderr
    assert f"{not_a_home} is not a directory" in result.stderr


def test_status_piped_into_a_reader_that_has_gone_ends_quietly(
    environment: dict[str, str],
) -> None:
    """`onecart status | head -3` (or `onecart logs … | head`) printed a BrokenPipeError
    traceback once the reader had gone; here the reader is gone before anything is written."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "onecart.cli", "status"],
            env=environment,
            cwd=REPO_ROOT,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        os.close(writer)
    assert result.stderr == ""
    assert result.returncode == 128 + signal.SIGPIPE


def test_up_is_idempotent_and_down_leaves_no_process_behind(
    environment: dict[str, str], home: Path, started_services: list[str]
) -> None:
    only = [argument for name in started_services for argument in ("--only", name)]

    first = onecart(environment, "up", *only)
    assert first.returncode == 0, first.stdout + first.stderr
    pids = running_pids(environment)
    assert set(pids) == set(started_services)
    for name in started_services:
        assert (home / "logs" / f"{name}.log").exists()
    assert httpx.get(f"{environment['MEILI_URL']}/health").json()["status"] == "available"
    if not SANDBOX_AVAILABLE:
        assert (
            "Sandbox marketplaces skipped" in onecart(environment, "up", "--only", "sandbox").stdout
        )

    second = onecart(environment, "up", *only)
    assert second.returncode == 0, second.stdout + second.stderr
    # One `status` for both (each costs a second or two of CPU).
    status = status_rows(onecart(environment, "status").stdout)
    assert pids_of(status) == pids
    assert second.stdout.count("already running") == len(started_services)
    assert "started (pid" not in second.stdout

    for name in started_services:
        assert status[name][1:5] == ["running", str(pids[name]), "0", "ok"]

    supervisor = supervisord_pid(home)
    down = onecart(environment, "down")
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert f"stopped {name} (pid {pid})" in down.stdout
        assert not processes.pid_alive(pid)
        assert processes.group_members(pid) == []
    assert supervisor is not None and not processes.pid_alive(supervisor)
    after = status_rows(onecart(environment, "status").stdout)
    assert pids_of(after) == {}
    assert {after[name][1] for name in started_services} == {"stopped"}


# A stand-in program for `down`'s test: records its SIGTERM in the journal, and exits only once
# every program named after the journal got its own (so a `down` that waits for one app before
# signalling the next leaves it to supervisord's SIGKILL); a child keeps it company in its
# process group.
STAND_IN = """
import signal, subprocess, sys, time
from pathlib import Path

name, journal, waits_for = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
child = subprocess.Popen(["sleep", "600"])


def note(line):
    with journal.open("a") as handle:
        handle.write(line + "\\n")


def on_term(*_):
    note(f"term {name}")
    while not all(f"term {other}" in journal.read_text().splitlines() for other in waits_for):
        time.sleep(0.05)
    note(f"exit {name}")
    sys.exit(0)


signal.signal(signal.SIGTERM, on_term)
note(f"up {name}")
while True:
    time.sleep(1)
"""
APPS = ("dagster", "site", "worker", "cron")
BACKING = ("meilisearch", "sandbox", "localstripe")


def test_down_stops_the_apps_together_before_what_they_use_and_leaves_supervisord_nothing(
    home: Path, tmp_path: Path
) -> None:
    """`down` signals every app (Dagster, the site, the workers, cron) at once and waits for
    all of them before the services they use (Meilisearch, the sandbox, localstripe), then the
    restart listener, so supervisord's own shutdown has nothing left to wait for (it took one
    idle second per program group before the listener's turn came). Nothing of any process
    group outlives it."""
    tiers = [name for tier in services.STOP_TIERS for name in tier]
    assert sorted(tiers) == sorted(services.SERVICE_ORDER)  # every service has its turn
    settings = Settings(
        ONECART_HOME=home,
        REDIS_URL=f"redis://127.0.0.1:{processes.free_port()}/0",
        MEILI_URL=f"http://127.0.0.1:{processes.free_port()}",
    )
    for directory in (home / "logs", home / "run", home / "supervisor"):
        directory.mkdir(parents=True, exist_ok=True)
    program, journal = tmp_path / "stand_in.py", tmp_path / "journal"
    program.write_text(STAND_IN)
    journal.touch()
    stand_ins = [
        services.Service(
            name,
            name,
            None,
            services.running_probe,
            argv=(
                sys.executable,
                str(program),
                name,
                str(journal),
                *(APPS if name in APPS else ()),
            ),
        )
        for name in services.SERVICE_ORDER
        if name in APPS + BACKING
    ]
    supervision.ensure_supervisord(settings, stand_ins, report=lambda _: None)
    supervisor = supervisord_pid(home)
    try:
        for service in stand_ins:
            supervision.start_program(settings, service.name)
        wait_until(
            lambda: len(journal.read_text().splitlines()) == len(stand_ins),
            timeout=120,
            what="every stand-in to start",
        )
        server = supervision.rpc(settings).supervisor
        pids = {info["name"]: info["pid"] for info in server.getAllProcessInfo()}
        said: list[str] = []

        stopped = supervision.stop_services(settings, report=said.append)

        assert sorted(stopped) == sorted(APPS + BACKING)
        for name in APPS + BACKING:
            assert f"stopped {name} (pid {pids[name]})" in said
        events = journal.read_text().splitlines()
        # Every app exited of its own accord (each waited for the others' SIGTERM) before the
        # first backing service was signalled.
        assert {f"exit {name}" for name in APPS} <= set(events), events
        last_app_exit = max(events.index(f"exit {name}") for name in APPS)
        first_backing = min(events.index(f"term {name}") for name in BACKING)
        assert last_app_exit < first_backing, events
        log = (home / "logs" / "supervisord.log").read_text()
        assert "SIGKILL" not in log
        assert "to die" not in log, log[-2000:]  # supervisord's shutdown waited for nothing
        assert supervisor is not None and not processes.pid_alive(supervisor)
        for pid in pids.values():
            assert not processes.pid_alive(pid)
            assert processes.group_members(pid) == []
    finally:
        if supervisor is not None and processes.pid_alive(supervisor):
            processes.stop_pid(supervisor, timeout=5)


def test_localstripe_listens_on_loopback_only(
    environment: dict[str, str], home: Path, started_services: list[str]
) -> None:
    assert onecart(environment, "up", "--only", "localstripe").returncode == 0
    port = environment["STRIPE_API_BASE"].rsplit(":", 1)[1]
    listening = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
    local_addresses = {
        line.split()[1] for line in listening.splitlines()[1:] if line.split()[3] == "0A"
    }
    port_hex = f"{int(port):04X}"
    bound = {address for address in local_addresses if address.endswith(f":{port_hex}")}
    assert bound == {f"0100007F:{port_hex}"}  # 127.0.0.1, not 0.0.0.0 or ::


def test_localstripe_by_hand_listens_where_stripe_api_base_says(
    environment: dict[str, str],
) -> None:
    # As `onecart sandbox` serves at ONECART_SANDBOX_PORT: by hand, without --port, it served
    # on 8420 whatever STRIPE_API_BASE said, where the site and workers did not look.
    port = int(environment["STRIPE_API_BASE"].rsplit(":", 1)[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "onecart.cli", "localstripe"],
        env=environment,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/v1/customers", timeout=2).status_code
            except httpx.HTTPError:
                assert server.poll() is None, "onecart localstripe exited"
                time.sleep(0.3)
        assert status == 401  # localstripe without a key
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_a_service_that_dies_at_start_is_reported_with_its_log(
    environment: dict[str, str], home: Path, tmp_path: Path, started_services: list[str]
) -> None:
    broken = tmp_path / "meilisearch"
    broken.write_text("#!/bin/sh\necho 'cannot open database: disk full' >&2\nexit 7\n")
    broken.chmod(0o755)
    environment["MEILI_BIN"] = str(broken)

    result = onecart(environment, "up", "--only", "meilisearch")

    assert result.returncode == 1
    assert "meilisearch exited while starting" in result.stdout
    assert "cannot open database: disk full" in result.stdout
    assert running_pids(environment) == {}


def test_a_failed_up_stops_what_it_started_and_says_so(
    environment: dict[str, str], home: Path, tmp_path: Path, started_services: list[str]
) -> None:
    # localstripe starts, Meilisearch dies at start: the up fails, and stops localstripe and
    # the supervisord it started (both outlived it before, supervisord restarting nothing).
    broken = tmp_path / "meilisearch"
    broken.write_text("#!/bin/sh\necho 'cannot open database: disk full' >&2\nexit 7\n")
    broken.chmod(0o755)
    environment["MEILI_BIN"] = str(broken)

    result = onecart(environment, "up", "--only", "localstripe", "--only", "meilisearch")

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "meilisearch exited while starting" in output
    assert "up failed: stopped what it started (localstripe, supervisord)" in output, output
    supervisor = supervisord_pid(home)
    assert supervisor is None or not processes.pid_alive(supervisor)
    assert not supervisor_config.socket_path(Settings(ONECART_HOME=home)).exists()
    stripe_port = int(environment["STRIPE_API_BASE"].rsplit(":", 1)[1])
    assert not supervision.port_in_use("127.0.0.1", stripe_port)


def test_a_failed_up_beside_running_services_stops_only_what_it_started(
    environment: dict[str, str], home: Path, tmp_path: Path, started_services: list[str]
) -> None:
    first = onecart(environment, "up", "--only", "localstripe")
    assert first.returncode == 0, first.stdout + first.stderr
    pids = running_pids(environment)
    supervisor = supervisord_pid(home)
    # Meilisearch cannot open its database (a file where its directory goes); the environment
    # stays the same, so supervisord keeps localstripe's program as it is.
    (home / "meili").mkdir(parents=True, exist_ok=True)
    (home / "meili" / "data.ms").write_text("not a database")

    result = onecart(environment, "up", "--only", "localstripe", "--only", "meilisearch")

    assert result.returncode == 1
    output = result.stdout + result.stderr
    # Nothing of this up's own is left running; what an earlier up started is left alone.
    assert "up failed: it started nothing that is still running" in output, output
    assert running_pids(environment) == pids
    assert supervisor is not None and processes.pid_alive(supervisor)


@pytest.mark.parametrize("dies", ["inside the start call", "after the start call"])
def test_a_program_dying_at_start_is_reported_with_its_log_whichever_the_timing(
    dies: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # supervisord reaps a child that dies at once inside startProcess and answers SPAWN_ERROR;
    # one that dies a moment later is seen by wait_until_healthy. The program waits for `go`,
    # so the test decides which side of the call the death falls on.
    go = tmp_path / "go"
    program = tmp_path / "meilisearch"
    program.write_text(
        f"#!/bin/sh\nwhile [ ! -e {go} ]; do sleep 0.05; done\n"
        "echo 'cannot open database: disk full' >&2\nexit 7\n"
    )
    program.chmod(0o755)
    settings = Settings(
        ONECART_HOME=home,
        MEILI_URL=f"http://127.0.0.1:{processes.free_port()}",
        REDIS_URL=f"redis://127.0.0.1:{processes.free_port()}/0",
    )
    [meilisearch] = services.select_services(
        services.build_services(settings), only=["meilisearch"]
    )
    meilisearch = dataclasses.replace(meilisearch, argv=(str(program),))
    real_rpc = supervision.rpc

    class Supervisor:
        """supervisord's own RPC, with the program's death placed before or after the reply."""

        def __init__(self, methods: Any) -> None:
            self._methods = methods

        def __getattr__(self, name: str) -> Any:
            return getattr(self._methods, name)

        def startProcess(self, name: str, wait: bool) -> bool:
            self._methods.startProcess(name, wait)
            go.touch()
            if dies == "after the start call":
                return True
            while self._methods.getProcessInfo(name)["statename"] == "STARTING":
                time.sleep(0.05)
            # What supervisord answers when its reap inside the call finds the child dead.
            raise xmlrpc.client.Fault(Faults.SPAWN_ERROR, f"SPAWN_ERROR: {name}")

    monkeypatch.setattr(
        supervision,
        "rpc",
        lambda s: SimpleNamespace(supervisor=Supervisor(real_rpc(s).supervisor)),
    )
    try:
        [outcome] = supervision.start_services(settings, [meilisearch], report=lambda _: None)

        assert outcome.action == "failed"
        assert "meilisearch exited while starting" in outcome.detail
        assert "cannot open database: disk full" in outcome.detail
        info = real_rpc(settings).supervisor.getProcessInfo("meilisearch")
        assert info["statename"] not in supervision.RUNNING_STATES  # not retried behind our back
    finally:
        supervision.stop_services(settings, report=lambda _: None)


def test_missing_redis_server_explains_how_to_install_it(
    environment: dict[str, str], tmp_path: Path
) -> None:
    environment["PATH"] = str(tmp_path / "empty-bin")  # no redis-server anywhere

    result = onecart(environment, "up", "--only", "redis")

    assert result.returncode == 3
    assert "apt-get install -y redis-server" in result.stderr
    assert environment["REDIS_URL"] in result.stderr


def test_up_beside_a_redis_that_already_answers_leaves_no_supervisord_behind(
    environment: dict[str, str], home: Path
) -> None:
    # `make test` runs `up --only redis` on machines whose Redis is already running.
    environment["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")

    result = onecart(environment, "up", "--only", "redis")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "not started by onecart" in result.stdout
    assert not (home / "run" / "supervisord.pid").exists()
    assert not (home / "run" / "supervisor.sock").exists()


def test_logs_shows_the_end_of_a_service_log(environment: dict[str, str], home: Path) -> None:
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "site.log").write_text("".join(f"line {n}\n" for n in range(100)))

    result = onecart(environment, "logs", "site", "-n", "3")

    assert result.returncode == 0
    assert result.stdout.splitlines() == ["line 97", "line 98", "line 99"]
    missing = onecart(environment, "logs", "dagster")
    assert missing.returncode == 1
    assert "logs: site" in missing.stderr


def test_logs_with_no_lines_prints_none(environment: dict[str, str], home: Path) -> None:
    """`-n 0` printed the whole log (the last 0 lines taken as every line)."""
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "site.log").write_text("".join(f"line {n}\n" for n in range(100)))

    result = onecart(environment, "logs", "site", "-n", "0")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("lines", ["-5", "100001", "ten"])
def test_logs_takes_a_bounded_line_count(
    environment: dict[str, str], home: Path, lines: str
) -> None:
    """`-n -5` printed all but the first five lines, and no count was too large."""
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "site.log").write_text("".join(f"line {n}\n" for n in range(100)))

    result = onecart(environment, "logs", "site", "-n", lines)

    assert result.returncode == 2
    assert "-n/--lines: a whole number from 0 to 100000" in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("port", ["0", "65536", "99999999999"])
def test_localstripe_takes_a_port_within_range(environment: dict[str, str], port: str) -> None:
    result = onecart(environment, "localstripe", "--port", port, timeout=60)

    assert result.returncode == 2
    assert "--port: a whole number from 1 to 65535" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_logs_piped_elsewhere_carry_no_terminal_colour_codes(
    environment: dict[str, str], home: Path
) -> None:
    """Dagster colours its log lines; piped into a file, grep or a ticket the escape codes are
    noise ("\x1b[32m2026-12-06 ... INFO\x1b[0m"), so they are left out when stdout is no
    terminal."""
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "dagster.log").write_text(
        "\x1b[32m2026-12-06 14:00:00 +0000\x1b[0m - dagster - \x1b[1;34mINFO\x1b[0m - started\n"
    )

    result = onecart(environment, "logs", "dagster")

    assert result.returncode == 0
    assert result.stdout == "2026-12-06 14:00:00 +0000 - dagster - INFO - started\n"


def test_an_unknown_log_name_lists_the_service_logs_only(
    environment: dict[str, str], home: Path
) -> None:
    """supervisord keeps the restart listener's protocol stream in an AUTO file of the logs
    directory; it is no service's log and its name changes with every start."""
    logs = home / "logs"
    logs.mkdir(parents=True)
    for name in ("site", "restart-listener", "restart-listener-stdout---supervisor-lk4lc7no"):
        (logs / f"{name}.log").write_text("")

    missing = onecart(environment, "logs", "dagster")

    assert missing.returncode == 1
    assert missing.stderr.rstrip().endswith("; logs: restart-listener, site"), missing.stderr


def test_unknown_service_names_are_usage_errors(environment: dict[str, str]) -> None:
    result = onecart(environment, "up", "--only", "mongodb")
    assert result.returncode == 2
    assert re.search(r"invalid choice: 'mongodb'", result.stderr)


def test_generated_dagster_yaml_is_a_valid_instance_config(tmp_path: Path) -> None:
    from dagster import DagsterInstance

    settings = Settings(ONECART_HOME=tmp_path)
    path = dagster_instance.write_dagster_yaml(settings)

    instance = DagsterInstance.from_config(str(path.parent))
    try:
        assert instance.root_directory == str(path.parent)
        # The queue's one-at-a-time limit names the tag every embeddings run carries.
        from pipelines.jobs import ONE_AT_A_TIME_TAG, embeddings_job

        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        key, value = ONE_AT_A_TIME_TAG
        assert {"key": key, "value": value, "limit": 1} in queue.tag_concurrency_limits
        assert embeddings_job.tags[key] == value  # `tags`: GraphQL launches merge only these
    finally:
        instance.dispose()


@pytest.mark.parametrize("name", ["atlantis", ""])
def test_ingest_of_an_unknown_marketplace_is_a_usage_error_naming_it(
    environment: dict[str, str], name: str
) -> None:
    """It exited 1 (a failed partition's code) after "ingest: materializing the pipeline for
    atlantis", built the pipeline's definitions first, and then, with nothing running, told to
    start the services as if they were what failed; an empty name read "unknown
    marketplace(s) ;". Like `--history 0`, it is a usage error said before anything starts."""
    result = onecart(environment, "ingest", "--marketplace", "shopwave", "--marketplace", name)

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"onecart ingest: unknown marketplace {name!r}; configured: shopwave, " in result.stderr
    assert "does not answer" not in result.stderr


@pytest.mark.parametrize("days", ["0", "91", "-3"])
def test_ingest_history_takes_1_to_90_days(environment: dict[str, str], days: str) -> None:
    """`--history 0` ran a plain ingest instead (its help says 1 to 90)."""
    result = onecart(environment, "ingest", "--history", days)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "--history: a whole number from 1 to 90" in result.stderr, result.stderr
    assert result.stdout == ""


def test_an_ingest_with_nothing_running_says_to_start_the_services(
    environment: dict[str, str],
) -> None:
    # The common mistake: `onecart ingest` after `make down`, or in a shell whose ONECART_HOME
    # is not the one `up` used. The connection errors alone did not say what to do.
    environment["ONECART_ASSISTANT_EMBEDDINGS"] = "off"

    result = onecart(environment, "ingest", "--marketplace", "fakestore", timeout=300)

    assert result.returncode == 1, result.stdout + result.stderr
    meili = environment["MEILI_URL"]
    sandbox = f"http://127.0.0.1:{environment['ONECART_SANDBOX_PORT']}"
    assert f"meilisearch does not answer at {meili}" in result.stderr
    assert f"sandbox does not answer at {sandbox}" in result.stderr
    assert "`make run` or `onecart up`" in result.stderr
    assert environment["ONECART_HOME"] in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOX_AVAILABLE, reason="the sandbox package is not installed")
def test_ingest_names_the_failed_downstream_asset_when_every_partition_succeeded(
    environment: dict[str, str], started_services: list[str]
) -> None:
    assert onecart(environment, "up", "--only", "sandbox").returncode == 0
    environment["ONECART_ASSISTANT_EMBEDDINGS"] = "off"

    # Meilisearch is not started: the catalog loads, the search index cannot be written.
    result = onecart(environment, "ingest", "--marketplace", "fakestore", timeout=300)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "fakestore: fetched" in result.stdout
    assert "search_products: FAILED" in result.stdout
    failures = [line for line in result.stderr.splitlines() if line.startswith("ingest failed")]
    assert failures == ["ingest failed in downstream asset(s): search_products"]
    assert "unnamed" not in result.stderr


def test_sandbox_command_hands_over_to_the_sandbox_cli(environment: dict[str, str]) -> None:
    result = onecart(environment, "sandbox", "serve", "--help")

    assert result.returncode == 0, result.stderr
    assert "python -m sandbox serve" in result.stdout
    assert "--offers" in result.stdout


def test_every_command_uses_the_checkouts_var_from_a_plain_shell(tmp_path: Path) -> None:
    """Run as README says, outside make, with the shell's HOME set and no ONECART_HOME: the home
    is the checkout's var/ whatever the working directory, and nothing lands in HOME."""
    shell_home = tmp_path / "user-home"
    shell_home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ONECART_", "MEILI_", "DAGSTER_"))
    }
    env["HOME"] = str(shell_home)
    checkout_var = REPO_ROOT / "var"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(processes.VENV_BIN / "onecart"), *args],
            env=env,
            cwd=tmp_path,  # not the checkout
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    status = run("status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0].startswith(f"OneCart home: {checkout_var} ")
    logs = run("logs", "no-such-service")
    assert logs.returncode == 1
    assert f"in {checkout_var / 'logs'}" in logs.stderr
    # Usage errors are found before anything is touched.
    ingest = run("ingest", "--marketplace", "atlantis")
    assert ingest.returncode == 2 and "atlantis" in ingest.stderr
    assert run("down", "no-such-service").returncode == 2
    assert run("up", "--only", "no-such-service").returncode == 2
    for command in ("up", "down", "status", "ingest", "sandbox", "logs", "localstripe", "sql"):
        assert run(command, "--help").returncode == 0, command
    assert list(shell_home.iterdir()) == []
    assert not (tmp_path / "var").exists()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a whole first start, then every service killed and restarted
@pytest.mark.skipif(not SANDBOX_AVAILABLE, reason="the sandbox package is not installed")
def test_up_on_an_empty_home_serves_search_and_every_killed_service_comes_back(
    environment: dict[str, str], home: Path, started_services: list[str]
) -> None:
    """`onecart up --ingest` on an empty home with non-default ports, through to a search hit;
    then each service's main process is killed and supervisord brings it back, with the rest
    of its process group stopped (no orphans)."""
    environment["ONECART_ASSISTANT_EMBEDDINGS"] = "off"  # the embeddings run is tested apart
    environment["ONECART_RQ_WORKERS"] = "2"
    # One day replayed, not the default three (test_the_demo_replays_three_days_by_default):
    # each day is a whole ingest of every marketplace, and one proves the replay as well.
    environment["ONECART_DEMO_HISTORY_DAYS"] = "1"

    up = onecart(environment, "up", "--ingest", timeout=1200)

    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "loading catalogs: 0 of 8 marketplaces" in up.stdout
    assert "keyword search is live" in up.stdout
    # Switched off, so no embeddings run is started and the output says so.
    assert (
        "offer embeddings: skipped, switched off (ONECART_ASSISTANT_EMBEDDINGS=off);" in up.stdout
    )
    assert "offer embeddings: background run" not in up.stdout
    # A fresh demo replays the sandbox's last days first (ONECART_DEMO_HISTORY_DAYS): price
    # history on two consecutive days, today's the last.
    assert "first run of the demo: replaying the sandbox's last 1 day first" in up.stdout
    with warehouse.connect(home / "pipeline.duckdb", read_only=True) as conn:
        days = [
            day
            for (day,) in conn.execute(
                "SELECT DISTINCT CAST(observed_at AS DATE) AS day FROM price_history ORDER BY day"
            ).fetchall()
        ]
    assert days == [days[-1] - timedelta(days=n) for n in (1, 0)], days
    site = f"http://127.0.0.1:{environment['ONECART_SITE_PORT']}"
    search = httpx.get(f"{site}/api/search", params={"q": ""}, timeout=30).json()
    assert search["total_hits"] > 0
    before = status_rows(onecart(environment, "status").stdout)
    pids = pids_of(before)
    expected = [name for name in services.SERVICE_ORDER if name != "dagster-daemon"]
    assert set(pids) == set(expected), pids

    # Every service's main process at once (SIGKILL: nothing of it can clean up).
    groups = {name: processes.group_members(pids[name]) for name in expected}
    for name in expected:
        os.kill(pids[name], signal.SIGKILL)

    def back(row: list[str], name: str) -> bool:
        """Running again under a new pid, answering, its restart counted. The listener
        handles exits one at a time (each may wait for an orphaned group to stop), so a count
        can trail the restart it belongs to by a few seconds."""
        return (
            row[1] == "running"
            and row[2] != before[name][2]
            and row[4] == "ok"
            and int(row[3]) >= int(before[name][3]) + 1
        )

    # Waited for in this process, with what `status` reads for each service (a `status`
    # command a second costs seconds of CPU each, taken from the services coming back).
    settings = _settings_of(environment)
    catalog = {service.name: service for service in services.build_services(settings)}

    def all_back() -> bool:
        for name in expected:
            state = supervision.inspect_service(settings, catalog[name])
            row = [
                name,
                state.status,
                str(state.pid or "-"),
                str(state.restarts),
                "ok" if state.healthy else "no answer",
            ]
            if not back(row, name):
                return False
        return True

    wait_until(all_back, timeout=600, what="every killed service to come back")
    # `status` says so: one restart counted per kill (a restarted Redis may restart the
    # workers too).
    after = status_rows(onecart(environment, "status").stdout)
    for name in expected:
        assert back(after[name], name), (name, before[name], after[name])
    # What was left of each old process group (the site's workers, the pool's work horses,
    # dagster dev's webserver and daemon) was stopped with it: no orphans.
    wait_until(
        lambda: (
            not [
                (name, pid)
                for name, members in groups.items()
                for pid in members
                if processes.pid_alive(pid)
            ]
            or None
        ),
        timeout=120,
        what="the rest of the killed services' process groups to stop",
    )

    down = onecart(environment, "down", timeout=300)
    assert down.returncode == 0, down.stderr
    assert running_pids(environment) == {}


@pytest.mark.slow
@pytest.mark.timeout(1200)
# dagster_graphql's client (the launch, as `onecart ingest` does it) calls gql's deprecated way.
@pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning")
def test_down_cancels_the_runs_and_the_next_up_carries_each_on_through_dagster(
    environment: dict[str, str], home: Path, started_services: list[str]
) -> None:
    """`down` with a scheduled catalog refresh and an offer embeddings run in progress (their
    steps wait for the warehouse, which the test holds) and a second embeddings run launched
    beside them: the run queue kept the second one queued (one embeddings run at a time), `down`
    cancels all three through Dagster before stopping it (they were torn down with Dagster,
    "interrupted unexpectedly", and Dagster was SIGKILLed at its stop timeout), and the next
    `up` re-executes what was cancelled, once each: the catalog refresh (before, only the
    embeddings were launched again, and the refresh waited for the schedule's next tick, with
    the downstream run that follows it) and the embeddings (the newer of the two runs)."""
    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient

    import pipelines.run
    from onecart import dagster_runs
    from warehouse.connection import exclusive_file_lock, lock_path_for

    settings = Settings(
        ONECART_HOME=home, ONECART_DAGSTER_PORT=int(environment["ONECART_DAGSTER_PORT"])
    )
    up = onecart(environment, "up", "--only", "dagster", timeout=400)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    active = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
    client = DagsterGraphQLClient(settings.dagster_host, port_number=settings.dagster_port)

    with exclusive_file_lock(lock_path_for(settings.pipeline_db_path)):
        # As the refresh schedule requests it.
        refresh = client.submit_job_execution(
            "marketplace_catalog_job",
            tags={"dagster/partition": "shopwave", "onecart/trigger": "schedule"},
        )
        runs = [pipelines.run.launch_offer_embeddings(settings) for _ in range(2)]
        with dagster_runs.open_instance(settings) as instance:

            def status(run_id: str) -> dg.DagsterRunStatus:
                return instance.get_run_by_id(run_id).status  # type: ignore[union-attr]

            wait_until(
                lambda: status(refresh) in active and active & {status(r) for r in runs},
                timeout=300,
                what="the refresh and an embeddings run to start",
            )
            time.sleep(5)  # the queue daemon's next turns
            now = [status(run_id) for run_id in runs]
            assert sorted(status in active for status in now) == [False, True], now
            assert dg.DagsterRunStatus.QUEUED in now, now

        down = onecart(environment, "down", timeout=300)

    assert down.returncode == 0, down.stdout + down.stderr
    # (A run still starting when `down` came ended as a FAILURE, "interrupted unexpectedly".)
    assert f"cancelled Dagster run {refresh} (marketplace_catalog_job): CANCELED" in down.stdout, (
        down.stdout
    )
    for run_id in runs:
        assert f"cancelled Dagster run {run_id} (offer_embeddings_job): CANCELED" in down.stdout, (
            down.stdout
        )
    supervisor_log = (home / "logs" / "supervisord.log").read_text()
    assert "SIGKILL" not in supervisor_log, supervisor_log[-2000:]

    again = onecart(environment, "up", "--only", "dagster", timeout=400)

    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (
        f"Dagster run {refresh} (marketplace_catalog_job, shopwave) was cancelled by `down`; run "
        in again.stdout
    ), again.stdout
    assert f"Dagster run {runs[1]} (offer_embeddings_job) was cancelled by `down`; run " in (
        again.stdout
    ), again.stdout
    with dagster_runs.open_instance(settings) as instance:
        # Shopwave's: a schedule tick coming while the test runs refreshes the other partitions
        # (and leaves shopwave's cancelled refresh to `up`).
        [refreshed] = instance.get_runs(
            dg.RunsFilter(
                job_name="marketplace_catalog_job", tags={"dagster/partition": "shopwave"}
            ),
            limit=1,
        )
        embeddings = instance.get_runs(dg.RunsFilter(job_name="offer_embeddings_job"))
        stopped = {run_id: instance.get_run_by_id(run_id) for run_id in [refresh, *runs]}
    # Dagster's re-execution of each: its parent is the cancelled run, whose partition, tags
    # and config it keeps.
    assert refreshed.run_id != refresh
    assert refreshed.tags["dagster/parent_run_id"] == refresh
    assert refreshed.tags["dagster/partition"] == "shopwave"
    assert refreshed.tags["onecart/trigger"] == "resumed_after_down"
    assert "onecart/stopped_by" not in refreshed.tags  # `down` did not stop this one
    assert len(embeddings) == 3, [run.run_id for run in embeddings]  # one carries both on
    assert embeddings[0].tags["dagster/parent_run_id"] == runs[1]
    assert embeddings[0].tags["onecart/one_at_a_time"] == "offer_embeddings_job"
    assert {run.tags["onecart/resumed_as"] for run in stopped.values()} == {  # type: ignore[union-attr]
        refreshed.run_id,
        embeddings[0].run_id,
    }
    third = onecart(environment, "up", "--only", "dagster", timeout=400)
    assert "cancelled by `down`" not in third.stdout  # carried on once


def _settings_of(env: dict[str, str]) -> Settings:
    """The settings a `onecart` command run with `env` reads (its home, ports and addresses)."""
    return Settings(
        **{
            name: value
            for name, value in env.items()
            if name.startswith(("ONECART_", "MEILI_", "STRIPE_", "REDIS_", "DATABASE_URL"))
        }
    )


def wait_until(check, *, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """Poll `check` until it returns something truthy (robust on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def production_environment(environment: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """`environment` in production with its own secrets, e-mail off and one real marketplace
    (switched off, so an ingest asks nobody), outside sandbox mode."""
    marketplaces = tmp_path / "marketplaces.toml"
    marketplaces.write_text(
        '[[marketplace]]\nslug = "realshop"\nname = "Real Shop"\nkind = "shopify"\n'
        'base_url = "https://realshop.example.com"\ncurrency = "USD"\ncountry = "US"\n'
        "active = false\n"
    )
    production = {k: v for k, v in environment.items() if k != "STRIPE_API_BASE"}
    production.update(
        ONECART_ENV="production",
        ONECART_MARKETPLACES=str(marketplaces),
        ONECART_SIGNUP_CONFIRMATION="false",
        ONECART_TRUSTED_HOSTS="shop.example.com",
        SECRET_KEY="k5Q0v9b3Xw7nR2mT8yL4pA6sD1fG0hJ3",
        ONECART_ENCRYPTION_KEY="wCpLE71yfvjShDVwK4T19GQJnrlUfE2sdI76_TL9qhU=",
        STRIPE_WEBHOOK_SECRET="whsec_5b9c2e7f1a3d4e6b8c0f2a4c",
        STRIPE_API_KEY="sk_live_51Hq2ExampleKey0123456789",
        STRIPE_PUBLISHABLE_KEY="pk_live_51Hq2ExamplePublishableKey0123",
        MEILI_MASTER_KEY="m3ili-master-key-for-production-9f8e",
        ONECART_ASSISTANT_EMBEDDINGS="off",
    )
    return production


def test_production_up_does_not_start_the_sandbox_marketplaces(
    environment: dict[str, str], tmp_path: Path, started_services: list[str]
) -> None:
    """Outside sandbox mode the marketplaces are real: a sandbox on 127.0.0.1 would only be a
    process serving fake stores that nothing may use."""
    production = production_environment(environment, tmp_path)

    result = onecart(production, "up", "--only", "sandbox")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Sandbox marketplaces skipped: sandbox mode is off" in result.stdout
    assert running_pids(production) == {}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{production['ONECART_SANDBOX_PORT']}/_sandbox/health")


@pytest.mark.parametrize(("env", "sandbox_mode"), [("production", "true"), ("development", None)])
def test_the_sandbox_is_started_in_sandbox_mode(env: str, sandbox_mode: str | None) -> None:
    settings = Settings(ONECART_ENV=env, ONECART_SANDBOX_MODE=sandbox_mode)
    sandbox = next(s for s in services.build_services(settings) if s.name == "sandbox")
    assert sandbox.why_unavailable() is None
    assert "sandbox" in services.ingest_needs(settings)


@pytest.mark.slow
def test_production_up_ingest_does_not_wait_for_the_sandbox(
    environment: dict[str, str], tmp_path: Path, started_services: list[str]
) -> None:
    """`up --ingest` loads the catalogs once what the ingest needs answers: in production that
    is Meilisearch, not a sandbox that is not started there."""
    production = production_environment(environment, tmp_path)

    result = onecart(production, "up", "--only", "meilisearch", "--ingest", timeout=300)

    assert "ingest not run" not in result.stderr, result.stdout + result.stderr
    assert "sandbox" not in services.ingest_needs(Settings(ONECART_ENV="production"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_down_with_an_unknown_name_lists_the_services_it_knows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `onecart down meili` said only "unknown service(s): meili", where `up --only` and `logs`
    # name what there is.
    from onecart import cli
    from onecart.settings import get_settings

    monkeypatch.setenv("ONECART_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert cli.main(["down", "meili"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "unknown service(s): meili" in err
    assert "known: " in err and "meilisearch" in err and "worker" in err


def onecart_with(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONECART_HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT), **variables}
    return subprocess.run(
        [sys.executable, "-m", "onecart.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_setting_out_of_range_is_named_without_a_traceback(tmp_path: Path) -> None:
    # `ONECART_PIPELINE_WORKERS=-1 onecart status` printed pydantic's ValidationError under a
    # 20-line traceback.
    result = onecart_with(tmp_path, ONECART_PIPELINE_WORKERS="-1", ONECART_DEMO_HISTORY_DAYS="500")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "ONECART_PIPELINE_WORKERS='-1': greater than or equal to 0" in result.stderr.replace(
        "Input should be ", ""
    )
    assert "ONECART_DEMO_HISTORY_DAYS='500'" in result.stderr
    assert "docs/configuration.md" in result.stderr


def test_a_schedule_that_is_no_cron_expression_is_refused_by_name(tmp_path: Path) -> None:
    # Dagster refused the code location ("Found invalid cron schedule 'every 5 min' for schedule
    # 'catalog_refresh_schedule'"), naming no variable, once `onecart up` had started it.
    result = onecart_with(tmp_path, ONECART_SCHEDULE_CRON="every 5 min")
    assert result.returncode == 2
    assert "ONECART_SCHEDULE_CRON='every 5 min'" in result.stderr
    assert "Traceback" not in result.stderr
    assert onecart_with(tmp_path, ONECART_SCHEDULE_CRON="0 */2 * * 1-5").returncode == 0


@pytest.fixture
def silent_listener() -> Iterator[tuple[str, int]]:
    """Another program's socket on a free loopback port: it accepts and never answers."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()


def test_a_port_another_program_holds_is_named_with_the_variable_that_moves_it(
    environment: dict[str, str], home: Path, silent_listener: tuple[str, int]
) -> None:
    host, port = silent_listener
    environment["STRIPE_API_BASE"] = f"http://{host}:{port}"

    result = onecart(environment, "up", "--only", "localstripe", timeout=60)

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"port {port} on {host} is already in use by another program" in output
    assert "set STRIPE_API_BASE to a free port" in output
    assert "exited while starting" not in output  # said before starting, not read from a log
    assert not (home / "run" / "supervisord.pid").exists()


@pytest.fixture
def other_web_server() -> Iterator[tuple[str, int]]:
    """Another program's web server on a free loopback port (a developer's own app on 5000 or
    3000): it answers every path, with 404 where it has nothing."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            """Quiet: the test's output is the command's."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("meilisearch", "MEILI_URL"),
        ("sandbox", "ONECART_SANDBOX_PORT"),
        ("site", "ONECART_SITE_PORT"),
    ],
)
def test_another_web_server_on_a_service_s_port_is_not_taken_for_the_service(
    environment: dict[str, str],
    home: Path,
    other_web_server: tuple[str, int],
    service: str,
    variable: str,
) -> None:
    # Its 404 counted as the service answering: `up` went on as if Meilisearch (the sandbox,
    # the shop) ran there, and the ingest failed later on a server that was not it.
    host, port = other_web_server
    environment[variable] = f"http://{host}:{port}" if variable == "MEILI_URL" else str(port)

    result = onecart(environment, "up", "--only", service, timeout=60)

    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"port {port} on {host} is already in use by another program" in output
    assert f"set {variable} to a free port" in output


def test_a_meili_bin_naming_no_file_fails_and_says_what_to_do(
    environment: dict[str, str], tmp_path: Path, started_services: list[str]
) -> None:
    # started_services: `up` has started supervisord before Meilisearch fails; it is stopped
    # afterwards (it outlived the test before).
    environment["MEILI_BIN"] = str(tmp_path / "no-such-meilisearch")

    result = onecart(environment, "up", "--only", "meilisearch", timeout=60)

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert f"MEILI_BIN={tmp_path / 'no-such-meilisearch'}" in output
    assert "unset MEILI_BIN" in output
    assert "npm ci" not in output  # the npm binary is not the one asked for
    assert "up failed: stopped what it started (supervisord)" in output


def test_commands_in_a_plain_shell_use_the_addresses_up_started_the_services_at(
    environment: dict[str, str], home: Path, started_services: list[str]
) -> None:
    up = onecart(environment, "up", "--only", "localstripe")
    assert up.returncode == 0, up.stdout + up.stderr
    # A new terminal: only ONECART_HOME (the checkout's var/ by default) is the same.
    plain = {k: v for k, v in environment.items() if k not in {"STRIPE_API_BASE", "MEILI_URL"}}

    rows = status_rows(onecart(plain, "status").stdout)

    assert rows["localstripe"][1] == "running"
    assert rows["localstripe"][4] == "ok"
    assert rows["localstripe"][-1] == environment["STRIPE_API_BASE"]
    assert rows["meilisearch"][-1] == environment["MEILI_URL"]
    # A variable the shell sets still wins.
    moved = dict(plain, MEILI_URL="http://127.0.0.1:9")
    assert status_rows(onecart(moved, "status").stdout)["meilisearch"][-1] == moved["MEILI_URL"]
