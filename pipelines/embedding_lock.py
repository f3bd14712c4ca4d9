"""One offer embeddings run at a time, however it was launched.

Dagster's run queue launches one embeddings run at a time (the job's `onecart/one_at_a_time`
tag, dagster.yaml), but `onecart ingest` without the Dagster UI runs the job in its own process,
outside the queue, and so does a second ingest in another terminal: beside a run the daemon had
launched, both embedded every text. The asset holds this lock for its whole step instead, so a
second run waits for the first and then embeds only what the first did not. An flock: the
operating system releases it when its holder dies, whatever killed it (a Dagster concurrency
slot of an in-process run that is SIGKILLed stays claimed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

POLL_S: Final = 1.0


def embeddings_lock_path(pipeline_db_path: str | Path) -> Path:
    """The lock beside the warehouse file whose embeddings it guards."""
    path = Path(pipeline_db_path)
    return path.with_name(path.name + ".offer_embeddings.lock")


@contextlib.contextmanager
def one_embeddings_run_at_a_time(
    lock_path: Path, holder: str, *, on_wait: Callable[[str], None]
) -> Iterator[None]:
    """Hold the embeddings lock, writing `holder` (the run) into it; while another run holds it,
    tell `on_wait` who does, once, and wait for it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another run"
            on_wait(other)
            # Polled, not blocking: a cancelled run's interrupt lands between two tries.
            while True:
                time.sleep(POLL_S)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
