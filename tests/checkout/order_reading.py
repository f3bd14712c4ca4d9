"""Reading an order's money back in the checkout tests (its refunds, the shopper's notices, the
books checks and the wallet balance, each in a session of its own: what the workers wrote), and
moving a sandbox store's order through the sandbox's control API."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from commerce.models import User
from commerce.notifications import Notification
from commerce.order_models import Order, Refund
from commerce.orders import order_books_problems
from commerce.wallet import wallet_balance
from tests.checkout.shop import Shop, stripe_books_problems
from tests.loopback_http import loopback_http


def refunds_of(shop: Shop, sub_order_id: int) -> list[Refund]:
    """The sub-order's refunds, oldest first (detached, readable after the session)."""
    with shop.session() as session:
        refunds = list(
            session.scalars(
                sa.select(Refund).where(Refund.sub_order_id == sub_order_id).order_by(Refund.id)
            )
        )
        session.expunge_all()
        return refunds


def notices_of(shop: Shop, user_id: int, kind: str) -> list[str]:
    """The messages of the shopper's notifications of one kind."""
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(Notification.message).where(
                    Notification.user_id == user_id, Notification.kind == kind
                )
            )
        )


def books_problems(shop: Shop, number: str) -> list[str]:
    """What the order's books and Stripe's disagree on (empty when they add up)."""
    with shop.session() as session:
        order = session.scalar(sa.select(Order).where(Order.number == number))
        assert order is not None
        return order_books_problems(session, order) + stripe_books_problems(order)


def wallet_minor(shop: Shop, user: User) -> int:
    """The shopper's wallet balance now, in minor units."""
    with shop.session() as session:
        fresh = session.get(User, user.id)
        assert fresh is not None
        return wallet_balance(session, fresh).minor


def control_store_order(
    shop: Shop, slug: str, marketplace_order_id: str, action: str, **body: Any
) -> Any:
    """POST /_sandbox/orders/<slug>/<number>/<action> (advance, refund, cancel…); its JSON."""
    number = marketplace_order_id.rsplit("/", 1)[-1]
    response = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/{slug}/{number}/{action}", json=body, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()
