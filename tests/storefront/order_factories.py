"""Orders as the storefront's order tests set them up: a shopper's order shipped to Ada in
Nairobi, its parts on marketplaces (sub-orders) and its payment, each helper taking only what a
test is about and any other column as a keyword. Each adds its row and flushes (so it has its id);
committing is the test's call."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from commerce.models import Marketplace, User
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    Payment,
    PaymentMethod,
    PaymentStatus,
)


def add_order(
    session: Session,
    user: User,
    *,
    total_minor: int,
    payment_method: PaymentMethod,
    currency: str = "USD",
    **fields: Any,
) -> Order:
    """`user`'s order of `total_minor` paid by `payment_method`, shipped to Ada in Nairobi."""
    order = Order(
        user_id=user.id,
        total_minor=total_minor,
        currency=currency,
        payment_method=payment_method,
        validation_token=uuid.uuid4().hex,
        email=user.email,
        ship_name="Ada",
        ship_line1="1 Road",
        ship_city="Nairobi",
        ship_country="KE",
        **fields,
    )
    session.add(order)
    session.flush()
    return order


def add_sub_order(
    session: Session,
    order: Order,
    marketplace: Marketplace,
    *,
    amount_minor: int,
    currency: str = "USD",
    **fields: Any,
) -> MarketplaceOrder:
    """`order`'s part on `marketplace`, of `amount_minor` charged as it costs (same currency),
    with a fresh idempotency key; `fields` give its status, marketplace number and the like."""
    sub = MarketplaceOrder(
        order_id=order.id,
        marketplace_id=marketplace.id,
        amount_minor=amount_minor,
        currency=currency,
        charge_minor=amount_minor,
        charge_currency=currency,
        idempotency_key=uuid.uuid4().hex,
        **fields,
    )
    session.add(sub)
    session.flush()
    return sub


def add_payment(
    session: Session,
    order: Order,
    *,
    method: PaymentMethod,
    status: PaymentStatus,
    amount_minor: int,
    provider_reference: str,
    currency: str = "USD",
    captured_minor: int | None = None,
) -> Payment:
    """`order`'s payment of `amount_minor`, all of it captured unless `captured_minor` says
    otherwise."""
    payment = Payment(
        order_id=order.id,
        method=method,
        status=status,
        currency=currency,
        amount_minor=amount_minor,
        captured_minor=amount_minor if captured_minor is None else captured_minor,
        provider_reference=provider_reference,
    )
    session.add(payment)
    session.flush()
    return payment
