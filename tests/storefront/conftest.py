"""Fixtures for the storefront tests (shared by every tests/storefront/ module — keep names stable).

Database: migrated once per test session with Alembic (never create_all), then every table is
emptied after each test, so each test starts from an empty, fully migrated schema.
- Default: a SQLite file under the test run's ONECART_HOME.
- With DATABASE_URL set (CI's second run: postgresql+psycopg://postgres@127.0.0.1:5432/test):
  a dedicated schema `sf_<pid>_<hex>` in that database (search_path in the URL), dropped at the end.

Fixtures:
- `storefront_db_url` (session): the URL above, already migrated to head.
- `app`: create_app() on that DB; TESTING, CSRF *disabled* (forms post without tokens), a unique
  Redis key prefix for rate limits, MEILI_URL pointing at nothing unless a test overrides it.
- `csrf_app` / `csrf_client`: the same with CSRF enabled (see `csrf_token_from`).
- `client`, `runner`: the Flask test client and CLI runner of `app`.
- `db_session`: a SQLAlchemy session on the same DB (commit to make rows visible to the app).
- `make_user(**fields) -> User`: a committed user; password `DEFAULT_PASSWORD` unless given.
- `login(client, user, password=DEFAULT_PASSWORD) -> Response`: signs in through POST /login.
- `make_marketplace(**fields) -> Marketplace`, `make_product(marketplace, **fields) -> Product`.
- `signed_in_user`: a new user signed in on `client`.
- `catalog`: the sample catalog (tests/storefront/sample_catalog.py) in the DB, by external id;
  `sample_index` (module): the same catalog in a Meilisearch index of its own, its uid.
- `text_of(html)`: a page's visible text, for readable assertions.
- `app_config_overrides`: a dict a test module can override (fixture) to add config keys.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import lru_cache
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from commerce.accounts import hash_password, register_user
from commerce.db import dispose_engines, get_session_factory, normalize_database_url
from commerce.models import Base, Marketplace, Product, User, import_all_models
from onecart import processes
from onecart.settings import Settings
from search_index.indexing import connect
from storefront import create_app
from storefront.db_migrate import upgrade_database
from tests.storefront.sample_catalog import (
    delete_sample_catalog,
    index_sample_catalog,
    insert_sample_catalog,
)

DEFAULT_PASSWORD = "correct-Horse-7-battery"
RUN_ID = uuid.uuid4().hex[:10]
_counter = itertools.count(1)
_CSRF_INPUT = re.compile(
    r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"'
)


@lru_cache(maxsize=1)
def _default_password_hash() -> str:
    return hash_password(DEFAULT_PASSWORD)


def _postgres_url_with_schema(base_url: str, schema: str) -> str:
    separator = "&" if "?" in base_url else "?"
    return f"{normalize_database_url(base_url)}{separator}options=-csearch_path%3D{schema}"


class _MigratedDatabase:
    """One migrated storefront database per test process, however many fixture instances ask.

    Test modules and other suites' conftests import `storefront_db_url`, and pytest makes a
    session-scoped instance per place that defines it: each used to migrate a database of its
    own (about ten per pass, each a full Alembic upgrade). Every user empties the tables after
    each test, so they share one; the last instance to finish drops it."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.users = 0
        self._drop: Callable[[], None] = lambda: None

    def acquire(self, settings: Settings) -> str:
        if self.url is None:
            self.url, self._drop = _migrate_database(settings)
        self.users += 1
        return self.url

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            try:
                self._drop()
            finally:
                self.url = None
                self._drop = lambda: None


_MIGRATED = _MigratedDatabase()


def _migrate_database(settings: Settings) -> tuple[str, Callable[[], None]]:
    """A new database migrated to head (see the module docstring), and how to drop it."""
    base_url = os.environ.get("DATABASE_URL")
    if base_url and not base_url.startswith("sqlite"):
        schema = f"sf_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        admin_engine = sa.create_engine(normalize_database_url(base_url))
        with admin_engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = _postgres_url_with_schema(base_url, schema)

        def drop_schema() -> None:
            dispose_engines()
            with admin_engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin_engine.dispose()

        try:
            upgrade_database(url)
        except BaseException:
            drop_schema()
            raise
        return url, drop_schema
    path = settings.home_dir / "storefront-tests" / f"storefront-{RUN_ID}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    upgrade_database(url)
    return url, dispose_engines


@pytest.fixture(scope="session")
def storefront_db_url(settings: Settings) -> Iterator[str]:
    """A migrated storefront database for this test session (see the module docstring)."""
    url = _MIGRATED.acquire(settings)
    try:
        yield url
    finally:
        _MIGRATED.release()


def _empty_all_tables(url: str) -> None:
    import_all_models()
    factory = get_session_factory(url)
    with factory() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


@pytest.fixture
def rate_limit_prefix(settings: Settings) -> Iterator[str]:
    """A Redis key prefix no other test (or run) shares; its keys are deleted afterwards."""
    prefix = f"onecart-test:{RUN_ID}:{next(_counter)}:"
    yield prefix
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    except redis.RedisError:
        pass
    finally:
        client.close()


@pytest.fixture
def unreachable_url() -> str:
    """An http URL on a loopback port where nothing listens."""
    return f"http://127.0.0.1:{processes.free_port()}"


@pytest.fixture
def app_config_overrides() -> dict[str, Any]:
    """Extra config for `app`; override this fixture in a module to change it."""
    return {}


def _make_app(
    url: str, settings: Settings, prefix: str, unreachable: str, **overrides: Any
) -> Flask:
    config = {
        "TESTING": True,
        "DATABASE_URL": url,
        "SECRET_KEY": f"test-secret-{RUN_ID}",
        "WTF_CSRF_ENABLED": False,
        "REDIS_URL": settings.redis_url,
        "RATE_LIMIT_PREFIX": prefix,
        "MEILI_URL": unreachable,
        "SERVER_NAME": None,
        # Jobs the admin's marketplace switch queues stay out of a developer worker's queue.
        "SEARCH_JOBS_QUEUE": f"search-test-{RUN_ID}",
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture
def app(
    storefront_db_url: str,
    settings: Settings,
    rate_limit_prefix: str,
    unreachable_url: str,
    app_config_overrides: dict[str, Any],
) -> Iterator[Flask]:
    """The storefront app on the test DB, CSRF disabled; tables are emptied after the test."""
    application = _make_app(
        storefront_db_url, settings, rate_limit_prefix, unreachable_url, **app_config_overrides
    )
    try:
        yield application
    finally:
        _empty_all_tables(storefront_db_url)


@pytest.fixture
def csrf_app(
    storefront_db_url: str,
    settings: Settings,
    rate_limit_prefix: str,
    unreachable_url: str,
    app_config_overrides: dict[str, Any],
) -> Iterator[Flask]:
    """Like `app` (the module's `app_config_overrides` included), with CSRF protection enabled as
    in production."""
    application = _make_app(
        storefront_db_url,
        settings,
        rate_limit_prefix,
        unreachable_url,
        **{**app_config_overrides, "WTF_CSRF_ENABLED": True},
    )
    try:
        yield application
    finally:
        _empty_all_tables(storefront_db_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def csrf_client(csrf_app: Flask) -> FlaskClient:
    return csrf_app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def db_session(app: Flask, storefront_db_url: str) -> Iterator[Session]:
    """A session on the test DB, independent of the app's per-request sessions."""
    session = get_session_factory(storefront_db_url)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def make_user(db_session: Session) -> Callable[..., User]:
    """Factory: make_user(username=..., email=..., password=..., is_admin=..., **columns)."""

    def factory(
        username: str | None = None,
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        is_admin: bool = False,
        **columns: Any,
    ) -> User:
        number = next(_counter)
        username = username or f"shopper{number}"
        email = email or f"{username}@example.com"
        if password == DEFAULT_PASSWORD:
            # One argon2 hash per session instead of one per user keeps the suite fast.
            user = User(
                username=username,
                email=email,
                password_hash=_default_password_hash(),
                is_admin=is_admin,
            )
            db_session.add(user)
        else:
            user = register_user(
                db_session, username=username, email=email, password=password, is_admin=is_admin
            )
        for name, value in columns.items():
            setattr(user, name, value)
        db_session.commit()
        return user

    return factory


def log_in(client: FlaskClient, user: User, password: str = DEFAULT_PASSWORD) -> TestResponse:
    """Sign `user` in through the real login form (CSRF-disabled apps)."""
    response = client.post("/login", data={"login": user.username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


@pytest.fixture
def login() -> Callable[..., TestResponse]:
    """login(client, user, password=DEFAULT_PASSWORD): sign in through POST /login."""
    return log_in


@pytest.fixture
def catalog(db_session: Session) -> dict[str, Product]:
    """The sample catalog's products, committed, by external id."""
    products = insert_sample_catalog(db_session)
    db_session.commit()
    return products


@pytest.fixture(scope="module")
def sample_index(meili_server: str) -> Iterator[str]:
    """The uid of a Meilisearch index holding the sample catalog, for one test module."""
    client = connect()
    uid = f"test_sample_{uuid.uuid4().hex[:10]}"
    index_sample_catalog(client, uid)
    yield uid
    delete_sample_catalog(client, uid)


def text_of(page_html: str) -> str:
    """The page's visible text, entities decoded and whitespace collapsed (readable assertions)."""
    # <bdi> only isolates a query's direction inside a sentence: it separates no words; the
    # isolates of plain-text messages (onecart.bidi.isolated) are invisible. Nor does a
    # `.keep-together` span (a date or an order number kept on one line): "(rates of
    # 2026-11-20)", not "(rates of 2026-11-20 )".
    inline = re.sub(r'<span class="keep-together">([^<]*)</span>', r"\1", page_html)
    without_tags = re.sub(r"<[^>]+>", " ", re.sub(r"</?bdi>", "", inline))
    return " ".join(re.sub("[\u2066-\u2069]", "", unescape(without_tags)).split())


@pytest.fixture
def signed_in_user(client: FlaskClient, make_user: Callable[..., User]) -> User:
    """A new user, signed in on `client`."""
    user = make_user()
    log_in(client, user)
    return user


def csrf_token_from(client: FlaskClient, path: str) -> str:
    """The CSRF token of the first form on the page at `path` (for CSRF-enabled apps)."""
    html = client.get(path).get_data(as_text=True)
    match = _CSRF_INPUT.search(html)
    assert match, f"no csrf_token field on {path}"
    return match.group(1) or match.group(2)


@pytest.fixture
def make_marketplace(db_session: Session) -> Callable[..., Marketplace]:
    """Factory: a committed marketplace (slug `shop<n>` unless given)."""

    def factory(**fields: Any) -> Marketplace:
        number = next(_counter)
        values: dict[str, Any] = {
            "slug": f"shop{number}",
            "name": f"Shop {number}",
            "kind": "shopify",
            "api_base_url": f"http://127.0.0.1:9/shop{number}",
            "currency": "USD",
            "country": "US",
            "capabilities": ["catalog"],
            "relation_identifier": "gtin",
            "rating": Decimal("4.20"),
        }
        values.update(fields)
        marketplace = Marketplace(**values)
        db_session.add(marketplace)
        db_session.commit()
        return marketplace

    return factory


@pytest.fixture
def make_product(db_session: Session) -> Callable[..., Product]:
    """Factory: make_product(marketplace, **fields) -> a committed offer."""

    def factory(marketplace: Marketplace, **fields: Any) -> Product:
        number = next(_counter)
        values: dict[str, Any] = {
            "marketplace_id": marketplace.id,
            "external_id": f"ext-{number}",
            "title": f"Product {number}",
            "price_minor": 1999,
            "currency": marketplace.currency,
            "relation_token": f"g-{number:016x}",
            "match_method": "single",
            "match_confidence": Decimal("1.00"),
        }
        values.update(fields)
        product = Product(**values)
        db_session.add(product)
        db_session.commit()
        return product

    return factory


MAIL_WAIT_S = 30.0


def wait_for_mail(received: list[Any], count: int) -> list[Any]:
    """The received messages once there are at least `count` (fails after MAIL_WAIT_S)."""
    deadline = time.monotonic() + MAIL_WAIT_S
    while len(received) < count:
        assert time.monotonic() < deadline, f"no e-mail after {MAIL_WAIT_S} s"
        time.sleep(0.05)
    return received
