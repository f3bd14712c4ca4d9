"""The site's real server (onecart/site_server.py: uWSGI) serving the app on a loopback port."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from onecart import processes
from onecart.settings import Settings
from onecart.site_server import site_server_argv
from storefront.db_migrate import upgrade_database


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
        # Each request's log line is written once its answer is sent (uWSGI closes the answer,
        # storefront/request_log.py): all 20, each with the id its answer carried.
        ids = {answer.headers["x-request-id"] for answer in answers}
        deadline = time.monotonic() + 10
        while True:
            log = server.log_path.read_text(errors="replace")
            if all(f'"request_id": "{request_id}"' in log for request_id in ids):
                break
            assert time.monotonic() < deadline, processes.tail(server.log_path)
            time.sleep(0.05)
    finally:
        processes.stop_pid(server.pid)
    assert not processes.pid_alive(server.pid)


def test_the_sites_info_lines_reach_its_log_once_as_json_under_uwsgi(tmp_path: Path) -> None:
    # uWSGI configures no Python logging: an INFO line of a logger without a handler of its own
    # (the Stripe webhook's outcome, storefront.webhooks.routes) was dropped in production.
    database_url = f"sqlite:///{tmp_path / 'storefront.db'}"
    upgrade_database(database_url)
    secret = f"whsec_{uuid.uuid4().hex}"
    settings = Settings(ONECART_HOME=tmp_path)
    port = processes.free_port()
    server = processes.start_process(
        settings,
        "site-under-test",
        site_server_argv(f"127.0.0.1:{port}", workers=1, threads=2),
        env={
            "ONECART_HOME": str(tmp_path),
            "DATABASE_URL": database_url,
            "STRIPE_WEBHOOK_SECRET": secret,
            "ONECART_ASSISTANT_WARM_UP": "0",
            "PYTHONPATH": os.pathsep.join(
                [str(processes.REPO_ROOT), os.environ.get("PYTHONPATH", "")]
            ),
        },
    )
    event_id = f"evt_{uuid.uuid4().hex[:16]}"
    body = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "customer.created",
            "created": int(time.time()),
            "data": {"object": {"id": "cus_logged", "object": "customer"}},
        }
    ).encode()
    timestamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/api/ping", timeout=60, process=server)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/stripe",
            content=body,
            headers={
                "Stripe-Signature": f"t={timestamp},v1={signature.hexdigest()}",
                "Content-Type": "application/json",
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["x-request-id"]
        deadline = time.monotonic() + 10
        while f'"request_id": "{request_id}"' not in server.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, processes.tail(server.log_path)
            time.sleep(0.05)
    finally:
        processes.stop_pid(server.pid)
    lines = [
        json.loads(line) for line in server.log_path.read_text().splitlines() if line[:1] == "{"
    ]
    outcomes = [line for line in lines if event_id in line["message"]]
    assert [(line["level"], line["logger"]) for line in outcomes] == [
        ("info", "storefront.webhooks.routes")
    ], processes.tail(server.log_path)
    assert outcomes[0]["message"].endswith("ignored: unhandled type")
    # The request's own line is written once too, not once per handler up the hierarchy.
    assert [line["request_id"] for line in lines if line.get("event") == "request"].count(
        request_id
    ) == 1
    log = server.log_path.read_text(errors="replace")
    assert secret not in log and signature.hexdigest() not in log


def _model_available() -> bool:
    from assistant.config import get_assistant_settings
    from assistant.embeddings import model_status

    return model_status(get_assistant_settings().model_package).available


@pytest.mark.skipif(not _model_available(), reason="the assistant's model is not installed")
def test_sigterm_stops_the_site_cleanly_after_its_workers_loaded_the_model(tmp_path: Path) -> None:
    # supervisord's stop: SIGTERM to uWSGI's master (and its group). A worker used to exit from
    # inside the signal handler through Py_Finalize, with torch loaded by the model preload:
    # one segfaulted ("got Segmentation Fault" in _PyModule_ClearDict), another hung, and
    # supervisord SIGKILLed the site after 15 s.
    settings = Settings(ONECART_HOME=tmp_path)
    port = processes.free_port()
    server = processes.start_process(
        settings,
        "site-under-test",
        site_server_argv(f"127.0.0.1:{port}", workers=2),
        env={
            "ONECART_HOME": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'storefront.db'}",
            "PYTHONPATH": os.pathsep.join(
                [str(processes.REPO_ROOT), os.environ.get("PYTHONPATH", "")]
            ),
        },
    )
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/api/ping", timeout=120, process=server)
        deadline = time.monotonic() + 180
        while server.log_path.read_text(errors="replace").count("Loading weights: 100%") < 2:
            assert time.monotonic() < deadline, processes.tail(server.log_path)
            time.sleep(0.5)
        for _ in range(8):  # the threads have served something
            assert httpx.get(f"http://127.0.0.1:{port}/api/ping", timeout=10).status_code == 200
        time.sleep(2)  # the preload's query embedding is done

        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        while processes.pid_alive(server.pid) and time.monotonic() - started < 30:
            time.sleep(0.1)
        took = time.monotonic() - started
    finally:
        processes.stop_pid(server.pid, timeout=5)
    log = server.log_path.read_text(errors="replace")
    assert "Segmentation Fault" not in log, log[-4000:]
    assert took < 10, log[-4000:]
    assert processes.group_members(server.pid) == []
