"""supervisord event listener: counts each program's unexpected exits and stops what is left of
the dead program's process group.

supervisord starts every program in a process group of its own and restarts it when it dies, but
only signals the whole group when it stops a program itself. When a program's main process dies
(killed, crashed), its children would live on as orphans: a worker pool's work horses, uWSGI's
workers. This listener kills that old group (the new process has a group of its own), and keeps
the count `onecart status` shows in a JSON file.

    python -m onecart.restart_listener $ONECART_HOME/run/restarts.json
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from supervisor import childutils

ORPHAN_GRACE_SECONDS = 5.0


def stop_orphaned_group(pgid: int) -> None:
    """SIGTERM the dead program's group, SIGKILL it if anything is left after a grace time."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return


def record_exit(path: Path, name: str) -> None:
    try:
        counts = json.loads(path.read_text())
    except (OSError, ValueError):
        counts = {}
    counts[name] = int(counts.get(name, 0)) + 1
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(counts, sort_keys=True))
    os.replace(temporary, path)


def main(argv: list[str]) -> int:
    path = Path(argv[1])
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        if headers.get("eventname") == "PROCESS_STATE_EXITED":
            fields, _ = childutils.eventdata(payload + "\n")
            name = fields.get("processname", "")
            record_exit(path, name)
            pid = int(fields.get("pid") or 0)
            if pid > 1:
                stop_orphaned_group(pid)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
