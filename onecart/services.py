"""The service catalog behind `onecart up/down/status`: what each service runs, how to tell that
it answers, and the state it needs prepared (migrations, DAGSTER_HOME) before it starts.

Supervisord runs them (onecart/supervision.py); this module only describes them. Two profiles:
`local` (one machine, `dagster dev`) and `cluster` (dagster-webserver + dagster-daemon on
PostgreSQL storage, several site (uWSGI) and RQ workers; docs/deploy.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from onecart.dagster_instance import (
    dagster_home,
    dagster_postgres_url,
    prepare_dagster_instance,
)
from onecart.processes import (
    VENV_BIN,
    MissingProgramError,
    ProcessError,
    localstripe_argv,
    log_dir,
    meilisearch_argv,
    meilisearch_environment,
    parent_pid,
    sandbox_argv,
    tail,
)
from onecart.settings import REPO_ROOT, Settings
from onecart.site_server import site_server_argv

WORKSPACE_FILE: Final = REPO_ROOT / "workspace.yaml"
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
PROFILES: Final = ("local", "cluster")

# Start order; `down` stops in reverse. dagster-daemon runs only in the cluster profile (the
# local profile's `dagster dev` includes a daemon).
SERVICE_ORDER: Final = (
    "redis",
    "meilisearch",
    "sandbox",
    "localstripe",
    "dagster",
    "dagster-daemon",
    "site",
    "worker",
    "cron",
)

# What `down` stops together, tier after tier: the programs that use the others first (at once:
# none of them serves another), then what they use. Dagster alone takes about ten seconds to
# shut down; one at a time, every other stop waited behind it.
STOP_TIERS: Final = (
    ("cron", "worker", "site", "dagster-daemon", "dagster"),
    ("localstripe", "sandbox", "meilisearch", "redis"),
)

REDIS_INSTALL_HINT: Final = (
    "redis-server is not installed and nothing answers at {url}.\n"
    "Install it with:\n"
    "    sudo apt-get update && sudo apt-get install -y redis-server\n"
    "(`make run` and `make test` do this for you), or point REDIS_URL at a running Redis."
)

# The pid of the service's main process (None when it is not running) -> does it answer?
Probe = Callable[[int | None], bool]


@dataclass(frozen=True)
class Service:
    """One background service: how to start it and how to tell that it answers.

    `managed` is False when the address belongs to another machine: OneCart only probes it.
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
    # The variable that moves the service to another port, named when its port is taken.
    address_variable: str = ""
    # Why the service cannot start although it was asked for (a program that is not where the
    # settings say): a failure, where `why_unavailable` is a deliberate skip.
    missing_program: Callable[[], str | None] = lambda: None


def _redis_config_value(value: str) -> str:
    """`value` as one quoted argument of a redis.conf directive."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_auth_config(redis_url: str) -> str:
    """redis.conf lines that make a Redis require REDIS_URL's password ("" without one): the
    default user's `requirepass`, or an ACL user of that name (the default user then off)."""
    parts = urlsplit(redis_url)
    if not parts.password:
        return ""
    password = unquote(parts.password)
    username = unquote(parts.username or "")
    if username and username != "default":
        return (
            f"user {_redis_config_value(username)} on "
            f"{_redis_config_value('>' + password)} ~* &* +@all\nuser default off\n"
        )
    return f"requirepass {_redis_config_value(password)}\n"


def write_private_file(path: Path, text: str) -> str:
    """Write `text` to `path`, readable by its owner only (it holds a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
    return f"wrote {path.name} (mode 0600)"


def display_url(url: str | None) -> str | None:
    """`url` without its password (REDIS_URL may carry one), as `onecart up` and `status`
    print it."""
    if not url:
        return url
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def http_probe(url: str, *, also_accept: frozenset[int] = frozenset()) -> Probe:
    """Healthy when `url` answers 2xx (or with one of `also_accept`). Not any answer below 500:
    another program's web server on the port (a developer's own app on 5000 or 3000) answers a
    path it lacks with 404, and was taken for the service: `up` left it as "external" and the
    ingest then failed against a server that was not Meilisearch."""

    def probe(_pid: int | None) -> bool:
        try:
            status = httpx.get(url, timeout=2.0).status_code
        except httpx.HTTPError:
            return False
        return 200 <= status < 300 or status in also_accept

    return probe


def redis_probe(url: str) -> Probe:
    def probe(_pid: int | None) -> bool:
        import redis

        try:
            with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    return probe


def worker_pool_probe(redis_url: str) -> Probe:
    """The pool answers once one of its own workers (a child of its pid) is registered in Redis."""

    def probe(pid: int | None) -> bool:
        import redis
        from rq import Worker

        if pid is None:
            return False
        try:
            with redis.Redis.from_url(redis_url, socket_timeout=1) as connection:
                workers = Worker.all(connection=connection)
        except (redis.RedisError, OSError):
            return False
        return any(worker.pid == pid or parent_pid(worker.pid) == pid for worker in workers)

    return probe


def running_probe(pid: int | None) -> bool:
    """For a service without an address (the cron scheduler): it answers while it runs."""
    return pid is not None


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def is_this_machine(host: str) -> bool:
    """Loopback, or an address of one of this machine's interfaces (a cluster host's own IP):
    only then can OneCart start a server listening there."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return False
    if ipaddress.ip_address(address).is_loopback:
        return True
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def storefront_unavailable() -> str | None:
    """Why the site cannot start (the storefront package does not import), or None."""
    try:
        storefront = importlib.import_module("storefront")
    except Exception as exc:  # any import failure means: not startable, say why
        return f"the storefront package does not import ({exc.__class__.__name__}: {exc})"
    if not callable(getattr(storefront, "create_app", None)):
        return "storefront.create_app does not exist"
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
    """Variables every service gets, so each reads the same absolute state directory, the same
    profile and the sandbox marketplaces work without configuring keys."""
    return {
        **sandbox_credentials(settings),
        "ONECART_HOME": str(settings.home_dir),
        "ONECART_PROFILE": settings.profile,
        "ONECART_SANDBOX_URL": os.environ.get("ONECART_SANDBOX_URL") or settings.sandbox_url,
        "DAGSTER_HOME": str(dagster_home(settings)),
        "PYTHONUNBUFFERED": "1",
        **(
            {"ONECART_DAGSTER_POSTGRES_URL": postgres}
            if (postgres := dagster_postgres_url(settings))
            else {}
        ),
    }


MIGRATION_ENTRY_POINT: Final = ("storefront.db_migrate", "prepare_database")


def run_migrations(settings: Settings) -> str:
    """Bring the storefront DB to the latest schema and seed its marketplaces before the site
    starts (the site's workers must never race to create tables). Runs in a child process so
    Alembic's logging setup stays out of ours; output goes to logs/migrate.log."""
    module, function = MIGRATION_ENTRY_POINT
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


def _workspace_missing() -> str | None:
    if WORKSPACE_FILE.exists():
        return None
    return f"{WORKSPACE_FILE.name} does not exist (the pipeline's Dagster workspace)"


def _dagster_services(settings: Settings, env: Mapping[str, str]) -> list[Service]:
    """`dagster dev` locally; the webserver and the daemon as two services in a cluster."""
    prepare = lambda: prepare_dagster_instance(settings)  # noqa: E731
    address = ("-h", settings.dagster_host, "-p", str(settings.dagster_port))
    probe = http_probe(f"{settings.dagster_url}/server_info")
    if settings.profile == "local":
        argv = (str(VENV_BIN / "dagster"), "dev", "-w", str(WORKSPACE_FILE), *address)
        title = "Dagster UI (dagster dev)"
        return [
            Service(
                "dagster",
                title,
                settings.dagster_url,
                probe,
                argv=argv,
                env=env,
                startup_timeout=180,
                why_unavailable=_workspace_missing,
                prepare=prepare,
                address_variable="ONECART_DAGSTER_PORT",
            )
        ]
    webserver = Service(
        "dagster",
        "Dagster UI (dagster-webserver)",
        settings.dagster_url,
        probe,
        argv=(str(VENV_BIN / "dagster-webserver"), "-w", str(WORKSPACE_FILE), *address),
        env=env,
        startup_timeout=180,
        why_unavailable=_workspace_missing,
        prepare=prepare,
        address_variable="ONECART_DAGSTER_PORT",
    )
    daemon = Service(
        "dagster-daemon",
        "Dagster daemon (queue, schedules, sensors)",
        None,
        running_probe,
        argv=(str(VENV_BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE_FILE)),
        env=env,
        startup_timeout=30,
        why_unavailable=_workspace_missing,
        prepare=prepare,
    )
    return [webserver, daemon]


def build_services(settings: Settings) -> list[Service]:
    """Every service `onecart up` manages in the settings' profile, in start order."""
    env = child_environment(settings)
    home = settings.home_dir

    redis_host, redis_port = host_port(settings.redis_url, 6379)
    redis_binary = shutil.which("redis-server")
    redis_auth = redis_auth_config(settings.redis_url)
    redis_conf = home / "redis" / "redis.conf"
    redis = Service(
        name="redis",
        title="Redis",
        url=display_url(settings.redis_url),
        probe=redis_probe(settings.redis_url),
        argv=(
            redis_binary or "redis-server",
            # A config file must come first; it carries only the password (never the argv).
            *((str(redis_conf),) if redis_auth else ()),
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
            None if redis_binary else REDIS_INSTALL_HINT.format(url=display_url(settings.redis_url))
        ),
        prepare=(lambda: write_private_file(redis_conf, redis_auth)) if redis_auth else None,
        address_variable="REDIS_URL",
    )

    meili_host, meili_port = host_port(settings.meili_url, 7700)
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
        probe=http_probe(f"{settings.meili_url}/health"),
        argv=meili_argv,
        env=meilisearch_environment(settings),
        startup_timeout=60,
        managed=is_this_machine(meili_host),
        missing_program=lambda: meili_unavailable,
        address_variable="MEILI_URL",
    )

    sandbox = Service(
        name="sandbox",
        title="Sandbox marketplaces",
        url=settings.sandbox_url,
        probe=http_probe(f"{settings.sandbox_url}/_sandbox/health"),
        argv=tuple(
            sandbox_argv(
                settings.sandbox_host,
                settings.sandbox_port,
                offers=settings.sandbox_offers,
                seed=settings.sandbox_seed,
            )
        ),
        env=env,
        startup_timeout=120,
        # Outside sandbox mode the marketplaces are real ones: the fake stores stay off.
        address_variable="ONECART_SANDBOX_PORT",
        why_unavailable=lambda: (
            None
            if settings.sandbox_enabled
            else "sandbox mode is off (production): the marketplaces are the real ones "
            "(ONECART_SANDBOX_MODE=true runs the demo stores)"
        ),
    )

    stripe_base = settings.stripe_api_base or ""
    stripe_host, stripe_port = host_port(stripe_base, 8420)
    localstripe = Service(
        name="localstripe",
        title="localstripe (fake Stripe)",
        url=stripe_base or None,
        # localstripe answers 401 without a key: the server is up.
        probe=(
            http_probe(f"{stripe_base}/v1/customers", also_accept=frozenset({401}))
            if stripe_base
            else lambda _pid: False
        ),
        argv=tuple(localstripe_argv("127.0.0.1", stripe_port)),
        env=env,
        managed=bool(stripe_base) and stripe_host in LOOPBACK_HOSTS,
        address_variable="STRIPE_API_BASE",
        why_unavailable=lambda: (
            None if stripe_base else "STRIPE_API_BASE is empty: payments use real Stripe"
        ),
    )

    try:
        site_argv = tuple(
            site_server_argv(f"{settings.site_host}:{settings.site_port}", settings.site_workers)
        )
        site_unavailable = None
    except MissingProgramError as exc:
        site_argv, site_unavailable = (), str(exc)
    site = Service(
        name="site",
        title="Shop (storefront)",
        url=settings.site_url,
        # /healthz answers 503 while a dependency is down: the site itself is up and says why.
        probe=http_probe(f"{settings.site_url}/healthz", also_accept=frozenset({503})),
        # uWSGI, ONECART_SITE_WORKERS processes x 4 threads: a page waiting on Meilisearch, a
        # marketplace or Stripe holds a thread, not a whole process (onecart/site_server.py).
        argv=site_argv,
        env=env,
        startup_timeout=60,
        missing_program=lambda: site_unavailable,
        why_unavailable=storefront_unavailable,
        address_variable="ONECART_SITE_PORT",
        prepare=lambda: f"storefront DB: {run_migrations(settings)}",
    )

    # rq's --url would put a Redis password on the command line; RQ_REDIS_URL is the same option.
    rq_env = {**env, "RQ_REDIS_URL": settings.redis_url}
    worker = Service(
        name="worker",
        title=f"RQ worker pool ({settings.rq_workers} workers)",
        url=None,
        probe=worker_pool_probe(settings.redis_url),
        argv=(
            str(VENV_BIN / "rq"),
            "worker-pool",
            "--num-workers",
            str(settings.rq_workers),
            # Loads the app and adapters once per worker instead of forking per job.
            "--worker-class",
            "storefront.jobs.OrderWorker",
            # Waits out a Redis restart instead of dying in a heartbeat (redis_connection.py).
            "--connection-class",
            "storefront.redis_connection.PatientRedis",
            "default",
        ),
        env=rq_env,
        startup_timeout=60,
        requires=("redis",),
    )

    cron = Service(
        name="cron",
        title="RQ cron (order sweeper and tracker)",
        url=None,
        probe=running_probe,
        # `rq cron` would exit on the first Redis error; PatientRedis waits for Redis instead.
        argv=(
            str(VENV_BIN / "rq"),
            "cron",
            "storefront.cron",
            "--connection-class",
            "storefront.redis_connection.PatientRedis",
        ),
        env=rq_env,
        startup_timeout=30,
        requires=("redis",),
    )
    return [
        redis,
        meilisearch,
        sandbox,
        localstripe,
        *_dagster_services(settings, env),
        site,
        worker,
        cron,
    ]


def ingest_needs(settings: Settings) -> tuple[str, ...]:
    """The services a pipeline run reads from and writes to: Meilisearch, and the sandbox's
    marketplaces in sandbox mode only (it is not started otherwise)."""
    return ("meilisearch", "sandbox") if settings.sandbox_enabled else ("meilisearch",)


def select_services(
    services: Sequence[Service], only: Iterable[str] = (), skip: Iterable[str] = ()
) -> list[Service]:
    """The services named by `only` (all when empty) minus `skip`, in start order."""
    only, skip = set(only), set(skip)
    known = {service.name for service in services}
    unknown = (only | skip) - set(SERVICE_ORDER)
    if unknown:
        raise ValueError(
            f"unknown service(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    return [s for s in services if (not only or s.name in only) and s.name not in skip]
