"""ONECART_ENV=production (issue 12: the public default secrets were accepted everywhere).

A production start of the site, the RQ worker and the pipeline is refused while any secret is a
default or too short, naming the variable; sandbox conveniences are off unless enabled; cookies
are Secure; HSTS is sent; Meilisearch runs with `--env production`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from commerce.payments.stripe_gateway import is_sandbox_mode
from onecart import processes
from onecart.production import SECRET_RULES, InsecureSettingsError, production_problems
from onecart.settings import Settings, get_settings
from storefront import create_app

# Values a real deployment would set (long, random-looking, not the defaults).
GOOD_SECRETS = {
    "SECRET_KEY": "k5Q0v9b3Xw7nR2mT8yL4pA6sD1fG0hJ3",
    "ONECART_ENCRYPTION_KEY": "wCpLE71yfvjShDVwK4T19GQJnrlUfE2sdI76_TL9qhU=",
    "STRIPE_WEBHOOK_SECRET": "whsec_5b9c2e7f1a3d4e6b8c0f2a4c",
    "STRIPE_API_KEY": "sk_live_51Hq2ExampleKey0123456789",
    "MEILI_MASTER_KEY": "m3ili-master-key-for-production-9f8e",
}
ALL_VARIABLES = (
    *GOOD_SECRETS,
    "ONECART_ENV",
    "ONECART_SANDBOX_MODE",
    "STRIPE_API_BASE",
    "SMTP_HOST",
    "ONECART_SIGNUP_CONFIRMATION",
)


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """ONECART_ENV=production with every secret set well; settings re-read on each change."""
    saved_base = get_settings().stripe_api_base
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONECART_ENV", "production")
    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")  # sign-up links are e-mailed
    get_settings.cache_clear()
    try:
        yield monkeypatch
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        assert get_settings().stripe_api_base == saved_base


def _site(storefront_db_url: str, **config: object) -> Flask:
    get_settings.cache_clear()
    return create_app({"DATABASE_URL": storefront_db_url, "TESTING": True, **config})


def _default(variable: str) -> str:
    rule = next(rule for rule in SECRET_RULES if rule.variable == variable)
    return str(Settings.model_fields[rule.attribute].default)


@pytest.mark.parametrize("variable", list(GOOD_SECRETS))
def test_a_production_site_refuses_each_default_secret_by_name(
    production: pytest.MonkeyPatch, storefront_db_url: str, variable: str
) -> None:
    production.setenv(variable, _default(variable))
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {variable}
    assert variable in str(refused.value) and "default" in str(refused.value)
    assert _default(variable) not in str(refused.value)


@pytest.mark.parametrize("variable", ["SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "MEILI_MASTER_KEY"])
def test_a_production_site_refuses_a_short_secret_by_name(
    production: pytest.MonkeyPatch, storefront_db_url: str, variable: str
) -> None:
    production.setenv(variable, "short-1")
    with pytest.raises(InsecureSettingsError, match=f"{variable}: is too short"):
        _site(storefront_db_url)


def test_a_short_flask_secret_key_given_in_config_is_refused_too(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    with pytest.raises(InsecureSettingsError, match="SECRET_KEY"):
        _site(storefront_db_url, SECRET_KEY="not-long")


@pytest.mark.parametrize("variable", list(GOOD_SECRETS))
def test_the_worker_and_the_pipeline_refuse_each_default_secret_by_name(
    production: pytest.MonkeyPatch, variable: str
) -> None:
    from pipelines.definitions import defs
    from pipelines.run import materialize_all
    from storefront.jobs import OrderWorker

    production.setenv(variable, _default(variable))
    get_settings.cache_clear()
    with pytest.raises(InsecureSettingsError, match=variable):
        OrderWorker(["default"], connection=redis.Redis.from_url(get_settings().redis_url))
    with pytest.raises(InsecureSettingsError, match=variable):
        defs()
    with pytest.raises(InsecureSettingsError, match=variable):
        materialize_all(progress=lambda _line: None)  # `onecart ingest`


def test_development_accepts_the_defaults(storefront_db_url: str) -> None:
    settings = get_settings()
    assert not settings.is_production
    assert production_problems(settings)  # the defaults are there ...
    app = create_app({"DATABASE_URL": storefront_db_url, "TESTING": True})  # ... and accepted
    assert app.config["SANDBOX_MODE"] is True
    assert "Strict-Transport-Security" not in app.test_client().get("/about").headers


def test_production_with_good_secrets_starts_secure_and_without_the_sandbox(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    app = _site(storefront_db_url)
    settings = get_settings()
    assert not settings.sandbox_enabled and not is_sandbox_mode(settings)
    assert settings.stripe_api_base is None  # localstripe only when asked for
    assert app.config["SANDBOX_MODE"] is False
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    response = app.test_client().get("/about")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    argv = processes.meilisearch_argv(settings, Path("/tmp/meili/data.ms"), "127.0.0.1:7700")
    assert argv[argv.index("--env") + 1] == "production"


def test_production_sandbox_mode_only_when_enabled_explicitly(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    production.setenv("STRIPE_API_BASE", "http://127.0.0.1:8420")
    with pytest.raises(InsecureSettingsError, match="STRIPE_API_BASE"):
        _site(storefront_db_url)
    production.setenv("ONECART_SANDBOX_MODE", "true")
    app = _site(storefront_db_url)
    assert app.config["SANDBOX_MODE"] is True
    assert is_sandbox_mode(get_settings())


def test_meilisearch_runs_in_development_mode_by_default() -> None:
    argv = processes.meilisearch_argv(get_settings(), Path("/tmp/m/data.ms"), "127.0.0.1:7700")
    assert argv[argv.index("--env") + 1] == "development"


def test_production_without_smtp_is_refused_while_sign_up_needs_a_mailed_link(
    production: pytest.MonkeyPatch,
) -> None:
    production.delenv("SMTP_HOST")
    assert "SMTP_HOST" in production_problems(Settings())
    production.setenv("ONECART_SIGNUP_CONFIRMATION", "false")
    assert "SMTP_HOST" not in production_problems(Settings())
