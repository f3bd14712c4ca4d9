"""The `python -m sandbox serve` command: it prints where it listens, serves, and stops cleanly on
SIGTERM; bad options are refused before anything starts."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx

from onecart import processes
from onecart.settings import REPO_ROOT


def test_serve_prints_its_address_and_stops_cleanly_on_sigterm() -> None:
    port = processes.free_port()
    argv = [
        sys.executable,
        "-m",
        "sandbox",
        "serve",
        "--port",
        str(port),
        "--offers",
        "60",
        "--seed",
        "3",
    ]
    argv += ["--knob", "shopwave.latency_ms=5", "--price-epoch", "2", "--quiet"]
    proc = subprocess.Popen(
        argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/_sandbox/health", timeout=30)
        knobs = httpx.get(f"http://127.0.0.1:{port}/_sandbox/knobs").json()
        assert knobs["shopwave"]["latency_ms"] == 5 and knobs["kiondo"]["latency_ms"] == 0
        assert {k["price_epoch"] for k in knobs.values()} == {2}
        # Reset returns to the command line's values, not to the built-in ones.
        httpx.post(f"http://127.0.0.1:{port}/_sandbox/knobs/shopwave", json={"latency_ms": 0})
        httpx.post(f"http://127.0.0.1:{port}/_sandbox/reset")
        assert (
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/knobs").json()["shopwave"]["latency_ms"]
            == 5
        )
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert f"listening on http://127.0.0.1:{port}" in output
    assert "shopwave" in output and "naijamall" in output
    assert "stopped" in output


def test_bad_knob_on_the_command_line_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "serve", "--knob", "shopwave.error_rate=9"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "error_rate" in result.stderr
