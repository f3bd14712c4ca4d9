"""The site answers only to its own host names (eighth security review).

Werkzeug's trailing-slash redirect (`/admin` → `/admin/`) and every absolute URL the site built
from the request (`url_for(..., _external=True)`, public_url_for without ONECART_PUBLIC_URL) took
the host from the request's `Host` header: `GET /admin` with `Host: evil.example` answered
`308 Location: http://evil.example/admin/`, a redirect a cache in front of the site could keep
and serve to everybody. Flask's TRUSTED_HOSTS now comes from ONECART_TRUSTED_HOSTS; a request
naming another host is answered 400 and nothing is built from it. Loopback names are always
accepted (the health probe of `onecart up`, a developer's browser); production refuses to start
without the setting.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from onecart.production import InsecureSettingsError, production_problems
from onecart.settings import Settings, get_settings
from tests.storefront.conftest import _empty_all_tables, _make_app
from tests.storefront.test_production_mode import production  # noqa: F401 - a fixture

ATTACKER = "evil.example"


def _host(app: Flask, path: str, host: str, **headers: str) -> object:
    return app.test_client().get(path, headers={"Host": host, **headers})


def test_a_redirect_never_points_at_a_forged_host(app: Flask) -> None:
    refused = _host(app, "/admin", ATTACKER)
    assert refused.status_code == 400  # was 308 to http://evil.example/admin/
    assert ATTACKER not in refused.headers.get("Location", "")
    assert "address" in refused.get_data(as_text=True)
    as_json = _host(app, "/admin", f"{ATTACKER}:443", Accept="application/json")
    assert as_json.status_code == 400 and as_json.is_json


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:5000", "localhost:8080"])
def test_development_keeps_working_on_loopback(app: Flask, host: str) -> None:
    moved = _host(app, "/admin", host)
    assert moved.status_code == 308
    assert moved.headers["Location"] == f"http://{host}/admin/"
    assert _host(app, "/about", host).status_code == 200


@pytest.fixture
def named_host_app(
    monkeypatch: pytest.MonkeyPatch,
    storefront_db_url: str,
    rate_limit_prefix: str,
    unreachable_url: str,
) -> Iterator[Flask]:
    monkeypatch.setenv("ONECART_TRUSTED_HOSTS", "shop.example.com, .cdn.example.com")
    get_settings.cache_clear()
    try:
        yield _make_app(storefront_db_url, get_settings(), rate_limit_prefix, unreachable_url)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        _empty_all_tables(storefront_db_url)


def test_the_configured_names_are_answered_and_no_other(named_host_app: Flask) -> None:
    moved = _host(named_host_app, "/admin", "shop.example.com")
    assert moved.headers["Location"] == "http://shop.example.com/admin/"
    assert _host(named_host_app, "/about", "img.cdn.example.com").status_code == 200
    for host in (ATTACKER, "shop.example.com.evil.example", "example.com"):
        assert _host(named_host_app, "/admin", host).status_code == 400
    assert _host(named_host_app, "/about", "127.0.0.1:5000").status_code == 200


def test_production_refuses_to_start_without_the_host_list(
    production: pytest.MonkeyPatch,  # noqa: F811 - the fixture imported above
) -> None:
    production.delenv("ONECART_TRUSTED_HOSTS")
    problems = production_problems(Settings(), serves_the_site=True)
    assert set(problems) == {"ONECART_TRUSTED_HOSTS"}
    assert "Host header" in problems["ONECART_TRUSTED_HOSTS"]
    # The workers and the pipeline answer no request: they need no host list.
    assert production_problems(Settings()) == {}
    get_settings.cache_clear()
    with pytest.raises(InsecureSettingsError, match="ONECART_TRUSTED_HOSTS"):
        from storefront import create_app

        create_app({"TESTING": True})


def test_production_refuses_a_public_url_the_site_would_not_answer(
    production: pytest.MonkeyPatch,  # noqa: F811 - the fixture imported above
) -> None:
    production.setenv("ONECART_TRUSTED_HOSTS", "www.shop.example.com")
    problems = production_problems(Settings(), serves_the_site=True)
    assert set(problems) == {"ONECART_TRUSTED_HOSTS"}
    assert "shop.example.com" in problems["ONECART_TRUSTED_HOSTS"]
    production.setenv("ONECART_TRUSTED_HOSTS", "www.shop.example.com,shop.example.com")
    assert production_problems(Settings(), serves_the_site=True) == {}
    production.setenv("ONECART_TRUSTED_HOSTS", ".example.com")
    assert production_problems(Settings(), serves_the_site=True) == {}


@pytest.mark.parametrize("site_host", ["0.0.0.0", "10.0.0.7", "127.0.0.1"])
def test_the_health_probe_s_host_is_always_answered(site_host: str) -> None:
    """`onecart up` probes http://ONECART_SITE_HOST:PORT/healthz (services.build_services): a
    web host serving other machines (ONECART_SITE_HOST=0.0.0.0, docs/deploy.md) must not answer
    its own probe 400."""
    settings = Settings(ONECART_SITE_HOST=site_host, ONECART_TRUSTED_HOSTS="shop.example.com")
    assert site_host in settings.site_trusted_hosts
    assert {"shop.example.com", "localhost", "127.0.0.1"} <= set(settings.site_trusted_hosts)
