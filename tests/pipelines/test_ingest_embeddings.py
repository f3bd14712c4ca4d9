"""What `onecart ingest` says about the offer embeddings when it runs them itself (the Dagster
UI does not answer): hybrid search only when the embeddings ran."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import onecart.ingest_command
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
        "offer embeddings: skipped (switched off (ONECART_ASSISTANT_EMBEDDINGS=off)); "
        "the assistant uses keyword search"
    ) in out, out
