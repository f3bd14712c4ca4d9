"""The order workers write OneCart's INFO lines (placement, refunds, cancellations) as the site
does: one JSON line each on stderr (storefront.site_logging), none twice.

The workers build no Flask app, and rq configures only its own loggers (`rq.worker`, `rq.job`,
which do not propagate), so a `commerce.*` INFO line fell to Python's defaults (warnings and
worse) and was dropped. A real `rq worker` and a real `rq worker-pool` of OrderWorkers run a
job in burst mode against the test Redis; their output is read after they end by themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from rq import Queue

from onecart.settings import REPO_ROOT
from tests.ops.worker_log_jobs import log_as_a_placement_would

COMMANDS = {
    "worker": ["worker", "--burst", "--worker-class", "storefront.jobs.OrderWorker"],
    "worker-pool": [
        "worker-pool",
        "--burst",
        "--num-workers",
        "1",
        "--worker-class",
        "storefront.jobs.OrderWorker",
    ],
}


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_order_workers_info_lines_are_written_once_as_json(tmp_path: Path, command: str) -> None:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    queue_name = f"test-logging-{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex
    connection = redis.Redis.from_url(redis_url)
    try:
        Queue(queue_name, connection=connection).enqueue(log_as_a_placement_would, marker)
        env = {
            **os.environ,
            "ONECART_HOME": str(tmp_path / "home"),
            "RQ_REDIS_URL": redis_url,
            "PYTHONPATH": str(REPO_ROOT),
        }
        # Burst mode: the worker ends by itself once the queue is empty.
        done = subprocess.run(
            [sys.executable, "-m", "rq.cli", *COMMANDS[command], queue_name],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        Queue(queue_name, connection=connection).delete(delete_jobs=True)
        connection.close()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Job OK" in output or "Successfully completed" in output, output

    ours = [line for line in _json_lines(done.stderr) if marker in line.get("message", "")]
    assert [(line["logger"], line["level"]) for line in ours] == [
        ("commerce.placement", "info"),
        ("adapters.http_adapter", "info"),
    ]
    # Written once: not again by rq's handlers or a root handler, and httpx's stays unwritten.
    assert output.count(f"sub-order placed {marker}") == 1
    assert output.count(f"adapter line {marker}") == 1
    assert "HTTP Request" not in output
