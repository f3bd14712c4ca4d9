"""The per-request SQLAlchemy session of the storefront.

Views call :func:`db_session`; the session is opened on first use in a request (or CLI command)
and closed at teardown, rolled back first if the request failed. The engine and session factory
come from commerce.db, the same ones the RQ jobs and the pipeline sync use.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from commerce.db import get_session_factory

_EXTENSION_KEY = "onecart_session_factory"


def init_database(app: Flask) -> None:
    """Bind the app to the storefront DB at app.config["DATABASE_URL"] (None: the settings' URL)."""
    app.extensions[_EXTENSION_KEY] = get_session_factory(app.config.get("DATABASE_URL"))
    app.teardown_appcontext(close_db_session)


def session_factory() -> sessionmaker[Session]:
    """The current app's session factory (for code that needs a session outside a request)."""
    return current_app.extensions[_EXTENSION_KEY]


def db_session() -> Session:
    """This request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = session_factory()()
    return g.db_session


def close_db_session(exc: BaseException | None = None) -> None:
    """Teardown: roll back whatever a failed request left, then close."""
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return
    try:
        if exc is not None:
            session.rollback()
    finally:
        session.close()
