"""Submitting checkout: one order per validation token, totals re-checked live, clear refusals."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from commerce.models import CartItem, User, WalletEntry
from commerce.order_models import Order, OutboxMessage, Payment, PaymentMethod, SubOrderStatus
from commerce.wallet import wallet_balance
from tests.checkout.conftest import Shop


def _count(shop: Shop, model: type) -> int:
    with shop.session() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_wallet_checkout_records_order_sub_orders_payment_and_outbox(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 2), ("dummymart", 0, 1), ("naijamall", 0, 1)])
    client = shop.client_for(user)

    order = shop.checkout(client, payment_method="wallet")

    charged = order.charged_sub_orders
    assert {sub.marketplace.slug for sub in charged} == {"shopwave", "dummymart"}
    assert [sub.marketplace.slug for sub in order.handoff_sub_orders] == ["naijamall"]
    assert order.handoff_sub_orders[0].charge_minor == 0
    assert sum(sub.charge_minor for sub in charged) == order.total_minor
    expected = 2 * shop.product("shopwave").price_minor + shop.product("dummymart").price_minor
    assert order.total_minor == expected and order.currency == "USD"
    assert order.payment is not None and order.payment.method == PaymentMethod.WALLET
    assert order.payment.amount_minor == expected
    assert all(sub.status == SubOrderStatus.PENDING for sub in charged)
    with shop.session() as session:
        balance = wallet_balance(session, session.get(User, user.id))
        assert balance.minor == 500_000 - expected
        # The bought lines left the cart; the hand-off line stays for the shopper to finish.
        remaining = list(
            session.scalars(sa.select(CartItem.product_id).where(CartItem.user_id == user.id))
        )
        assert remaining == [shop.product("naijamall").id]
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 2
        saved = session.get(User, user.id)
        assert (saved.ship_city, saved.ship_country) == ("London", "GB")


def test_second_submit_with_same_token_charges_once(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 0, 1), ("shopwave", 1, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    first = shop.submit(client, form, payment_method="wallet")
    second = shop.submit(client, form, payment_method="wallet")

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert _count(shop, Order) == 1
    assert _count(shop, Payment) == 1
    with shop.session() as session:
        debits = session.scalar(
            sa.select(sa.func.count()).select_from(WalletEntry).where(WalletEntry.amount_minor < 0)
        )
    assert debits == 1


def test_second_card_submit_with_same_token_authorizes_once(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    first = shop.submit(client, form, payment_method="stripe", test_card="pm_card_visa")
    second = shop.submit(client, form, payment_method="stripe", test_card="pm_card_visa")

    assert first.headers["Location"] == second.headers["Location"]
    orders = shop.orders()
    assert len(orders) == 1 and orders[0].payment is not None
    assert orders[0].payment.provider_reference.startswith("pi_")
