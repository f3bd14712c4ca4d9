"""Start the checkout tests' `rq worker` and `rq cron` processes without paying their imports each
time: a fork server that has imported RQ's command line and the order code once forks a child per
process, and the child runs RQ's own `rq` command with the test's argv and environment.

Each `rq worker -w storefront.jobs.OrderWorker` or `rq cron storefront.cron` started from scratch
spent 1.4-2.1 s of CPU importing Flask, SQLAlchemy, httpx, Stripe and the order code, and ~0.6 s
more in the interpreter's finalization when stopped; the checkout and fault tests start one to
three of them per test, in both database passes. The child is still a process of its own, in a
session of its own (its pid leads its process group, as with processes.start_process), writing
to the same log file, with exactly the argv and environment it was given; RQ's command line
parses that argv and runs the same worker, scheduler and cron code. Nothing is configured before
the fork: settings are read by the child (the server imports modules only; the order code reads
no configuration at import, house style rule 2), and the child's caches of settings are cleared.
`storefront.cron` is never imported here: it reads its policy at import, and `rq cron` imports it
in the child. What differs from a fresh interpreter: the child leaves by os._exit after RQ's
command returned and the atexit handlers ran (stdout and stderr flushed), without the module
teardown a fresh interpreter would do.

Protocol: one JSON line per request on a Unix socket ({argv, env, cwd, log_path}); the answer is
the child's pid. The server ends when the test process that started it closes its stdin (or
dies), and reaps its children as they end.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from onecart import processes
from onecart.settings import REPO_ROOT, Settings

# The console script both commands run (a path under the venv's bin/), handled in the child.
RQ_SCRIPT = str(processes.VENV_BIN / "rq")


class ForkServer:
    """The test process's handle on its fork server (started on first use, one per process)."""

    def __init__(self, settings: Settings) -> None:
        # Under /tmp: a Unix socket's path is limited to 107 bytes, a checkout's var/ is not.
        self.socket_path = Path(tempfile.mkdtemp(prefix="onecart-rq-forkserver-")) / "socket"
        log = open(processes.log_dir(settings) / "rq-forkserver.log", "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.rq_forkserver", str(self.socket_path)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(REPO_ROOT),
                start_new_session=True,
            )
        finally:
            log.close()
        self._lock = threading.Lock()

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> processes.ManagedProcess:
        """Fork `argv` (an `rq` command) with `env` over the current environment, like
        processes.start_process; returns once the child exists."""
        request = {
            "argv": list(argv),
            "env": {**os.environ, **env},
            "cwd": str(REPO_ROOT),
            "log_path": str(log_path),
        }
        with self._lock, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(120)
            self._connect(connection)
            connection.sendall(json.dumps(request).encode() + b"\n")
            answer = connection.makefile("rb").readline()
        if not answer:
            raise processes.ProcessError(f"the rq fork server did not start {name}")
        return processes.ManagedProcess(name=name, pid=int(answer), log_path=log_path)

    def _connect(self, connection: socket.socket) -> None:
        """Connect, waiting for the server to listen (it imports for a few seconds first)."""
        import time

        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise processes.ProcessError("the rq fork server exited")
            try:
                connection.connect(str(self.socket_path))
                return
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        """End the server (its children are stopped by their tests)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            processes.stop_pid(self.process.pid, timeout=5)
        self.socket_path.unlink(missing_ok=True)
        self.socket_path.parent.rmdir()


_SERVER: ForkServer | None = None


def start_rq_process(
    settings: Settings, name: str, argv: Sequence[str], *, env: Mapping[str, str]
) -> processes.ManagedProcess:
    """processes.start_process for an `rq` command, forked from this process's fork server."""
    global _SERVER
    if argv[0] != RQ_SCRIPT:
        raise ValueError(f"only {RQ_SCRIPT} commands are forked, not {argv[0]}")
    if _SERVER is None or _SERVER.process.poll() is not None:
        _SERVER = ForkServer(settings)
        atexit.register(_SERVER.close)
    return _SERVER.start(name, argv, env, processes.log_dir(settings) / f"{name}.log")


# --- The server ---------------------------------------------------------------------------------


def _reap_children(*_: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _run_child(request: dict) -> None:
    """In the forked child: become the `rq` command of `request`; never returns."""
    code = 1
    try:
        os.setsid()
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(number, signal.SIG_DFL if number != signal.SIGPIPE else signal.SIG_IGN)
        log = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from onecart.settings import get_settings

        get_settings.cache_clear()
        sys.argv = list(request["argv"])
        from rq.cli import main

        try:
            main(args=sys.argv[1:], prog_name="rq")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        atexit._run_exitfuncs()
    except BaseException:  # the child must never return into the server
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # leaving anyway
                stream.flush()
        os._exit(code)


def serve(socket_path: str) -> None:
    """Import what the commands need, then fork a child per request until stdin closes."""
    import importlib

    from sqlalchemy.orm import configure_mappers

    from adapters.registry import ADAPTER_KINDS

    # RQ's command line, the worker class and connection class the commands name, the order
    # code and every adapter module (what preload_order_code imports), the mappers configured.
    for module in ("rq.cli", "storefront.jobs", "storefront.redis_connection"):
        importlib.import_module(module)
    for target in ADAPTER_KINDS.values():
        importlib.import_module(target.split(":")[0])
    configure_mappers()
    assert threading.active_count() == 1, "no thread may run in a process that forks"

    signal.signal(signal.SIGCHLD, _reap_children)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(16)
    print(f"rq fork server ready on {socket_path}", flush=True)
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
            break  # the test process closed our stdin, or ended
        if listener not in ready:
            continue
        connection, _ = listener.accept()
        with connection:
            request = json.loads(connection.makefile("rb").readline())
            sys.stdout.flush()  # nothing of the server's output may be written twice
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                connection.close()
                listener.close()
                _run_child(request)
            connection.sendall(f"{pid}\n".encode())
    listener.close()


if __name__ == "__main__":
    serve(sys.argv[1])
