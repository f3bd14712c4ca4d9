"""An idle order worker stops at once on SIGTERM, as `onecart down` sends it (a real `rq worker`
process against the test Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

from commerce.lease_renewal import renewed_while_held
from onecart.settings import REPO_ROOT

# Bits of /proc/<pid>/task/<tid>/status SigBlk.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _signal_mask(status_path: str, field: str) -> int:
    for line in Path(status_path).read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in {status_path}")


def _blocked(pid: int, tid: int) -> int:
    return _signal_mask(f"/proc/{pid}/task/{tid}/status", "SigBlk")


def _catches_sigterm(pid: int) -> bool:
    """RQ logs "Listening on" in its bootstrap and installs its signal handlers just after it: a
    SIGTERM sent in between meets the default action (the process dies with -15, as CI saw once).
    The process's SigCgt says when the handler is in place."""
    return bool(_signal_mask(f"/proc/{pid}/status", "SigCgt") & (1 << (signal.SIGTERM - 1)))


def _wait_for(check, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    """A hang guard, not a speed requirement."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_an_idle_order_worker_takes_sigterm_in_its_main_thread(tmp_path: Path) -> None:
    """The worker waits for jobs in a blocking Redis read on its main thread, and listens for
    commands on a pubsub thread. A stop signal the kernel handed to the pubsub thread left the
    main thread blocked for up to 405 s (RQ's dequeue timeout), so `onecart down` waited out
    supervisord's 15 s and SIGKILLed the pool (two `down worker` in three). Only the main thread
    may take SIGINT and SIGTERM."""
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "ONECART_HOME": str(tmp_path / "home"),
        "RQ_REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rq.cli",
                "worker",
                "--worker-class",
                "storefront.jobs.OrderWorker",
                "--connection-class",
                "storefront.redis_connection.PatientRedis",
                f"test-stop-{uuid.uuid4().hex[:8]}",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(lambda: "Listening on" in log_path.read_text(), "the worker to listen")
        threads = [int(tid) for tid in os.listdir(f"/proc/{worker.pid}/task")]
        others = [tid for tid in threads if tid != worker.pid]
        assert others, "the worker runs its pubsub thread"
        for tid in others:
            mask = _blocked(worker.pid, tid)
            for stop in STOP_SIGNALS:
                assert mask & (1 << (stop - 1)), f"thread {tid} takes {stop.name}"

        _wait_for(lambda: _catches_sigterm(worker.pid), "the worker to install its handlers")
        worker.send_signal(signal.SIGTERM)
        _wait_for(lambda: worker.poll() is not None, "the worker to stop")
        assert worker.returncode == 0
        assert "warm shut down requested" in log_path.read_text()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def test_a_lease_renewal_thread_leaves_stop_signals_to_the_main_thread() -> None:
    """A placement's lease is renewed from a thread of its own, which may outlast its job by a
    stuck renewal while the worker is back in its Redis read: it must not take the stop."""
    renewing = threading.Event()

    def renew() -> bool:
        renewing.set()
        return True

    with renewed_while_held(renew, lease=timedelta(seconds=0.2), what="test"):
        _wait_for(renewing.is_set, "the first renewal")
        [renewer] = [thread for thread in threading.enumerate() if thread.name == "lease test"]
        mask = _blocked(os.getpid(), renewer.native_id or 0)
    for stop in STOP_SIGNALS:
        assert mask & (1 << (stop - 1)), f"the renewal thread takes {stop.name}"
