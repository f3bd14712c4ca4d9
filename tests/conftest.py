"""Shared fixtures: the real services every integration test talks to.

The whole session gets its own ONECART_HOME under pytest's temporary directory, its own
Meilisearch server and sandbox on free loopback ports, and its own Redis database number, so a
test run never touches a developer's `make run` state.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from onecart import processes
from onecart.settings import Settings, get_settings

# Small but realistic: ≈ 200 offers per marketplace keeps a full materialization quick.
TEST_SANDBOX_OFFERS = 1200
TEST_SANDBOX_SEED = 7


# A tmpfs for the run's state (see state_root), when it has room for a pass's: its peak is
# under 1 GiB (the rest pass, with pipeline homes and whole `onecart up` homes).
TMPFS = Path("/dev/shm")
TMPFS_MIN_FREE_BYTES = 3 * 2**30


def state_root(rootpath: Path) -> Path:
    """Where test processes keep their state: ONECART_TEST_RUNS if set, else a tmpfs with room
    to spare, else the checkout's var/test-runs.

    On a disk every durable write waits for the disk: Dagster's SQLite run and event storage
    commits (and reopens, checkpoints and closes) its database for each event of a run, at
    3-10 ms a sync on a small VM's disk, and the three passes of `make test` queue on that one
    disk; Meilisearch and DuckDB sync their writes too. On a tmpfs a sync is free, and the
    same programs, files and SQL run as before."""
    chosen = os.environ.get("ONECART_TEST_RUNS")
    if chosen:
        return Path(chosen)
    try:
        roomy = os.access(TMPFS, os.W_OK) and shutil.disk_usage(TMPFS).free >= TMPFS_MIN_FREE_BYTES
    except OSError:
        roomy = False
    if roomy:
        return TMPFS / f"onecart-test-runs-{os.getuid()}"
    return rootpath / "var" / "test-runs"


def _sweep_finished_runs(root: Path) -> None:
    """Remove what test processes that have ended left in a tmpfs root (their memory)."""
    for run in root.iterdir() if root.is_dir() else ():
        if run.name.isdigit() and not processes.pid_alive(int(run.name)):
            shutil.rmtree(run, ignore_errors=True)


TEST_RUN_BASE = pytest.StashKey[Path]()
SESSION_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Point every setting at throw-away state before any test module reads settings."""
    root = state_root(Path(config.rootpath))
    if root.is_relative_to(TMPFS):
        _sweep_finished_runs(root)
    base = root / str(os.getpid())
    base.mkdir(parents=True, exist_ok=True)
    if config.option.basetemp is None:  # tmp_path beside it (`onecart up` homes, databases)
        config.option.basetemp = str(base / "tmp")
    os.environ["ONECART_HOME"] = str(base / "home")
    config.stash[TEST_RUN_BASE] = base
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ.pop("ONECART_SANDBOX_URL", None)
    get_settings.cache_clear()
    _reuse_url_builders()
    _reuse_compiled_templates()
    _cheap_password_hashing()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[SESSION_FAILED] = exitstatus not in (0, pytest.ExitCode.NO_TESTS_COLLECTED)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A passing run's state on a tmpfs is removed (it holds memory); a failing run's is kept
    for its logs until the next run starts (_sweep_finished_runs)."""
    base = config.stash.get(TEST_RUN_BASE, None)
    if base is None or not base.is_relative_to(TMPFS):
        return
    if config.stash.get(SESSION_FAILED, True):
        print(f"\nThis run's services, logs and tmp_path: {base} (removed by the next run)")
    else:
        shutil.rmtree(base, ignore_errors=True)


# argon2id as production hashes passwords (argon2-cffi's defaults: 3 passes over 64 MiB, 4 lanes):
# about 0.25 s of CPU per hash or check, and the suite signs in or registers shoppers a few
# thousand times (every checkout test does both), so it was the largest single cost of CI's
# passes. The tests run on argon2id with the smallest parameters instead; the ones about the
# parameters themselves take `production_password_hashing`.
PRODUCTION_PASSWORD_HASHER: Any = None


def _cheap_password_hashing() -> None:
    global PRODUCTION_PASSWORD_HASHER
    from argon2 import PasswordHasher

    from commerce import accounts

    if PRODUCTION_PASSWORD_HASHER is None:
        PRODUCTION_PASSWORD_HASHER = accounts._hasher
    accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def production_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed (and their hashes judged for an upgrade) with production's argon2
    parameters, for the tests about those parameters."""
    from commerce import accounts

    monkeypatch.setattr(accounts, "_hasher", PRODUCTION_PASSWORD_HASHER)


def _reuse_url_builders() -> None:
    """Let every Flask app of the run share werkzeug's generated URL builders.

    Most tests create an app of their own (create_app), and werkzeug writes, as Python source,
    and compiles two builder functions for each of the site's ~400 URL rules when an app
    registers them: three quarters of create_app's time, repeated by every test. The builder is
    a pure function of the rule's text, its parsed parts, its defaults and their converters
    (it reads the rule's converters through its `self` argument when called), so one compiled
    for an identical rule of an earlier app is the same function; routing, URL building and
    every page are unchanged. Only this test process does it: the servers and workers the tests
    start build their own."""
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder
    if getattr(compile_builder, "reused", False):
        return
    builders: dict[tuple[Any, ...], Any] = {}

    def converter_key(converter: Any) -> tuple[Any, ...]:
        settings = sorted((k, repr(v)) for k, v in vars(converter).items() if k != "map")
        return (type(converter).__module__, type(converter).__qualname__, *settings)

    def reused(self: Rule, append_unknown: bool = True) -> Any:
        key = (
            append_unknown,
            self.rule,
            tuple(self._trace),
            tuple(sorted((k, repr(v)) for k, v in (self.defaults or {}).items())),
            tuple(sorted((k, converter_key(c)) for k, c in self._converters.items())),
        )
        builder = builders.get(key)
        if builder is None:
            builder = builders[key] = compile_builder(self, append_unknown)
        return builder

    reused.reused = True  # type: ignore[attr-defined]
    Rule._compile_builder = reused  # type: ignore[method-assign]


def _callable_key(value: Any) -> Any:
    """A callable by what it is (its function's module and name), not by the object: Flask's
    autoescape choice is a method bound to each app."""
    function = getattr(value, "__func__", value)
    if callable(function):
        return (getattr(function, "__module__", None), getattr(function, "__qualname__", None))
    return value


def _compile_settings(environment: Any) -> tuple[Any, ...]:
    """Everything of a Jinja environment that the code it compiles depends on: the code
    generator, the syntax, autoescaping, finalize, extensions, and each filter's and test's
    name with what it is passed (the compiler writes that into the call)."""
    from jinja2.utils import _PassArg

    def passed(functions: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted((name, str(_PassArg.from_obj(f))) for name, f in functions.items()))

    return (
        _callable_key(environment.code_generator_class),
        _callable_key(environment.template_class),
        _callable_key(environment.autoescape),
        _callable_key(environment.finalize),
        environment.is_async,
        environment.optimized,
        tuple(sorted(environment.extensions)),
        environment.block_start_string,
        environment.block_end_string,
        environment.variable_start_string,
        environment.variable_end_string,
        environment.comment_start_string,
        environment.comment_end_string,
        environment.line_statement_prefix,
        environment.line_comment_prefix,
        environment.trim_blocks,
        environment.lstrip_blocks,
        environment.newline_sequence,
        environment.keep_trailing_newline,
        passed(environment.filters),
        passed(environment.tests),
    )


def _reuse_compiled_templates() -> None:
    """Let every Flask app of the run share the Python code Jinja compiles its templates into.

    Each test's app has a Jinja environment of its own, and each compiled every template it
    rendered from its source again: about 40% of the CPU of the storefront's page tests
    (cProfile of three storefront modules). Jinja's bytecode cache is the documented way to
    reuse compiled templates; this one keeps the code objects in memory, keyed by the template's
    name, file, source checksum and the environment's compile settings (_compile_settings), so an
    app whose templates or settings differ compiles its own. Rendering is Jinja's own, on each
    app's environment, globals and filters. Only this test process does it, like
    _reuse_url_builders."""
    import flask
    from jinja2.bccache import Bucket, BytecodeCache

    create_environment = flask.Flask.create_jinja_environment
    if getattr(create_environment, "reused", False):
        return

    class CompiledTemplates(BytecodeCache):
        def __init__(self) -> None:
            self.codes: dict[tuple[Any, ...], Any] = {}

        def load_bytecode(self, bucket: Bucket) -> None:
            key = (_compile_settings(bucket.environment), bucket.key, bucket.checksum)
            bucket.code = self.codes.get(key)

        def dump_bytecode(self, bucket: Bucket) -> None:
            key = (_compile_settings(bucket.environment), bucket.key, bucket.checksum)
            self.codes[key] = bucket.code

    compiled = CompiledTemplates()

    def reused(self: flask.Flask) -> Any:
        environment = create_environment(self)
        environment.bytecode_cache = compiled
        return environment

    reused.reused = True  # type: ignore[attr-defined]
    flask.Flask.create_jinja_environment = reused  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


def _reset_settings(**env: str) -> Settings:
    os.environ.update(env)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def meili_server(settings: Settings) -> Iterator[str]:
    """A real Meilisearch server for the session; yields its URL (MEILI_URL is set to it)."""
    port = processes.free_port()
    data = settings.home_dir / "meili-test"
    data.mkdir(parents=True, exist_ok=True)
    proc = processes.start_meilisearch(
        settings, "meilisearch-test", data / "data.ms", f"127.0.0.1:{port}"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(f"{url}/health", timeout=60, process=proc)
        _reset_settings(MEILI_URL=url)
        yield url
    finally:
        processes.stop_pid(proc.pid)


@contextmanager
def serve_sandbox(settings: Settings, name: str = "sandbox-test") -> Iterator[str]:
    """A sandbox process over real HTTP on a free port, stopped afterwards; yields its URL."""
    port = processes.free_port()
    argv = [
        sys.executable,
        "-m",
        "sandbox",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--offers",
        str(TEST_SANDBOX_OFFERS),
        "--seed",
        str(TEST_SANDBOX_SEED),
    ]
    proc = processes.start_process(settings, name, argv)
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(f"{url}/_sandbox/health", timeout=60, process=proc)
        yield url
    finally:
        processes.stop_pid(proc.pid)


@pytest.fixture(scope="session")
def sandbox_server(settings: Settings) -> Iterator[str]:
    """The sandbox marketplaces over real HTTP; yields the base URL (settings point at it)."""
    with serve_sandbox(settings) as url:
        port = url.rsplit(":", 1)[1]
        _reset_settings(ONECART_SANDBOX_PORT=port, ONECART_SANDBOX_HOST="127.0.0.1")
        yield url


@pytest.fixture
def sandbox_control(sandbox_server: str) -> Iterator[httpx.Client]:
    """A client for the sandbox's fault knobs; every knob is reset after the test. Its SSL
    context is the process's shared one (tests/loopback_http.py says why)."""
    from adapters.public_addresses import shared_ssl_context

    client = httpx.Client(base_url=sandbox_server, timeout=10, verify=shared_ssl_context())
    try:
        yield client
    finally:
        client.post("/_sandbox/reset")
        client.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[int, list[Any]]]:
    """A local SMTP server (aiosmtpd) on a free loopback port; yields (port, received messages)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Collect(Message):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    port = processes.free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()
