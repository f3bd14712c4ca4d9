"""Stripe is never asked while a top-up's handler holds a database write lock: a slow or hanging
Stripe call would otherwise stop every other writer (checkouts, other webhooks) for as long as
the Stripe client waits. Against localstripe, over a Stripe HTTP client that, before each request,
checks from a second connection that a writer could go ahead right now (SQLite: the database's
write lock is free; PostgreSQL: the shopper's row, which every wallet write locks, is not locked).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from commerce.db import normalize_database_url
from commerce.models import User
from onecart.money import Money
from onecart.settings import get_settings
from tests.checkout.conftest import localstripe_server
from tests.checkout.dispute_events import charge_of, dispute_object, new_dispute_id, post_event
from tests.checkout.shop import stripe_client
from tests.storefront.test_wallet_topup import (
    _balance,
    _pay_in_browser,
    _refund_in_dashboard,
    _start_topup,
    _webhook,
    app_config_overrides,
)

__all__ = ["app_config_overrides", "localstripe_server"]


class _WritersFree(stripe.HTTPClient):
    """Stripe over HTTP; before each request, notes it in `blocked` if a writer would wait."""

    name = "writers-free"

    def __init__(self, db_url: str, user_id: int) -> None:
        super().__init__()
        self.inner = stripe.new_default_http_client()
        self.db_url, self.user_id = db_url, user_id
        self.asked: list[str] = []
        self.blocked: list[str] = []

    def _writer_would_wait(self) -> bool:
        if self.db_url.startswith("sqlite"):
            database = make_url(self.db_url).database
            assert database
            connection = sqlite3.connect(database, timeout=0.05, isolation_level=None)
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                connection.close()
        engine = sa.create_engine(normalize_database_url(self.db_url), poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(
                    sa.select(User.id).where(User.id == self.user_id).with_for_update(nowait=True)
                )
                connection.rollback()
            return False
        except OperationalError:
            return True
        finally:
            engine.dispose()

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[Any, int, Any]:
        self.asked.append(f"{method} {url}")
        if self._writer_would_wait():
            self.blocked.append(f"{method} {url}")
        return self.inner.request(method, url, headers, post_data)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def watched(
    monkeypatch: pytest.MonkeyPatch, storefront_db_url: str, signed_in_user: User
) -> _WritersFree:
    """The webhook's Stripe client, watched."""
    http = _WritersFree(storefront_db_url, signed_in_user.id)
    settings = get_settings()
    client = stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": str(settings.stripe_api_base)},
        http_client=http,
        max_network_retries=0,
    )
    monkeypatch.setattr("storefront.webhooks.routes.stripe_client_from_settings", lambda _: client)
    return http


@pytest.mark.parametrize("credited", [True, False], ids=["credited", "refunded-before-credited"])
def test_a_top_up_refund_asks_stripe_before_it_locks_the_wallet(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    watched: _WritersFree,
    credited: bool,
) -> None:
    intent_id = _start_topup(client, "30")
    _pay_in_browser(intent_id)
    if credited:
        assert _webhook(app, intent_id).status_code == 200

    assert _refund_in_dashboard(app, intent_id, 1200).status_code == 200
    refund = stripe_client().v1.refunds.list(params={"payment_intent": intent_id}).data[0]
    failed = {**refund.to_dict(), "status": "failed", "payment_intent": intent_id}
    assert post_event(app, "charge.refund.updated", failed).status_code == 200
    opened = dispute_object(
        new_dispute_id(),
        charge=charge_of(intent_id),
        intent=intent_id,
        amount=3000,
        status="needs_response",
    )
    assert post_event(app, "charge.dispute.created", opened, created=int(time.time())).status_code
    assert _webhook(app, intent_id).status_code == 200

    assert watched.asked  # the handlers did ask Stripe
    assert watched.blocked == []
    # The refund (localstripe reports it succeeded) taken once; the dispute holds the rest.
    assert _balance(db_session, signed_in_user) == Money(0, "USD")
