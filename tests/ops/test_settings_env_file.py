"""Which `.env` every OneCart process reads: the checkout's, whatever directory it starts in.

The services `onecart up` starts run in the checkout; a command started elsewhere must see the
values they see. The environment still wins over the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import AssistantSettings
from onecart.settings import REPO_ROOT, Settings


def test_the_env_file_is_the_checkouts_for_every_settings_object() -> None:
    assert Path(Settings.model_config["env_file"]) == REPO_ROOT / ".env"
    assert Path(AssistantSettings.model_config["env_file"]) == REPO_ROOT / ".env"


def test_a_env_file_in_the_starting_directory_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ONECART_SITE_PORT", raising=False)
    monkeypatch.delenv("ONECART_ASSISTANT_SEMANTIC_RATIO", raising=False)
    (tmp_path / ".env").write_text("ONECART_SITE_PORT=4321\nONECART_ASSISTANT_SEMANTIC_RATIO=0.1\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().site_port != 4321
    assert AssistantSettings().semantic_ratio != 0.1


def test_the_environment_wins_over_the_checkouts_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout_env = tmp_path / "checkout.env"
    checkout_env.write_text("ONECART_SITE_PORT=4321\nONECART_SITE_HOST=0.0.0.0\n")
    monkeypatch.setitem(Settings.model_config, "env_file", str(checkout_env))
    monkeypatch.delenv("ONECART_SITE_HOST", raising=False)
    monkeypatch.setenv("ONECART_SITE_PORT", "4322")
    settings = Settings()
    assert settings.site_port == 4322
    assert settings.site_host == "0.0.0.0"
