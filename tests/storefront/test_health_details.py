"""Who sees /healthz's error details (they name internal hosts, ports and database users).

Security review, eighth pass: the details went to any client whose address looked private, and
behind a proxy with ONECART_TRUSTED_PROXIES left at 0 every visitor has the proxy's address. In
production the details now need the operator's token (ONECART_HEALTH_TOKEN, as a bearer token),
from any address; without it every client gets each check's status, and the failing checks'
details go to the site's log. Development keeps the address rule (a laptop, `onecart status`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from onecart import processes
from onecart.production import InsecureSettingsError
from onecart.settings import get_settings
from storefront import create_app
from tests.storefront.test_production_mode import production  # noqa: F401  (a fixture)

HEALTH_TOKEN = "hz_9c1f5e2b7a4d8e0f3b6c9a2d5e8f1b4c"
PROXY_AND_LOOPBACK = ["10.0.0.2", "127.0.0.1", "::1", "93.184.215.14"]


@pytest.fixture
def unreachable_meili() -> str:
    return f"http://127.0.0.1:{processes.free_port()}"


def _site(storefront_db_url: str, meili_url: str) -> Flask:
    get_settings.cache_clear()
    return create_app({"DATABASE_URL": storefront_db_url, "TESTING": True, "MEILI_URL": meili_url})


def _meili_check(
    app: Flask, address: str, headers: dict[str, str] | None = None
) -> dict[str, object]:
    answer = app.test_client().get(
        "/healthz", environ_base={"REMOTE_ADDR": address}, headers=headers or {}
    )
    assert answer.status_code == 503
    return answer.get_json()["checks"]["meilisearch"]


@pytest.mark.parametrize("address", PROXY_AND_LOOPBACK)
def test_in_production_no_address_gets_the_details_without_the_token(
    production: pytest.MonkeyPatch,  # noqa: F811
    storefront_db_url: str,
    unreachable_meili: str,
    address: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _site(storefront_db_url, unreachable_meili)
    with caplog.at_level(logging.WARNING, logger="storefront.health.routes"):
        check = _meili_check(app, address)
    assert check == {"status": "error"}
    # The operator reads why in the site's log instead (credentials redacted as in the answer).
    [line] = [r.getMessage() for r in caplog.records if r.name == "storefront.health.routes"]
    assert "meilisearch" in line and "ConnectError" in line


@pytest.mark.parametrize("address", PROXY_AND_LOOPBACK)
def test_in_production_the_operators_token_gets_the_details_from_anywhere(
    production: pytest.MonkeyPatch,  # noqa: F811
    storefront_db_url: str,
    unreachable_meili: str,
    address: str,
) -> None:
    production.setenv("ONECART_HEALTH_TOKEN", HEALTH_TOKEN)
    app = _site(storefront_db_url, unreachable_meili)
    check = _meili_check(app, address, {"Authorization": f"Bearer {HEALTH_TOKEN}"})
    assert "ConnectError" in str(check["detail"])
    for wrong in (f"Bearer {HEALTH_TOKEN[:-1]}x", HEALTH_TOKEN, "Bearer ", f"Basic {HEALTH_TOKEN}"):
        assert _meili_check(app, address, {"Authorization": wrong}) == {"status": "error"}


def test_a_production_site_refuses_a_short_health_token(
    production: pytest.MonkeyPatch,  # noqa: F811
    storefront_db_url: str,
    unreachable_meili: str,
) -> None:
    production.setenv("ONECART_HEALTH_TOKEN", "short-token")
    with pytest.raises(InsecureSettingsError, match="ONECART_HEALTH_TOKEN") as refused:
        _site(storefront_db_url, unreachable_meili)
    assert "short-token" not in str(refused.value)


@pytest.fixture
def development_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ONECART_HEALTH_TOKEN", HEALTH_TOKEN)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_in_development_the_private_network_and_the_token_get_the_details(
    development_token: None, storefront_db_url: str, unreachable_meili: str
) -> None:
    app = _site(storefront_db_url, unreachable_meili)
    assert not get_settings().is_production
    assert "ConnectError" in str(_meili_check(app, "10.0.0.2")["detail"])
    assert _meili_check(app, "93.184.215.14") == {"status": "error"}
    with_token = _meili_check(app, "93.184.215.14", {"Authorization": f"Bearer {HEALTH_TOKEN}"})
    assert "ConnectError" in str(with_token["detail"])


def test_a_dependency_down_is_logged_once_then_reminded_and_its_recovery_told(
    storefront_db_url: str,
    unreachable_meili: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A load balancer probes every few seconds: a warning per probe buried the log."""
    from storefront.health import routes

    clock = [1000.0]
    monkeypatch.setattr(routes.time, "monotonic", lambda: clock[0])
    app = _site(storefront_db_url, unreachable_meili)

    def meili_lines() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "storefront.health.routes" and "meilisearch" in r.getMessage()
        ]

    with caplog.at_level(logging.INFO, logger="storefront.health.routes"):
        for _ in range(5):
            _meili_check(app, "93.184.215.14")
            clock[0] += 10
        assert len(meili_lines()) == 1 and "ConnectError" in meili_lines()[0]

        clock[0] += routes.FAILURE_REMINDER_SECONDS
        _meili_check(app, "93.184.215.14")
        assert len(meili_lines()) == 2

        # Meilisearch answers again: one info line, then nothing per probe.
        monkeypatch.setitem(routes.CHECKS, "meilisearch", lambda: "available")
        for _ in range(3):
            app.test_client().get("/healthz", environ_base={"REMOTE_ADDR": "93.184.215.14"})
        assert meili_lines()[2:] == ["healthz: meilisearch: answers again"]
