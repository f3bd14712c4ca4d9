"""A store that refunds a delivered order (a return, a late goodwill refund) has the shopper
refunded, once: tracking keeps delivered sub-orders watched through a return window, less often
than open ones and after them; a refund of part of the order is passed on as before delivery; a
refund of the whole order gives back only the rest of the share and leaves the sub-order
delivered; a cancellation that refunds nothing goes to an operator, once; past the window
nothing is asked. Real database, wallet and localstripe; the marketplaces' answers come from
fake adapters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from adapters.base import Capability, MarketplaceAdapter, OrderState, OrderStatus
from commerce.marketplace_refunds import marketplace_refund_key
from commerce.models import Marketplace, User, utc_now
from commerce.notification_models import Notification
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    OrderEvent,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.order_models import (
    OrderStatus as ShopperOrderStatus,
)
from commerce.settlement import settle_payment
from commerce.tracking import apply_marketplace_state, track_open_sub_orders
from commerce.tracking_schedule import TrackingPolicy
from storefront.jobs import JobPolicy
from tests.checkout.order_reading import books_problems, notices_of, refunds_of, wallet_minor
from tests.checkout.shop import Shop
from tests.checkout.tracking_fakes import set_columns

SHOPWAVE_ID = "gid://shopify/Order/1001"
KIONDO_ID = "4100"
DAY = timedelta(days=1)


@dataclass
class FakeMarketplaces:
    """ShopWave and Kiondo answering tracking from `answers` (by marketplace order id), every
    question written down in order; a marketplace order without an answer is still pending."""

    answers: dict[str, OrderState] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def adapter_for(self, marketplace: Marketplace) -> MarketplaceAdapter:
        fake = self

        class Answering:
            slug = marketplace.slug
            capabilities = frozenset({Capability.TRACK})

            def order_status(self, marketplace_order_id: str) -> OrderState:
                fake.asked.append(marketplace_order_id)
                return fake.answers.get(
                    marketplace_order_id,
                    OrderState(marketplace_order_id, OrderStatus.PENDING, "pending"),
                )

        return Answering()  # type: ignore[return-value]

    def track(self, shop: Shop, policy: TrackingPolicy | None = None) -> None:
        track_open_sub_orders(shop.session_factory, adapter_for=self.adapter_for, policy=policy)


def _state(
    marketplace_order_id: str,
    status: OrderStatus,
    refunded_minor: int | None = None,
    currency: str = "USD",
) -> OrderState:
    return OrderState(
        marketplace_order_id=marketplace_order_id,
        status=status,
        raw_status=status.value.upper(),
        refunded_minor=refunded_minor,
        refunded_currency=currency if refunded_minor is not None else None,
    )


def _placed(
    shop: Shop,
    lines: list[tuple[str, int, int]],
    *,
    payment_method: str = "wallet",
    ids: dict[str, str] | None = None,
) -> tuple[User, Order]:
    """An order with its sub-orders placed (marketplace ids as their formats give them); a card
    payment captured."""
    ids = ids or {"shopwave": SHOPWAVE_ID, "kiondo": KIONDO_ID}
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, lines)
    extra = {"test_card": "pm_card_visa"} if payment_method == "stripe" else {}
    order = shop.checkout(shop.client_for(user), payment_method=payment_method, **extra)
    for sub in shop.order(order.number).charged_sub_orders:
        set_columns(
            shop,
            sub.id,
            status=SubOrderStatus.PLACED,
            placed_at=utc_now() - 2 * DAY,
            marketplace_order_id=ids.get(sub.marketplace.slug, f"cart-{sub.id}"),
        )
    if payment_method == "stripe":
        assert settle_payment(shop.session_factory, order.id)
    return user, shop.order(order.number)


def _delivered(
    shop: Shop, fake: FakeMarketplaces, order: Order, *, days_ago: int = 3
) -> dict[str, MarketplaceOrder]:
    """Each ShopWave and Kiondo sub-order delivered (as tracking records it), `days_ago` days
    ago, and last polled then."""
    for slug, marketplace_order_id in (("shopwave", SHOPWAVE_ID), ("kiondo", KIONDO_ID)):
        sub = shop.sub_order(order, slug)
        assert apply_marketplace_state(
            shop.session_factory, sub.id, _state(marketplace_order_id, OrderStatus.DELIVERED)
        )
        fake.answers[marketplace_order_id] = _state(marketplace_order_id, OrderStatus.DELIVERED)
        _age(shop, sub.id, days_ago=days_ago)
    assert shop.order(order.number).status == ShopperOrderStatus.DELIVERED
    return {slug: shop.sub_order(order, slug) for slug in ("shopwave", "kiondo")}


def _age(shop: Shop, sub_order_id: int, *, days_ago: int) -> None:
    """The sub-order was delivered and last polled `days_ago` days ago."""
    then = utc_now() - timedelta(days=days_ago)
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(OrderEvent)
            .where(OrderEvent.sub_order_id == sub_order_id)
            .values(occurred_at=then - timedelta(minutes=1))
        )
        session.execute(
            sa.update(OrderEvent)
            .where(OrderEvent.sub_order_id == sub_order_id, OrderEvent.step == "delivered")
            .values(occurred_at=then)
        )
    set_columns(shop, sub_order_id, last_polled_at=then, last_poll_attempt_at=then)


def _a_day_later(shop: Shop, *sub_order_ids: int) -> None:
    """The delivered sub-orders' last answer (and question) is a day old: due for their next
    refund check."""
    then = utc_now() - DAY - timedelta(minutes=1)
    for sub_order_id in sub_order_ids:
        set_columns(shop, sub_order_id, last_polled_at=then, last_poll_attempt_at=then)


TWO_MARKETS = [("shopwave", 0, 1), ("shopwave", 1, 1), ("kiondo", 0, 1)]


def test_a_refund_after_delivery_is_passed_on_once_across_repeated_polls(shop: Shop) -> None:
    fake = FakeMarketplaces()
    user, order = _placed(shop, TWO_MARKETS)
    shopwave = _delivered(shop, fake, order)["shopwave"]
    first = shopwave.items[0]
    before = wallet_minor(shop, user)

    # Three days after delivery the shopper returns the first item; ShopWave refunds it.
    fake.answers[SHOPWAVE_ID] = _state(SHOPWAVE_ID, OrderStatus.DELIVERED, first.line_total_minor)
    fake.track(shop)
    assert SHOPWAVE_ID in fake.asked
    [refund] = refunds_of(shop, shopwave.id)
    assert refund.amount_minor == first.charge_minor
    assert refund.idempotency_key == marketplace_refund_key(shopwave.id, first.line_total_minor)
    assert (refund.kind, refund.status) == (RefundKind.WALLET_CREDIT, RefundStatus.SUCCEEDED)
    assert wallet_minor(shop, user) == before + first.charge_minor

    # Asked again at once: not yet (a delivered order is asked at most once a day).
    fake.asked.clear()
    fake.track(shop)
    assert fake.asked == []
    # A day later, and the day after: the same answer passes nothing on again.
    for _ in range(2):
        _a_day_later(shop, shopwave.id)
        fake.track(shop)
    assert fake.asked.count(SHOPWAVE_ID) == 2
    assert len(refunds_of(shop, shopwave.id)) == 1
    assert wallet_minor(shop, user) == before + first.charge_minor
    fresh = shop.sub_order(order, "shopwave")
    assert fresh.status == SubOrderStatus.DELIVERED
    assert fresh.marketplace_refunded_minor == first.line_total_minor
    assert len(notices_of(shop, user.id, "sub_order_partly_refunded")) == 1
    assert books_problems(shop, order.number) == []


def test_a_full_refund_after_delivery_returns_only_the_rest_and_the_order_stays_delivered(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    user, order = _placed(shop, TWO_MARKETS, payment_method="stripe")
    subs = _delivered(shop, fake, order)
    shopwave, kiondo = subs["shopwave"], subs["kiondo"]
    first = shopwave.items[0]

    # A return of the first item, then (a day later) ShopWave refunds the whole order.
    fake.answers[SHOPWAVE_ID] = _state(SHOPWAVE_ID, OrderStatus.DELIVERED, first.line_total_minor)
    fake.track(shop)
    fake.answers[SHOPWAVE_ID] = _state(SHOPWAVE_ID, OrderStatus.REFUNDED, shopwave.amount_minor)
    # Kiondo says `refunded` without its refunds in the reply: a refund of the whole order.
    fake.answers[KIONDO_ID] = OrderState(KIONDO_ID, OrderStatus.REFUNDED, "refunded")
    for _ in range(3):
        _a_day_later(shop, shopwave.id, kiondo.id)
        fake.track(shop)

    refunds = refunds_of(shop, shopwave.id)
    assert [r.amount_minor for r in refunds] == [
        first.charge_minor,
        shopwave.charge_minor - first.charge_minor,
    ]
    assert refunds[1].idempotency_key == marketplace_refund_key(shopwave.id, shopwave.amount_minor)
    assert all(
        (r.kind, r.status) == (RefundKind.CARD_REFUND, RefundStatus.SUCCEEDED) for r in refunds
    )
    [whole] = refunds_of(shop, kiondo.id)
    assert whole.amount_minor == kiondo.charge_minor
    assert whole.status == RefundStatus.SUCCEEDED
    # Delivered stays delivered: not cancelled, not placed again, the order not reopened.
    fresh = shop.order(order.number)
    assert fresh.status == ShopperOrderStatus.DELIVERED
    for sub in fresh.charged_sub_orders:
        assert sub.status == SubOrderStatus.DELIVERED
        assert sub.kept_charge_minor == 0
    assert fresh.payment is not None and fresh.payment.status == PaymentStatus.REFUNDED
    assert notices_of(shop, user.id, "sub_order_cancelled") == []
    with shop.session() as session:
        messages = session.scalars(
            sa.select(Notification.message).where(Notification.user_id == user.id)
        ).all()
    assert sum(message.count("ShopWave refunded") for message in messages) == 2
    assert sum(message.count("Kiondo Market refunded") for message in messages) == 1
    assert fresh.attention_reason is None
    assert books_problems(shop, order.number) == []


def _sub_order_labels(shop: Shop, user: User, number: str) -> dict[str, str]:
    """Each marketplace's status label on the shopper's order page."""
    html = shop.client_for(user).get(f"/orders/{number}").get_data(as_text=True)
    return dict(
        re.findall(
            r'data-marketplace="([a-z]+)".*?data-testid="sub-order-status">([^<]*)<', html, re.S
        )
    )


def test_the_order_page_says_a_delivered_sub_order_was_then_refunded_in_full_by_the_store(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    user, order = _placed(shop, TWO_MARKETS)
    shopwave = _delivered(shop, fake, order)["shopwave"]

    # A return of one item: still just delivered.
    first = shopwave.items[0]
    fake.answers[SHOPWAVE_ID] = _state(SHOPWAVE_ID, OrderStatus.DELIVERED, first.line_total_minor)
    fake.track(shop)
    labels = _sub_order_labels(shop, user, order.number)
    assert labels == {"shopwave": "Delivered", "kiondo": "Delivered"}

    # Then ShopWave refunds the whole order: the label says so; Kiondo's is unchanged.
    fake.answers[SHOPWAVE_ID] = _state(SHOPWAVE_ID, OrderStatus.REFUNDED, shopwave.amount_minor)
    _a_day_later(shop, shopwave.id)
    fake.track(shop)
    assert shop.sub_order(order, "shopwave").kept_charge_minor == 0
    labels = _sub_order_labels(shop, user, order.number)
    assert labels == {
        "shopwave": "Delivered, then refunded by ShopWave",
        "kiondo": "Delivered",
    }
    html = shop.client_for(user).get(f"/orders/{order.number}").get_data(as_text=True)
    assert "ShopWave refunded all of this order" in html


def test_a_delivered_order_cancelled_with_nothing_refunded_goes_to_an_operator_once(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    user, order = _placed(shop, TWO_MARKETS)
    subs = _delivered(shop, fake, order)
    shopwave, kiondo = subs["shopwave"], subs["kiondo"]
    before = wallet_minor(shop, user)

    # Kiondo marks the delivered order cancelled but refunds nothing: the shopper has the items.
    # ShopWave cancels its delivered order with a refund of all of it (orderCancel refunds).
    fake.answers[KIONDO_ID] = _state(KIONDO_ID, OrderStatus.CANCELLED, 0, "KES")
    fake.answers[SHOPWAVE_ID] = _state(SHOPWAVE_ID, OrderStatus.CANCELLED, shopwave.amount_minor)
    fake.track(shop)
    reason = shop.order(order.number).attention_reason
    assert reason is not None and f"sub-order {kiondo.id}" in reason
    assert f"sub-order {shopwave.id}" not in reason
    assert refunds_of(shop, kiondo.id) == []
    assert [r.amount_minor for r in refunds_of(shop, shopwave.id)] == [shopwave.charge_minor]
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.DELIVERED
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.DELIVERED
    before += shopwave.charge_minor

    # An operator deals with it; the daily checks after that do not list the order again.
    with shop.session() as session, session.begin():
        session.execute(sa.update(Order).where(Order.id == order.id).values(attention_reason=None))
    for _ in range(2):
        _a_day_later(shop, kiondo.id)
        fake.track(shop)
    assert fake.asked.count(KIONDO_ID) == 3
    assert shop.order(order.number).attention_reason is None
    assert refunds_of(shop, kiondo.id) == []
    assert wallet_minor(shop, user) == before


def test_past_the_return_window_a_delivered_order_is_no_longer_polled(shop: Shop) -> None:
    fake = FakeMarketplaces()
    _user, order = _placed(shop, TWO_MARKETS)
    subs = _delivered(shop, fake, order)
    _age(shop, subs["shopwave"].id, days_ago=29)
    _age(shop, subs["kiondo"].id, days_ago=31)
    fake.answers[SHOPWAVE_ID] = _state(SHOPWAVE_ID, OrderStatus.DELIVERED)
    fake.answers[KIONDO_ID] = _state(KIONDO_ID, OrderStatus.REFUNDED, 100, "KES")

    fake.track(shop)
    assert fake.asked == [SHOPWAVE_ID]
    assert refunds_of(shop, subs["kiondo"].id) == []
    # A shorter window set by the operator (JobPolicy.refund_watch_days) ends it sooner.
    _a_day_later(shop, subs["shopwave"].id)
    fake.asked.clear()
    fake.track(shop, JobPolicy.from_dict({"refund_watch_days": 7}).tracking_policy)
    assert fake.asked == []


def test_open_sub_orders_are_polled_first_and_never_starved(shop: Shop) -> None:
    fake = FakeMarketplaces()
    # A delivered order due for its refund check, and an open one at ShopWave next to a
    # DummyMart cart (a marketplace that reports nothing, so never polled).
    _user, delivered = _placed(shop, [("shopwave", 0, 1), ("kiondo", 0, 1)])
    _delivered(shop, fake, delivered, days_ago=2)
    _user, open_order = _placed(
        shop,
        [("shopwave", 2, 1), ("dummymart", 0, 1)],
        ids={"shopwave": "gid://shopify/Order/2002"},
    )
    set_columns(shop, shop.sub_order(open_order, "shopwave").id, last_polled_at=utc_now())

    # One open sub-order per pass: it is ShopWave's, never DummyMart's that cannot be asked.
    fake.track(shop, TrackingPolicy(batch_size=1, delivered_batch_size=1))
    assert fake.asked[0] == "gid://shopify/Order/2002"
    assert len(fake.asked) == 2 and fake.asked[1] in (SHOPWAVE_ID, KIONDO_ID)

    # Without room for delivered ones, the open one is still asked at every pass.
    for _ in range(3):
        fake.asked.clear()
        fake.track(shop, TrackingPolicy(batch_size=5, delivered_batch_size=0))
        assert fake.asked == ["gid://shopify/Order/2002"]


def test_the_job_policy_carries_the_return_window_and_the_delivered_rate() -> None:
    policy = JobPolicy.from_dict({"refund_watch_days": 14, "delivered_poll_hours": 6})
    assert JobPolicy.from_dict(policy.as_dict()) == policy
    tracking = policy.tracking_policy
    assert tracking.refund_watch_after_delivery == timedelta(days=14)
    assert tracking.delivered_poll_interval == timedelta(hours=6)
    defaults = JobPolicy().tracking_policy
    assert defaults.refund_watch_after_delivery == timedelta(days=30)
    assert defaults.delivered_poll_interval == timedelta(hours=24)
