"""The OneCart storefront: a Flask application factory and the blueprints it wires together.

`create_app()` reads settings from onecart.settings (never at import time); `config` overrides any
key, which is how tests point the app at their own database and Redis key prefix. The database
schema is created by migrations (storefront.db_migrate), never here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from babel.numbers import get_currency_name, get_currency_symbol
from flask import Flask, Response, current_app, redirect, url_for
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.middleware.proxy_fix import ProxyFix

from commerce.accounts import ADMIN_FRESH_SIGN_IN, LOGIN_LIFETIME
from commerce.rate_limit import (
    DEFAULT_PREFIX,
    LOGIN_FAILURES_ACROSS_CLIENTS,
    LOGIN_FAILURES_PER_ACCOUNT,
    LOGIN_FAILURES_PER_IP,
)
from onecart.money import format_money as money_for_shoppers
from onecart.money import is_iso_currency
from onecart.production import require_production_ready
from onecart.settings import Settings, get_settings
from storefront.current import this_app, this_request
from storefront.database import init_database
from storefront.extensions import csrf, login_manager
from storefront.form_protection import page_csrf_token
from storefront.limits import init_limiters
from storefront.order_numbers_whole import order_numbers_whole
from storefront.request_log import init_request_logging
from storefront.security import (
    DEFAULT_CONTENT_SECURITY_POLICY,
    HSTS_MAX_AGE_SECONDS,
    BoundedIntConverter,
    keep_signed_in_pages_private,
    refuse_nul_characters,
    set_security_headers,
)
from storefront.sessions import CachedSerializerSessionInterface
from storefront.site_logging import configure_site_logging
from storefront.templating import OutputEscapingCodeGenerator, SiteJinjaEnvironment
from storefront.text_direction import without_bidi_controls

# Every area of the site is one blueprint package exposing `bp`; order matters only for
# readability. The shopping areas are built alongside the core (see issue 3).
BLUEPRINT_MODULES = (
    "storefront.errors",
    "storefront.health",
    "storefront.auth",
    "storefront.account",
    "storefront.pages",
    "storefront.admin",
    "storefront.catalog",
    "storefront.currency",
    "storefront.cart",
    "storefront.checkout",
    "storefront.orders",
    "storefront.webhooks",
    "storefront.assistant",
    "storefront.alerts",
)


def default_config(settings: Settings) -> dict[str, Any]:
    """The Flask config derived from OneCart's settings; create_app's `config` overrides it."""
    return {
        "SECRET_KEY": settings.secret_key,
        "DATABASE_URL": settings.storefront_database_url,
        "REDIS_URL": settings.redis_url,
        "MEILI_URL": settings.meili_url,
        "MEILI_MASTER_KEY": settings.meili_master_key,
        "MEILI_SEARCH_KEY": settings.meili_search_key,
        "MEILI_INDEX": settings.meili_index,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.secure_cookies,
        "SESSION_COOKIE_NAME": "onecart_session",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": settings.secure_cookies,
        # Strict-Transport-Security max-age (0: no header); sent in production.
        "HSTS_MAX_AGE": HSTS_MAX_AGE_SECONDS if settings.is_production else 0,
        # Free wallet top-ups and Stripe test cards (settings.sandbox_enabled).
        "SANDBOX_MODE": settings.sandbox_enabled,
        # Sign-up through an e-mailed link, no account enumeration (commerce.signup_confirmation).
        "SIGNUP_CONFIRMATION": settings.signup_confirmation_enabled,
        # Where e-mailed links point (password reset); empty: the request's own host.
        "PUBLIC_URL": settings.public_url,
        "SMTP_HOST": settings.smtp_host,
        "SMTP_PORT": settings.smtp_port,
        "SMTP_SENDER": settings.smtp_sender,
        "SMTP_SECURITY": settings.smtp_security,
        "SMTP_USERNAME": settings.smtp_username,
        "SMTP_PASSWORD": settings.smtp_password,
        "REMEMBER_COOKIE_NAME": "onecart_remember",
        # A sign-in ends after this, "keep me signed in" or not: the loader checks the sign-in
        # time the cookies carry, and the browser keeps the remember cookie as long.
        "LOGIN_LIFETIME": LOGIN_LIFETIME,
        "REMEMBER_COOKIE_DURATION": LOGIN_LIFETIME,
        # The admin area wants the password typed in this browser within this long: a session
        # cookie is "fresh" for the sign-in's whole life, and browsers restoring the last
        # session keep it across restarts.
        "ADMIN_FRESH_SIGN_IN": ADMIN_FRESH_SIGN_IN,
        "WTF_CSRF_ENABLED": True,
        # No HTTPS Referer check: it refuses the forms of our no-referrer pages (reset and
        # confirmation links); storefront.form_protection asks Fetch Metadata/Origin instead.
        "WTF_CSRF_SSL_STRICT": False,
        # Tokens live as long as the session: a form left open over lunch still submits.
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "RATE_LIMIT_PREFIX": DEFAULT_PREFIX,
        "LOGIN_LIMIT_PER_IP": LOGIN_FAILURES_PER_IP.limit,
        "LOGIN_LIMIT_PER_ACCOUNT": LOGIN_FAILURES_PER_ACCOUNT.limit,
        "LOGIN_LIMIT_WINDOW_SECONDS": LOGIN_FAILURES_PER_ACCOUNT.window_seconds,
        # One account's failed sign-ins an hour from all clients together (then only browsers
        # the account is known on may try: storefront.auth.known_devices).
        "LOGIN_LIMIT_ACROSS_CLIENTS": LOGIN_FAILURES_ACROSS_CLIENTS.limit,
        "HEALTH_TIMEOUT_SECONDS": 2.0,
        # Who sees /healthz's error details: the bearer of this token (empty: nobody by token),
        # and outside production any client on loopback or a private network too. In
        # production an address proves nothing: behind a proxy every visitor has its address.
        "HEALTH_TOKEN": settings.health_token or "",
        "HEALTH_DETAILS_TO_PRIVATE_NETWORK": not settings.is_production,
        "CONTENT_SECURITY_POLICY": DEFAULT_CONTENT_SECURITY_POLICY,
        # The Host names answered (ONECART_TRUSTED_HOSTS and loopback); any other is a 400, so
        # the trailing-slash redirect and every URL built from the request stay on our host.
        "TRUSTED_HOSTS": settings.site_trusted_hosts,
        # Number of reverse proxies whose X-Forwarded-For we trust (0: use the socket address).
        "PROXY_FIX_X_FOR": settings.trusted_proxies,
    }


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the storefront application: config, extensions, blueprints, CLI commands."""
    app = Flask(__name__)
    # Before anything reads app.jinja_env (Flask-WTF's init does): templates' globals as a view.
    app.jinja_environment = SiteJinjaEnvironment
    settings = get_settings()
    app.config.from_mapping(default_config(settings))
    if config:
        app.config.from_mapping(config)
    # In production the site refuses to start with a default or short secret.
    # The site searches only: MEILI_SEARCH_KEY (or the master key to derive it) is enough.
    require_production_ready(
        settings,
        "site",
        overrides={
            "SECRET_KEY": str(app.config["SECRET_KEY"] or ""),
            "MEILI_SEARCH_KEY": str(app.config.get("MEILI_SEARCH_KEY") or ""),
            "MEILI_MASTER_KEY": str(app.config.get("MEILI_MASTER_KEY") or ""),
        },
        writes_search_index=False,
        serves_the_site=True,
    )
    # Before any blueprint adds a rule: an <int:…> id too large for the database is a 404.
    app.url_map.converters["int"] = BoundedIntConverter
    if app.config["PROXY_FIX_X_FOR"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]))  # type: ignore[method-assign]

    app.session_interface = CachedSerializerSessionInterface()
    init_database(app)
    csrf.init_app(app)
    # Forms' tokens without creating a session on pages a guest browses (the listing); Flask-WTF
    # gives templates its own csrf_token both ways, as a global and from a context processor.
    app.jinja_env.globals["csrf_token"] = page_csrf_token
    app.context_processor(lambda: {"csrf_token": page_csrf_token})
    login_manager.init_app(app)
    configure_site_logging()
    init_request_logging(app)
    app.before_request(refuse_nul_characters)
    init_login_limiter(app)
    register_template_helpers(app)
    for module_name in BLUEPRINT_MODULES:
        app.register_blueprint(importlib.import_module(module_name).bp)

    # Browsers ask for /favicon.ico whatever the page links; send them to the SVG icon.
    app.add_url_rule(
        "/favicon.ico",
        "favicon",
        lambda: redirect(url_for("static", filename="favicon.svg"), code=301),
    )

    from storefront.cli import register_cli

    register_cli(app)

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        keep_signed_in_pages_private(response)
        return set_security_headers(
            response,
            content_security_policy=app.config["CONTENT_SECURITY_POLICY"],
            hsts_max_age=int(app.config["HSTS_MAX_AGE"] or 0),
        )

    return app


def init_login_limiter(app: Flask) -> None:
    """The Redis-backed login and form limiters (storefront.limits; they connect lazily)."""
    init_limiters(app)


PATHS_REMEMBERED = 64


def path_exists(path: str) -> bool:
    """True when some view answers GET `path` (lets the layout link to pages that later issues
    add, such as /orders and /notifications, only once they exist).

    Remembered per application for the first PATHS_REMEMBERED paths asked about (the layout's
    fixed links; any path a request brings is only looked up): the URL map is fixed once the
    app serves, and the layout asks on every page.
    """
    known: dict[str, bool] = this_app().extensions.setdefault("onecart_path_exists", {})
    exists = known.get(path)
    if exists is None:
        exists = _matches_a_view(path)
        if len(known) < PATHS_REMEMBERED:
            known[path] = exists
    return exists


def _matches_a_view(path: str) -> bool:
    adapter = current_app.url_map.bind("localhost")
    try:
        adapter.match(path, method="GET")
    except (NotFound, MethodNotAllowed):
        return False
    except Exception:  # a redirect (e.g. trailing slash) still means the page exists
        return True
    return True


FIXED_URLS_REMEMBERED = 256


def fixed_url(endpoint: str, **values: Any) -> str:
    """url_for for the links every page repeats (the layout's stylesheets, icon, menu and footer),
    worked out once per application and script root: url_for builds through the URL map each
    time, and the layout asks for a dozen per page. For absolute endpoint names with values
    written in the template (a request's own values go through url_for)."""
    known: dict[tuple[Any, ...], str] = this_app().extensions.setdefault("onecart_fixed_urls", {})
    key = (this_request().script_root, endpoint, *sorted(values.items()))
    url = known.get(key)
    if url is None:
        url = url_for(endpoint, **values)
        if len(known) < FIXED_URLS_REMEMBERED:
            known[key] = url
    return url


def format_money(minor: int | None, currency: str | None) -> str:
    """ "$1,234.50" / "KES1,500.00": integer minor units rendered exactly (never via float)."""
    if minor is None or not currency or not is_iso_currency(currency):
        return "—"
    return money_for_shoppers(int(minor), currency)


@cache
def currency_symbol(code: str) -> str:
    """The symbol prices are printed with (onecart.money.format_money, en_US: "$", "€", "£"),
    else the code ("KES1,500.00", "NGN2,000.00"): the currency menu names a currency the way
    the prices it switches to read, never "Ksh" over prices that say "KES"."""
    return get_currency_symbol(code, "en_US")


@cache
def currency_label(code: str) -> str:
    """ "€ Euro", "₦ Nigerian Naira": how the currency switcher names a currency."""
    name = get_currency_name(code, locale="en")
    symbol = currency_symbol(code)
    return f"{symbol} {name}" if symbol != code else f"{name} ({code})"


def register_template_helpers(app: Flask) -> None:
    """Globals and filters every template may use, and how templates compile their output."""
    app.jinja_env.code_generator_class = OutputEscapingCodeGenerator
    app.jinja_env.globals["currency_label"] = currency_label
    app.jinja_env.globals["currency_symbol"] = currency_symbol
    app.jinja_env.globals["path_exists"] = path_exists
    app.jinja_env.globals["fixed_url"] = fixed_url
    app.jinja_env.globals["format_money"] = format_money
    app.jinja_env.filters["money"] = lambda minor, currency: format_money(minor, currency)
    app.jinja_env.filters["without_bidi_controls"] = without_bidi_controls
    app.jinja_env.filters["order_numbers_whole"] = order_numbers_whole
