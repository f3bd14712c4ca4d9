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
    "SMTP_SECURITY",
    "ONECART_SIGNUP_CONFIRMATION",
    "ONECART_PUBLIC_URL",
    "ONECART_MARKETPLACES",
    "STRIPE_PUBLISHABLE_KEY",
    "ONECART_DAGSTER_HOST",
    "ONECART_DAGSTER_BEHIND_AUTH_PROXY",
    "ONECART_TRUSTED_HOSTS",
)
# A live publishable key: not a secret (browsers get it), but the default one cannot take a card.
GOOD_PUBLISHABLE_KEY = "pk_live_51Hq2ExamplePublishableKey0123"
# A production marketplaces.toml: a real store, and the sandbox's demo store switched off.
PRODUCTION_MARKETPLACES = """
[[marketplace]]
slug = "realshop"
name = "Real Shop"
kind = "shopify"
base_url = "https://realshop.example.com"
api_key_env = "ONECART_MARKETPLACE_KEY_REALSHOP"
currency = "USD"
country = "US"

[[marketplace]]
slug = "shopwave"
name = "ShopWave"
kind = "shopify"
base_url = "${ONECART_SANDBOX_URL}/shopwave"
currency = "USD"
country = "US"
active = false
"""


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """ONECART_ENV=production with every secret set well; settings re-read on each change."""
    saved_base = get_settings().stripe_api_base
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONECART_ENV", "production")
    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", GOOD_PUBLISHABLE_KEY)
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")  # sign-up links are e-mailed
    monkeypatch.setenv("SMTP_SECURITY", "starttls")  # ... over TLS to another machine
    monkeypatch.setenv("ONECART_PUBLIC_URL", "https://shop.example.com")  # ... pointing here
    monkeypatch.setenv("ONECART_TRUSTED_HOSTS", "shop.example.com")  # ... which the site answers
    marketplaces = tmp_path / "marketplaces.toml"
    marketplaces.write_text(PRODUCTION_MARKETPLACES)
    monkeypatch.setenv("ONECART_MARKETPLACES", str(marketplaces))
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
    production.delenv("ONECART_MARKETPLACES")  # a demo: the sandbox's stores only
    app = _site(storefront_db_url)
    assert app.config["SANDBOX_MODE"] is True
    assert is_sandbox_mode(get_settings())


def test_production_refuses_free_top_ups_beside_a_live_stripe_key(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    """Security review, fifth pass: ONECART_SANDBOX_MODE=true in production, without a fake
    Stripe (STRIPE_API_BASE), started with a live key: sandbox mode's free wallet top-ups beside
    real card payments and real marketplaces, so free wallet money paid for real orders."""
    production.setenv("ONECART_SANDBOX_MODE", "true")
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {"ONECART_SANDBOX_MODE"}
    assert "live key" in refused.value.problems["ONECART_SANDBOX_MODE"]
    # A demo with a test key, or with localstripe, is what sandbox mode is for (with the
    # sandbox's stores only: test_production_refuses_free_top_ups_beside_a_real_marketplace).
    production.delenv("ONECART_MARKETPLACES")
    production.setenv("STRIPE_API_KEY", "sk_test_51Hq2ExampleKey0123456789")
    assert "ONECART_SANDBOX_MODE" not in production_problems(Settings())
    production.setenv("STRIPE_API_KEY", GOOD_SECRETS["STRIPE_API_KEY"])
    production.setenv("STRIPE_API_BASE", "http://127.0.0.1:8420")
    assert "ONECART_SANDBOX_MODE" not in production_problems(Settings())


def test_production_refuses_free_top_ups_beside_a_real_marketplace(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    """Security review, sixth pass: a demo (sandbox mode, a test Stripe key) whose marketplaces
    file lists a real store. Sandbox mode's free wallet top-ups paid real orders there (a
    WooCommerce order is even created `set_paid`): free money for real goods, as with a live
    Stripe key."""
    production.setenv("ONECART_SANDBOX_MODE", "true")
    production.setenv("STRIPE_API_KEY", "sk_test_51Hq2ExampleKey0123456789")
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {"ONECART_SANDBOX_MODE"}
    assert "realshop" in refused.value.problems["ONECART_SANDBOX_MODE"]
    # The shipped file (the sandbox's demo stores only) is a demo, as before.
    production.delenv("ONECART_MARKETPLACES")
    assert "ONECART_SANDBOX_MODE" not in production_problems(Settings())


def test_production_refuses_stripe_test_keys_outside_sandbox_mode(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    """Security review, sixth pass: a shop (sandbox mode off) started with Stripe's test keys.
    Every card payment is then a test payment (4242 4242 4242 4242 "succeeds", no money moves)
    while the orders go to the real marketplaces: real goods for nothing. A forgotten swap to
    the live keys is the likely way there."""
    production.setenv("STRIPE_API_KEY", "sk_test_51Hq2ExampleKey0123456789")
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {"STRIPE_API_KEY"}
    assert "sk_test_51Hq2ExampleKey0123456789" not in str(refused.value)
    production.setenv("STRIPE_API_KEY", "rk_test_51Hq2ExampleKey0123456789")
    assert set(production_problems(Settings())) == {"STRIPE_API_KEY"}
    production.setenv("STRIPE_API_KEY", GOOD_SECRETS["STRIPE_API_KEY"])
    production.setenv("STRIPE_PUBLISHABLE_KEY", "pk_test_51Hq2ExamplePublishableKey0123")
    assert set(production_problems(Settings())) == {"STRIPE_PUBLISHABLE_KEY"}
    # A demo (sandbox mode, the sandbox's stores) is where test keys belong.
    production.setenv("STRIPE_API_KEY", "sk_test_51Hq2ExampleKey0123456789")
    production.setenv("ONECART_SANDBOX_MODE", "true")
    production.delenv("ONECART_MARKETPLACES")
    assert production_problems(Settings()) == {}


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


def test_production_refuses_the_sandbox_demo_marketplaces_outside_sandbox_mode(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    """The shipped marketplaces.toml lists the sandbox's demo stores: a production shop built on
    it would charge real cards for orders sent to fake marketplaces."""
    production.delenv("ONECART_MARKETPLACES")  # the checkout's own marketplaces.toml
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {"ONECART_MARKETPLACES"}
    assert "shopwave" in str(refused.value) and "sokoni" in str(refused.value)
    production.setenv("ONECART_SANDBOX_MODE", "true")  # a demo deployment may
    assert "ONECART_MARKETPLACES" not in production_problems(Settings())


def test_production_refuses_a_marketplaces_file_it_cannot_read(
    production: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production.setenv("ONECART_MARKETPLACES", str(tmp_path / "missing.toml"))
    assert "ONECART_MARKETPLACES" in production_problems(Settings())
    broken = tmp_path / "broken.toml"
    broken.write_text("[[marketplace]\n")
    production.setenv("ONECART_MARKETPLACES", str(broken))
    assert "ONECART_MARKETPLACES" in production_problems(Settings())


@pytest.mark.parametrize("public_url", [None, "http://shop.example.com", "shop.example.com"])
def test_production_mailing_links_needs_an_https_public_url(
    production: pytest.MonkeyPatch, storefront_db_url: str, public_url: str | None
) -> None:
    """Without ONECART_PUBLIC_URL an e-mailed reset or sign-up link is built from the request's
    Host header: a forged one sends the victim's token to the attacker's site."""
    if public_url is None:
        production.delenv("ONECART_PUBLIC_URL")
    else:
        production.setenv("ONECART_PUBLIC_URL", public_url)
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {"ONECART_PUBLIC_URL"}
    production.delenv("SMTP_HOST")  # nothing is e-mailed: no link to point anywhere
    production.setenv("ONECART_SIGNUP_CONFIRMATION", "false")
    assert production_problems(Settings()) == {}


@pytest.mark.parametrize(
    ("redis_url", "refused"),
    [
        ("redis://10.0.0.5:6379/0", True),
        ("rediss://redis.internal.example:6380/0", True),
        ("redis://onecart@10.0.0.5:6379/0", True),
        ("redis://:s3cret-pass@10.0.0.5:6379/0", False),
        ("rediss://onecart:s3cret-pass@redis.internal.example:6380/0", False),
        ("redis://127.0.0.1:6379/0", False),
        ("redis://localhost:6379/3", False),
        ("unix:///run/redis/redis.sock?db=0", False),
    ],
)
def test_production_refuses_a_redis_on_another_host_without_a_password(
    production: pytest.MonkeyPatch, redis_url: str, refused: bool
) -> None:
    """RQ keeps jobs pickled in Redis: whoever can write there runs code in the order workers."""
    production.setenv("REDIS_URL", redis_url)
    problems = production_problems(Settings())
    assert ("REDIS_URL" in problems) is refused
    assert "s3cret-pass" not in str(problems)


SEARCH_KEY = "5f1c0e4a9b7d3e2f8a6c4b2d0e9f7a5c3b1d8e6f4a2c0b9d7e5f3a1c8b6d4e2f"


def test_a_production_web_host_needs_the_search_key_not_the_master_key(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    """The site only searches: with MEILI_SEARCH_KEY it starts without the master key, so a web
    host need not hold the key that can rewrite or delete the index."""
    production.delenv("MEILI_MASTER_KEY")
    production.setenv("MEILI_SEARCH_KEY", SEARCH_KEY)
    app = _site(storefront_db_url)
    assert app.config["MEILI_SEARCH_KEY"] == SEARCH_KEY


def test_a_production_site_without_either_meilisearch_key_is_refused(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    production.delenv("MEILI_MASTER_KEY")
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {"MEILI_MASTER_KEY"}
    assert "MEILI_SEARCH_KEY" in refused.value.problems["MEILI_MASTER_KEY"]


def test_a_production_site_refuses_the_master_key_given_as_its_search_key(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    production.setenv("MEILI_SEARCH_KEY", GOOD_SECRETS["MEILI_MASTER_KEY"])
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {"MEILI_SEARCH_KEY"}


def test_the_workers_and_the_pipeline_still_need_the_master_key_beside_a_search_key(
    production: pytest.MonkeyPatch,
) -> None:
    """They write the index (the pipeline, the workers' listings refresh after an admin click)."""
    from pipelines.definitions import defs
    from storefront.jobs import OrderWorker

    production.delenv("MEILI_MASTER_KEY")
    production.setenv("MEILI_SEARCH_KEY", SEARCH_KEY)
    get_settings.cache_clear()
    with pytest.raises(InsecureSettingsError, match="MEILI_MASTER_KEY"):
        OrderWorker(["default"], connection=redis.Redis.from_url(get_settings().redis_url))
    with pytest.raises(InsecureSettingsError, match="MEILI_MASTER_KEY"):
        defs()


def test_production_refuses_the_default_publishable_key_while_cards_go_to_stripe(
    production: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    """Checkout's Stripe.js and card top-ups use STRIPE_PUBLISHABLE_KEY: the sandbox's default
    (or a secret key pasted there, which every browser would then receive) takes no card."""
    production.delenv("STRIPE_PUBLISHABLE_KEY")
    with pytest.raises(InsecureSettingsError) as refused:
        _site(storefront_db_url)
    assert set(refused.value.problems) == {"STRIPE_PUBLISHABLE_KEY"}
    production.setenv("STRIPE_PUBLISHABLE_KEY", GOOD_SECRETS["STRIPE_API_KEY"])
    problems = production_problems(Settings())
    assert "STRIPE_PUBLISHABLE_KEY" in problems
    assert GOOD_SECRETS["STRIPE_API_KEY"] not in str(problems)
    # A sandbox demo pays with localstripe's test cards, server-side: no publishable key needed.
    production.delenv("STRIPE_PUBLISHABLE_KEY")
    production.setenv("ONECART_SANDBOX_MODE", "true")
    production.setenv("STRIPE_API_BASE", "http://127.0.0.1:8420")
    assert "STRIPE_PUBLISHABLE_KEY" not in production_problems(Settings())


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("0.0.0.0", True),
        ("10.0.0.7", True),
        ("dagster.internal.example", True),
        ("::", True),
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
    ],
)
def test_production_refuses_a_dagster_ui_off_loopback_unless_behind_an_auth_proxy(
    production: pytest.MonkeyPatch, host: str, refused: bool
) -> None:
    """The Dagster UI has no sign-in: whoever reaches it launches runs and wipes assets."""
    production.setenv("ONECART_DAGSTER_HOST", host)
    problems = production_problems(Settings())
    assert ("ONECART_DAGSTER_HOST" in problems) is refused
    assert (
        refused is False or "ONECART_DAGSTER_BEHIND_AUTH_PROXY" in problems["ONECART_DAGSTER_HOST"]
    )
    production.setenv("ONECART_DAGSTER_BEHIND_AUTH_PROXY", "true")
    assert "ONECART_DAGSTER_HOST" not in production_problems(Settings())
