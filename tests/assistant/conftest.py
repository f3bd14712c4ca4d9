"""Fixtures for the assistant's tests: the real Meilisearch of the session with the small test
catalog indexed twice (with real embeddings, and keyword-only), a migrated storefront DB, and an
app factory pointed at them.

The embedding model is optional: `embedder` is None when it is not installed, and only the
fixtures that need real vectors skip, saying so.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import meilisearch
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from assistant.embeddings import Embedder, load_embedder, model_status
from assistant.index_profile import forget_index_profiles
from commerce.accounts import register_user
from commerce.db import dispose_engines, get_session_factory
from commerce.models import Base, User, import_all_models
from onecart.settings import REPO_ROOT, Settings
from storefront import create_app
from storefront.db_migrate import upgrade_database
from tests.assistant.catalog import catalog_vectors, index_catalog, insert_catalog

RUN_ID = uuid.uuid4().hex[:8]
PASSWORD = "correct-Horse-7-battery"
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def embedder() -> Embedder | None:
    """The process's offer embedding model (what the offer_embeddings asset loads), or None when
    its packages are not installed. Its ONNX export is kept in the checkout's var/models, so
    only a fresh checkout pays for it."""
    return load_embedder(cache_dir=REPO_ROOT / "var" / "models")


@pytest.fixture(scope="session")
def meili(meili_server: str, settings: Settings) -> Iterator[meilisearch.Client]:
    """A client for the session's Meilisearch; the assistant's test indexes go afterwards."""
    client = meilisearch.Client(meili_server, settings.meili_master_key, timeout=30)
    yield client
    for index in client.get_indexes({"limit": 1000})["results"]:
        if index.uid.startswith(f"assistant_{RUN_ID}"):
            client.delete_index(index.uid)


@pytest.fixture(scope="session")
def vector_index(meili: meilisearch.Client, embedder: Embedder | None) -> str:
    """The test catalog with real all-MiniLM-L6-v2 vectors (skips without the model)."""
    if embedder is None:
        pytest.skip(f"hybrid search needs the embedding model: {model_status().reason}")
    uid = f"assistant_{RUN_ID}_vectors"
    index_catalog(meili, uid, catalog_vectors(embedder))
    forget_index_profiles()
    return uid


@pytest.fixture(scope="session")
def keyword_index(meili: meilisearch.Client) -> str:
    """The same catalog without vectors: the index has no embedder, as before any embedding."""
    uid = f"assistant_{RUN_ID}_keywords"
    index_catalog(meili, uid, None)
    forget_index_profiles()
    return uid


@pytest.fixture(scope="session")
def storefront_url(settings: Settings) -> Iterator[str]:
    """A migrated SQLite storefront DB for this module tree."""
    path = settings.home_dir / "assistant-tests" / f"storefront-{RUN_ID}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    upgrade_database(url)
    import_all_models()
    try:
        yield url
    finally:
        dispose_engines()


@pytest.fixture
def db(storefront_url: str) -> Iterator[Session]:
    """A session on the test DB; every table is emptied after the test."""
    session = get_session_factory(storefront_url)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
        factory = get_session_factory(storefront_url)
        with factory() as cleanup, cleanup.begin():
            for table in reversed(Base.metadata.sorted_tables):
                cleanup.execute(table.delete())


@pytest.fixture
def catalog_rows(db: Session) -> dict[str, Any]:
    """The test catalog in the storefront DB (products by search document id)."""
    return insert_catalog(db)


@pytest.fixture
def make_app(storefront_url: str, settings: Settings, meili_server: str) -> Callable[..., Flask]:
    """make_app(index_uid, **config): the storefront on the test DB and Meilisearch, CSRF off
    unless asked, with its own rate-limit key prefix."""

    def factory(index_uid: str, **config: Any) -> Flask:
        forget_index_profiles()
        values: dict[str, Any] = {
            "TESTING": True,
            "DATABASE_URL": storefront_url,
            "SECRET_KEY": f"assistant-tests-{RUN_ID}",
            "WTF_CSRF_ENABLED": False,
            "REDIS_URL": settings.redis_url,
            "RATE_LIMIT_PREFIX": f"onecart-test:assistant:{RUN_ID}:{next(_numbers)}:",
            "MEILI_URL": meili_server,
            "MEILI_MASTER_KEY": settings.meili_master_key,
            "MEILI_INDEX": index_uid,
            "FX_CACHE_SECONDS": 0,
        }
        values.update(config)
        return create_app(values)

    return factory


@pytest.fixture
def make_user(db: Session) -> Callable[..., User]:
    """make_user(username=None): a committed shopper with password PASSWORD."""

    def factory(username: str | None = None) -> User:
        name = username or f"asker{next(_numbers)}"
        user = register_user(db, username=name, email=f"{name}@example.com", password=PASSWORD)
        db.commit()
        return user

    return factory


def log_in(client: FlaskClient, user: User) -> None:
    """Sign in through the real login form."""
    response = client.post("/login", data={"login": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


# A model package that is not installed: the assistant reports its model missing and answers on
# the keyword-only index (works everywhere, no model download).
MISSING_MODEL = "onecart_no_such_model_package"


@pytest.fixture
def keyword_app(
    make_app: Callable[..., Flask], keyword_index: str, catalog_rows: dict[str, Any]
) -> Flask:
    """The site on the keyword-only index with the model reported missing."""
    return make_app(keyword_index, ASSISTANT_MODEL_PACKAGE=MISSING_MODEL)
