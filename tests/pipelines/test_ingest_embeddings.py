"""What `onecart ingest` says about the offer embeddings when it runs them itself (the Dagster
UI does not answer): hybrid search only when the embeddings ran."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import onecart.ingest_command
import pipelines.run
from onecart.settings import get_settings
from tests.pipelines.conftest import clear_settings_caches


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_embeddings_switched_off_are_reported_as_skipped_not_as_hybrid_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ONECART_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ONECART_DAGSTER_PORT", str(unused_port()))  # nothing answers there
    monkeypatch.setenv("ONECART_ASSISTANT_EMBEDDINGS", "off")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    clear_settings_caches()
    try:
        exit_code = onecart.ingest_command.start_offer_embeddings(get_settings())
    finally:
        clear_settings_caches()

    out = capsys.readouterr().out
    assert exit_code == 0
    assert "hybrid" not in out, out
    assert (
        "offer embeddings: skipped, switched off (ONECART_ASSISTANT_EMBEDDINGS=off); "
        "the assistant uses keyword search"
    ) in out, out


class AnswersServerInfo(BaseHTTPRequestHandler):
    """Stands where the Dagster UI listens: its health probe (GET /server_info) gets a 200."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        """The test's output stays the command's own."""


@pytest.fixture
def dagster_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AnswersServerInfo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_embeddings_switched_off_start_no_background_run_that_could_never_switch_search(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dagster_port: int,
) -> None:
    # With the Dagster UI up, ingest used to submit the run anyway and say "the assistant uses
    # keyword search until it finishes", though with embeddings off it never switches.
    monkeypatch.setenv("ONECART_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ONECART_DAGSTER_PORT", str(dagster_port))
    monkeypatch.setenv("ONECART_ASSISTANT_EMBEDDINGS", "off")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    launched: list[object] = []
    monkeypatch.setattr(pipelines.run, "launch_offer_embeddings", launched.append)
    clear_settings_caches()
    try:
        exit_code = onecart.ingest_command.start_offer_embeddings(get_settings())
    finally:
        clear_settings_caches()

    out = capsys.readouterr().out
    assert exit_code == 0
    assert launched == []
    assert "until it finishes" not in out, out
    assert (
        "offer embeddings: skipped, switched off (ONECART_ASSISTANT_EMBEDDINGS=off); "
        "the assistant uses keyword search"
    ) in out, out
