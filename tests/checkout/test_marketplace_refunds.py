"""A marketplace that refunds part of a placed sub-order (a line it could not ship) has the
shopper refunded that part, once: repeated polls, a later full refund or cancellation (only the
rest), a card refund whose reply is lost (looked up by its key), a refund in the marketplace's
currency (converted at the share's own rate), one in another currency (an operator decides), and
one the marketplace does not report (nothing happens). Real database, wallet and localstripe;
the marketplace's answer is the state its adapter reads (the fake adapters)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import Capability, MarketplaceAdapter, OrderState, OrderStatus
from commerce.marketplace_refunds import marketplace_refund_key
from commerce.models import Marketplace, User
from commerce.notification_models import Notification
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    Payment,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.order_timeline import build_order_view
from commerce.payments.gateway import PaymentGateway
from commerce.payments.providers import gateway_for_payment
from commerce.settlement import reconcile_refunds, settle_payment
from commerce.tracking import apply_marketplace_state, track_open_sub_orders
from tests.checkout.order_reading import books_problems, notices_of, refunds_of, wallet_minor
from tests.checkout.shop import Shop
from tests.checkout.test_payments_and_webhooks import LosesRefundReply


def _placed(shop: Shop, *, payment_method: str = "wallet") -> tuple[User, Order]:
    """An order with two ShopWave lines (USD) and one Kiondo line (KES), charged in USD, both
    sub-orders placed (marketplace ids as their formats give them); a card payment captured."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("shopwave", 1, 1), ("kiondo", 0, 1)])
    extra = {"test_card": "pm_card_visa"} if payment_method == "stripe" else {}
    order = shop.checkout(shop.client_for(user), payment_method=payment_method, **extra)
    with shop.session() as session, session.begin():
        for sub in shop.order(order.number).charged_sub_orders:
            session.execute(
                sa.update(MarketplaceOrder)
                .where(MarketplaceOrder.id == sub.id)
                .values(
                    status=SubOrderStatus.PLACED,
                    marketplace_order_id="gid://shopify/Order/1001"
                    if sub.marketplace.slug == "shopwave"
                    else "4100",
                )
            )
    if payment_method == "stripe":
        assert settle_payment(shop.session_factory, order.id)
    return user, shop.order(order.number)


def _state(
    status: OrderStatus, refunded_minor: int | None, currency: str | None = "USD"
) -> OrderState:
    return OrderState(
        marketplace_order_id="gid://shopify/Order/1001",
        status=status,
        raw_status=status.value.upper(),
        refunded_minor=refunded_minor,
        refunded_currency=currency if refunded_minor is not None else None,
    )


def test_a_refunded_line_is_passed_on_once_and_a_later_full_refund_returns_only_the_rest(
    shop: Shop,
) -> None:
    user, order = _placed(shop)
    shopwave = shop.sub_order(order, "shopwave")
    first, second = shopwave.items
    assert shopwave.currency == shopwave.charge_currency == "USD"
    before = wallet_minor(shop, user)

    # ShopWave could not ship the first line and refunded it (PARTIALLY_REFUNDED).
    partly = _state(OrderStatus.PROCESSING, first.line_total_minor)
    assert apply_marketplace_state(shop.session_factory, shopwave.id, partly)
    for _ in range(3):  # the same answer at every later poll passes nothing on again
        assert not apply_marketplace_state(shop.session_factory, shopwave.id, partly)

    [refund] = refunds_of(shop, shopwave.id)
    assert refund.amount_minor == first.charge_minor
    assert refund.idempotency_key == marketplace_refund_key(shopwave.id, first.line_total_minor)
    assert (refund.kind, refund.status) == (RefundKind.WALLET_CREDIT, RefundStatus.SUCCEEDED)
    assert wallet_minor(shop, user) == before + first.charge_minor
    fresh = shop.sub_order(order, "shopwave")
    assert fresh.status == SubOrderStatus.PROCESSING  # the rest still ships
    assert fresh.marketplace_refunded_minor == first.line_total_minor
    assert fresh.kept_charge_minor == second.charge_minor
    [message] = notices_of(shop, user.id, "sub_order_partly_refunded")
    assert "ShopWave refunded" in message
    assert books_problems(shop, order.number) == []

    # The order page names the refund on ShopWave's timeline and in its details.
    with shop.session() as session:
        view = build_order_view(session, session.get(Order, order.id))  # type: ignore[arg-type]
        timeline = next(v for v in view.sub_orders if v.sub_order.id == shopwave.id).timeline
        assert any(
            entry.step == "refunded" and "ShopWave refunded" in entry.detail for entry in timeline
        )
    page = shop.client_for(user).get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="marketplace-refund"' in page

    # Then it refunds (and cancels) the whole order: only the rest comes back.
    whole = _state(OrderStatus.REFUNDED, shopwave.amount_minor)
    assert apply_marketplace_state(shop.session_factory, shopwave.id, whole)
    refunds = refunds_of(shop, shopwave.id)
    assert [r.amount_minor for r in refunds] == [first.charge_minor, second.charge_minor]
    assert sum(r.amount_minor for r in refunds) == shopwave.charge_minor
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED
    assert wallet_minor(shop, user) == before + shopwave.charge_minor
    assert books_problems(shop, order.number) == []


def test_repeated_tracking_polls_refund_once_and_a_second_partial_refund_adds_only_its_part(
    shop: Shop,
) -> None:
    user, order = _placed(shop)
    shopwave = shop.sub_order(order, "shopwave")
    first, second = shopwave.items
    answers = {"refunded": first.line_total_minor}

    class RefundingShop:
        """ShopWave's adapter answering tracking with a cumulative refund."""

        slug = "shopwave"
        capabilities = frozenset({Capability.TRACK})

        def order_status(self, marketplace_order_id: str) -> OrderState:
            return _state(OrderStatus.SHIPPED, answers["refunded"])

    def adapter_for(marketplace: Marketplace) -> MarketplaceAdapter:
        if marketplace.slug == "shopwave":
            return RefundingShop()  # type: ignore[return-value]

        class Quiet:
            def order_status(self, marketplace_order_id: str) -> OrderState:
                return OrderState(marketplace_order_id, OrderStatus.PENDING, "pending")

        return Quiet()  # type: ignore[return-value]

    for _ in range(3):
        track_open_sub_orders(shop.session_factory, adapter_for=adapter_for)
    assert [r.amount_minor for r in refunds_of(shop, shopwave.id)] == [first.charge_minor]

    # A second line refunded as well, off by one cent for the shop's rounding: cumulative.
    answers["refunded"] = first.line_total_minor + second.line_total_minor - 1
    for _ in range(2):
        track_open_sub_orders(shop.session_factory, adapter_for=adapter_for)
    refunds = refunds_of(shop, shopwave.id)
    assert [r.amount_minor for r in refunds] == [first.charge_minor, second.charge_minor - 1]
    # Each refund told once (the first merged into the news of the shipment it came with).
    with shop.session() as session:
        messages = session.scalars(
            sa.select(Notification.message).where(Notification.user_id == user.id)
        ).all()
    assert sum(message.count("ShopWave refunded") for message in messages) == 2
    assert books_problems(shop, order.number) == []


def _losing(session: Session, payment: Payment) -> PaymentGateway:
    return LosesRefundReply(gateway_for_payment(session, payment))  # type: ignore[return-value]


def test_a_card_refund_whose_reply_is_lost_is_looked_up_by_its_key_never_sent_twice(
    shop: Shop,
) -> None:
    user, order = _placed(shop, payment_method="stripe")
    shopwave = shop.sub_order(order, "shopwave")
    first = shopwave.items[0]
    partly = _state(OrderStatus.SHIPPED, first.line_total_minor)

    assert apply_marketplace_state(shop.session_factory, shopwave.id, partly, gateway_for=_losing)
    [refund] = refunds_of(shop, shopwave.id)
    assert (refund.kind, refund.status) == (RefundKind.CARD_REFUND, RefundStatus.PROCESSING)
    # Polled again while the outcome is unknown: no second refund, nothing sent again.
    assert not apply_marketplace_state(
        shop.session_factory, shopwave.id, partly, gateway_for=_losing
    )
    assert len(refunds_of(shop, shopwave.id)) == 1

    # The sweeper asks Stripe for a refund with that key: it was made.
    assert reconcile_refunds(shop.session_factory, older_than=timedelta(0)) == 1
    [refund] = refunds_of(shop, shopwave.id)
    assert (refund.status, refund.amount_minor) == (RefundStatus.SUCCEEDED, first.charge_minor)
    assert shop.order(order.number).payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert notices_of(shop, user.id, "refund_made")
    assert books_problems(shop, order.number) == []  # Stripe refunded it exactly once


def test_a_refund_before_the_capture_is_left_out_of_it(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 0, 1), ("shopwave", 1, 1), ("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shopwave = shop.sub_order(order, "shopwave")
    first = shopwave.items[0]
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == shopwave.id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="gid://shopify/Order/1001")
        )
    # Kiondo is still being placed, so the card is not captured yet: the part is released.
    partly = _state(OrderStatus.PROCESSING, first.line_total_minor)
    assert apply_marketplace_state(shop.session_factory, shopwave.id, partly)
    [refund] = refunds_of(shop, shopwave.id)
    assert refund.kind == RefundKind.RELEASE and refund.amount_minor == first.charge_minor
    assert shop.order(order.number).payment.status == PaymentStatus.AUTHORIZED

    kiondo = shop.sub_order(order, "kiondo")
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == kiondo.id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="4100")
        )
    assert settle_payment(shop.session_factory, order.id)
    payment = shop.order(order.number).payment
    assert payment.captured_minor == payment.amount_minor - first.charge_minor
    assert books_problems(shop, order.number) == []


def test_a_refund_in_the_marketplaces_currency_is_converted_at_the_shares_own_rate(
    shop: Shop,
) -> None:
    _user, order = _placed(shop)
    kiondo = shop.sub_order(order, "kiondo")
    assert (kiondo.currency, kiondo.charge_currency) == ("KES", "USD")
    half = kiondo.amount_minor // 2
    partly = _state(OrderStatus.PROCESSING, half, "KES")
    assert apply_marketplace_state(shop.session_factory, kiondo.id, partly)
    [refund] = refunds_of(shop, kiondo.id)
    # Half the KES amount is half the USD share, rounded up (refunds round up, shares down).
    exact = Decimal(kiondo.charge_minor) * half / kiondo.amount_minor
    assert refund.currency == "USD"
    assert exact <= refund.amount_minor < exact + 1
    assert books_problems(shop, order.number) == []


def test_a_refund_reported_in_another_currency_goes_to_an_operator(shop: Shop) -> None:
    user, order = _placed(shop)
    kiondo = shop.sub_order(order, "kiondo")
    odd = _state(OrderStatus.PROCESSING, 1000, "USD")  # Kiondo's order is in KES
    apply_marketplace_state(shop.session_factory, kiondo.id, odd)
    apply_marketplace_state(shop.session_factory, kiondo.id, odd)
    assert refunds_of(shop, kiondo.id) == []
    assert shop.sub_order(order, "kiondo").marketplace_refunded_minor == 0
    reason = shop.order(order.number).attention_reason
    assert reason is not None and f"sub-order {kiondo.id}" in reason
    assert "no exact basis" in reason and reason.count(f"sub-order {kiondo.id}") == 1
    assert notices_of(shop, user.id, "sub_order_partly_refunded") == []


def test_a_refund_no_longer_reported_or_reported_smaller_changes_nothing(shop: Shop) -> None:
    user, order = _placed(shop)
    shopwave = shop.sub_order(order, "shopwave")
    first = shopwave.items[0]
    before = wallet_minor(shop, user)
    assert not apply_marketplace_state(
        shop.session_factory, shopwave.id, _state(OrderStatus.PENDING, 0)
    )
    assert apply_marketplace_state(
        shop.session_factory, shopwave.id, _state(OrderStatus.PENDING, first.line_total_minor)
    )
    # A reply without the refunds (not reported) is not "nothing refunded", and a smaller
    # figure (a refund the shop deleted) takes nothing back: neither moves the money.
    for later in (None, first.line_total_minor - 100, first.line_total_minor):
        assert not apply_marketplace_state(
            shop.session_factory, shopwave.id, _state(OrderStatus.PENDING, later)
        )
    assert [r.amount_minor for r in refunds_of(shop, shopwave.id)] == [first.charge_minor]
    assert shop.sub_order(order, "shopwave").marketplace_refunded_minor == first.line_total_minor
    assert wallet_minor(shop, user) == before + first.charge_minor
