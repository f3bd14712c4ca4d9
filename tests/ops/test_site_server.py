"""The site's real server (onecart/site_server.py: uWSGI) serving the app on a loopback port."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from onecart import processes
from onecart.settings import Settings
from onecart.site_server import site_server_argv


def test_keep_alive_clients_are_told_to_reconnect_and_every_request_is_answered(
    tmp_path: Path,
) -> None:
    settings = Settings(ONECART_HOME=tmp_path)
    port = processes.free_port()
    server = processes.start_process(
        settings,
        "site-under-test",
        site_server_argv(f"127.0.0.1:{port}", workers=1, threads=2),
        env={
            "ONECART_HOME": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'storefront.db'}",
            "ONECART_ASSISTANT_WARM_UP": "0",
            "PYTHONPATH": os.pathsep.join(
                [str(processes.REPO_ROOT), os.environ.get("PYTHONPATH", "")]
            ),
        },
    )
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/api/ping", timeout=60, process=server)
        # One pooled client, as a browser keeps its connection: uWSGI closes each one after
        # its answer, and the answer says so, so the next request opens a new connection.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            answers = [client.get("/api/ping") for _ in range(20)]
        assert [answer.status_code for answer in answers] == [200] * 20
        assert {answer.headers["connection"] for answer in answers} == {"close"}
        assert answers[0].json() == {"ok": True}
    finally:
        processes.stop_pid(server.pid)
    assert not processes.pid_alive(server.pid)
