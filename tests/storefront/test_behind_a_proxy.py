"""The site behind a load balancer or reverse proxy (second security review).

docs/deploy.md puts the web hosts behind a load balancer; every request then comes from the
balancer's address. The per-client limits (login, sign-up, password reset, support, assistant)
counted them all as one client, so one visitor's failed sign-ins locked everybody out, and the
only remedy docs named (the Flask config `PROXY_FIX_X_FOR`) could not be set by an operator.
`ONECART_TRUSTED_PROXIES` (the number of proxies in front of the site) now sets it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from onecart.settings import get_settings
from tests.storefront.conftest import _empty_all_tables, _make_app

PROXY = "10.0.0.2"  # the load balancer: every request's socket address


@pytest.fixture
def proxied_app(
    monkeypatch: pytest.MonkeyPatch,
    storefront_db_url: str,
    rate_limit_prefix: str,
    unreachable_url: str,
) -> Iterator[Flask]:
    monkeypatch.setenv("ONECART_TRUSTED_PROXIES", "1")
    get_settings.cache_clear()
    try:
        yield _make_app(
            storefront_db_url,
            get_settings(),
            rate_limit_prefix,
            unreachable_url,
            LOGIN_LIMIT_PER_IP=3,
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        _empty_all_tables(storefront_db_url)


def _failed_login(app: Flask, forwarded_for: str) -> int:
    return (
        app.test_client()
        .post(
            "/login",
            data={"login": "nobody-here", "password": "wrong-password-1"},
            headers={"X-Forwarded-For": forwarded_for},
            environ_base={"REMOTE_ADDR": PROXY},
        )
        .status_code
    )


def test_sign_in_limits_count_the_client_the_proxy_names_not_the_proxy(
    proxied_app: Flask,
) -> None:
    assert proxied_app.config["PROXY_FIX_X_FOR"] == 1
    attacker = "203.0.113.10"
    assert [_failed_login(proxied_app, attacker) for _ in range(3)] == [422, 422, 422]
    assert _failed_login(proxied_app, attacker) == 429
    # A forged X-Forwarded-For does not help: the proxy appends the address it saw, and only
    # that last entry is trusted.
    assert _failed_login(proxied_app, f"198.51.100.7, {attacker}") == 429
    # Everybody else behind the same balancer still has their password checked (and refused).
    assert _failed_login(proxied_app, "203.0.113.20") == 422


def test_without_trusted_proxies_a_client_cannot_choose_its_address(app: Flask) -> None:
    assert app.config["PROXY_FIX_X_FOR"] == 0
    with app.test_request_context(
        "/", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": PROXY}
    ):
        from storefront.limits import client_address

        assert client_address() == PROXY
