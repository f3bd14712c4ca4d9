"""What an operator does in the admin area is recorded: who, when, to what, and what it did (the
refund's amount and where it went, the marketplace order id typed, the marketplace fields
changed), in `operator_actions` and as one log line on `onecart.operator`, and never a key's
value. A click that changes nothing records nothing. On the test database (SQLite, or
PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Marketplace, User
from commerce.operator_actions import OperatorAction
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    PaymentMethod,
    PaymentStatus,
    SubOrderStatus,
)
from storefront.request_log import JsonLogFormatter
from tests.storefront.order_factories import add_order, add_payment, add_sub_order
from tests.storefront.test_admin import NEW_MARKETPLACE, SECRET_KEY

OPERATOR = "ops-carol"


@pytest.fixture
def admin_client(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> FlaskClient:
    login(client, make_user(username=OPERATOR, is_admin=True))
    return client


def _wallet_order_part(
    db_session: Session, shopper: User, market: Marketplace, **fields: object
) -> tuple[Order, MarketplaceOrder]:
    """An order paid from the wallet (995 cents, captured) with one part on `market`."""
    order = add_order(
        db_session, shopper, total_minor=995, currency="USD", payment_method=PaymentMethod.WALLET
    )
    add_payment(
        db_session,
        order,
        method=PaymentMethod.WALLET,
        status=PaymentStatus.CAPTURED,
        amount_minor=995,
        provider_reference=f"wallet-{order.id}",
    )
    sub = add_sub_order(db_session, order, market, amount_minor=995, **fields)
    db_session.commit()
    return order, sub


def _actions(db_session: Session) -> list[OperatorAction]:
    db_session.expire_all()
    return list(db_session.scalars(sa.select(OperatorAction).order_by(OperatorAction.id)))


def test_an_operators_placed_refund_and_cancelled_are_recorded_with_who_and_what(
    admin_client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The three clicks that move a shopper's money on an operator's word (mark placed: the
    payment is captured; refund; recorded cancelled: refunded) left no trace of who clicked,
    unlike a flag's resolution, which keeps `resolved_by`. A second click changes nothing and
    adds nothing."""
    shopper = make_user()
    market = make_marketplace(name="DummyMart Ops")
    placed_order, to_place = _wallet_order_part(
        db_session, shopper, market, status=SubOrderStatus.NEEDS_ATTENTION
    )
    refunded_order, to_refund = _wallet_order_part(
        db_session, shopper, market, status=SubOrderStatus.NEEDS_ATTENTION
    )
    cancelled_order, to_cancel = _wallet_order_part(
        db_session, shopper, market, status=SubOrderStatus.PLACED, marketplace_order_id="77"
    )

    with caplog.at_level(logging.INFO, logger="onecart.operator"):
        for _ in range(2):
            admin_client.post(
                f"/admin/attention/{to_place.id}/placed", data={"marketplace_order_id": "M-51"}
            )
            admin_client.post(f"/admin/attention/{to_refund.id}/refund")
            admin_client.post(f"/admin/attention/{to_cancel.id}/cancelled")

    actions = _actions(db_session)
    assert [(a.operator, a.action, a.order_id) for a in actions] == [
        (OPERATOR, "sub_order_marked_placed", placed_order.id),
        (OPERATOR, "sub_order_refunded", refunded_order.id),
        (OPERATOR, "sub_order_recorded_cancelled", cancelled_order.id),
    ]
    assert [a.subject for a in actions] == [
        f"{order.number}: DummyMart Ops"
        for order in (placed_order, refunded_order, cancelled_order)
    ]
    assert "M-51" in actions[0].detail
    assert "$9.95" in actions[1].detail and "wallet" in actions[1].detail
    assert "$9.95" in actions[2].detail
    assert all(action.acted_at is not None for action in actions)
    lines = [r for r in caplog.records if r.name == "onecart.operator"]
    assert [r.getMessage() for r in lines] == [
        f"{OPERATOR}: {a.action} {a.subject}: {a.detail}" for a in actions
    ]


def test_marketplace_changes_are_recorded_with_the_fields_changed_never_the_key(
    admin_client: FlaskClient,
    db_session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Adding a marketplace, editing it (its API URL and key: where the workers send the key),
    disabling and enabling it: each recorded with who and which fields changed; the key's value
    appears nowhere, only that it was replaced."""
    with caplog.at_level(logging.INFO, logger="onecart.operator"):
        assert admin_client.post("/admin/marketplaces/new", data=NEW_MARKETPLACE).status_code == 302
        market = db_session.scalar(
            sa.select(Marketplace).where(Marketplace.slug == NEW_MARKETPLACE["slug"])
        )
        assert market is not None
        form = {
            **NEW_MARKETPLACE,
            "api_base_url": "https://api.lagos-deals.example/v2",
            "api_key": "replacement-key-0002",
        }
        form.pop("slug")
        url = f"/admin/marketplaces/{market.id}/edit"
        assert admin_client.post(url, data=form).status_code == 302
        # The same form again, the key left blank: nothing changes and nothing is recorded.
        assert admin_client.post(url, data={**form, "api_key": ""}).status_code == 302
        admin_client.post(f"/admin/marketplaces/{market.id}/disable")
        admin_client.post(f"/admin/marketplaces/{market.id}/enable")

    actions = _actions(db_session)
    assert [(a.operator, a.action, a.marketplace_id) for a in actions] == [
        (OPERATOR, "marketplace_added", market.id),
        (OPERATOR, "marketplace_edited", market.id),
        (OPERATOR, "marketplace_disabled", market.id),
        (OPERATOR, "marketplace_enabled", market.id),
    ]
    edited = actions[1].detail
    assert "api_base_url" in edited and "https://api.lagos-deals.example/v2" in edited
    assert "API key replaced" in edited
    assert "name" not in edited  # unchanged fields are not listed
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text in [a.detail for a in actions] + [logged]:
        assert SECRET_KEY not in text and "replacement-key-0002" not in text


def test_an_operator_action_is_kept_when_its_order_is_gone(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    """The record outlives what it names: deleting the order leaves the action, its subject
    text intact (an audit trail that vanished with its order would hide what was done)."""
    from commerce.operator_actions import record_operator_action

    order = add_order(db_session, make_user(), total_minor=995, payment_method=PaymentMethod.WALLET)
    db_session.commit()
    record_operator_action(
        db_session,
        operator=OPERATOR,
        action="sub_order_refunded",
        subject=f"{order.number}: Shop",
        detail="its share of $9.95 is refunded to the shopper's OneCart wallet",
        order_id=order.id,
    )
    db_session.commit()
    db_session.delete(order)
    db_session.commit()

    [kept] = _actions(db_session)
    assert kept.order_id is None and kept.subject == f"{order.number}: Shop"


def test_the_site_writes_operator_actions_to_its_log_as_json_lines(app: Flask) -> None:
    """uWSGI configures no Python logging: an INFO line on a logger without a handler is
    dropped (the last-resort handler writes warnings and worse). The site gives `onecart`,
    the parent of `onecart.operator`, its JSON handler, so each action reaches the site's log
    (tests/ops/test_site_server.py runs the real server)."""
    operator_logger = logging.getLogger("onecart.operator")
    assert operator_logger.isEnabledFor(logging.INFO)
    assert operator_logger.handlers == []  # written once, by its parent's handler
    [handler] = [
        h
        for h in logging.getLogger("onecart").handlers
        if isinstance(h.formatter, JsonLogFormatter)
    ]
    record = operator_logger.makeRecord(
        "onecart.operator",
        logging.INFO,
        __file__,
        1,
        "%s: %s",
        (OPERATOR, "marketplace_disabled"),
        None,
        extra={"fields": {"event": "operator_action", "operator": OPERATOR}},
    )
    line = json.loads(handler.format(record))
    assert (line["event"], line["operator"], line["level"]) == ("operator_action", OPERATOR, "info")
