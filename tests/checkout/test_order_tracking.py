"""Following an order step by step (service level, real sandbox over HTTP, real DB and workers for
placement): every tracking step recorded once, one notification per real change, the
marketplace's human order number instead of its API id, sub-orders at marketplaces without a
status API left out of the completion rule until the shopper confirms receipt, and each
marketplace's answer to a cancellation.

The sandbox's step is an hour, so orders move only when a test advances them through the
sandbox's control API: no waiting on the clock."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.cancellation import carry_out_cancellation
from commerce.marketplace_access import adapter_for_marketplace
from commerce.notification_models import Notification
from commerce.notifications import notify
from commerce.order_models import Order, OrderEvent, OrderStatus, Payment, SubOrderStatus
from commerce.order_state import derive_order_status
from commerce.order_timeline import build_order_view
from commerce.payments.gateway import PaymentDeclined, PaymentGateway
from commerce.payments.providers import gateway_for_payment
from commerce.placement import place_sub_order
from commerce.tracking import track_open_sub_orders
from onecart.money import Money, format_money, from_minor_units
from tests.checkout.shop import SANDBOX_CREDENTIALS, Shop, wait_for
from tests.loopback_http import loopback_http

pytestmark = pytest.mark.slow

HOUR = 3600


@pytest.fixture
def tracked_shop(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> Shop:
    """The shop with marketplace keys in this process (tracking runs here, not in a worker) and
    orders that move only when advanced."""
    for name, value in SANDBOX_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for slug in ("shopwave", "kiondo"):
        shop.knobs(slug, order_step_seconds=HOUR, cancel_rate=0, delay_rate=0)
    return shop


def _advance(shop: Shop, slug: str, marketplace_order_id: str, steps: int = 1) -> None:
    number = marketplace_order_id.rsplit("/", 1)[-1]
    response = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/{slug}/{number}/advance",
        json={"steps": steps},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def _track(shop: Shop) -> None:
    track_open_sub_orders(shop.session_factory, adapter_for=adapter_for_marketplace)


def _notes(shop: Shop, user_id: int) -> list[Notification]:
    with shop.session() as session:
        notes = list(
            session.scalars(
                sa.select(Notification)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id)
            )
        )
        session.expunge_all()
        return notes


def _steps(shop: Shop, sub_order_id: int) -> list[str]:
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(OrderEvent.step)
                .where(OrderEvent.sub_order_id == sub_order_id)
                .order_by(OrderEvent.occurred_at, OrderEvent.id)
            )
        )


def _placed_order(shop: Shop, lines: list[tuple[str, int, int]]) -> tuple[object, Order]:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, lines)
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.start_workers(1, cron=False)
    shop.wait_until_settled()
    return user, shop.order(order.number)


def test_every_step_is_recorded_once_and_each_real_change_notified_once(
    tracked_shop: Shop,
) -> None:
    shop = tracked_shop
    shop.knobs("shopwave", delay_rate=1)  # ShopWave's parcel is delayed on the way
    user, order = _placed_order(shop, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    shopwave = shop.sub_order(order, "shopwave")
    kiondo = shop.sub_order(order, "kiondo")
    assert shopwave.marketplace_order_number == "#" + shopwave.marketplace_order_id.rsplit("/")[-1]

    statuses = []
    # ShopWave: processing, shipped, in transit, delayed ×2, delivered; Kiondo is delivered
    # after in transit (WooCommerce reports shipped and delivered only).
    for _ in range(6):
        _advance(shop, "shopwave", shopwave.marketplace_order_id)
        _advance(shop, "kiondo", kiondo.marketplace_order_id)
        _track(shop)
        _track(shop)  # a second pass over the same answers changes nothing
        fresh = shop.order(order.number)
        sub = shop.sub_order(fresh, "shopwave")
        statuses.append((fresh.status, sub.status, sub.shipment_status))

    assert statuses == [
        (OrderStatus.PROCESSING, SubOrderStatus.PROCESSING, None),
        (OrderStatus.SHIPPED, SubOrderStatus.SHIPPED, "confirmed"),
        (OrderStatus.SHIPPED, SubOrderStatus.SHIPPED, "in_transit"),
        (OrderStatus.PARTIALLY_DELIVERED, SubOrderStatus.SHIPPED, "delayed"),
        (OrderStatus.PARTIALLY_DELIVERED, SubOrderStatus.SHIPPED, "delayed"),
        (OrderStatus.DELIVERED, SubOrderStatus.DELIVERED, "delivered"),
    ]
    assert _steps(shop, shopwave.id) == [
        "processing",
        "shipped",
        "in_transit",
        "delayed",
        "delivered",
    ]
    assert _steps(shop, kiondo.id) == ["processing", "shipped", "delivered"]

    notes = _notes(shop, user.id)
    kinds = Counter(note.kind for note in notes)
    # Received, placed ×2, shipped ×2 (the second one is the order's), ShopWave delayed,
    # delivered ×2 (the last one is the order's): nothing for processing or in transit.
    assert kinds == Counter(
        {
            "order_received": 1,
            "sub_order_placed": 2,
            "sub_order_shipped": 1,
            "order_shipped": 1,
            "sub_order_delayed": 1,
            "sub_order_delivered": 1,
            "order_delivered": 1,
        }
    )
    assert notes[-1].kind == "order_delivered" and order.number in notes[-1].message
    messages = " ".join(note.message for note in notes)
    assert "gid://" not in messages
    assert f"order {shopwave.marketplace_order_number}" in messages
    shipped = shop.sub_order(order, "shopwave")
    assert shipped.tracking_number in messages and shipped.carrier in messages

    with shop.session() as session:
        view = build_order_view(session, session.get(Order, order.id))
        merged = [(entry.marketplace, entry.step) for entry in view.merged if entry.done]
        assert merged[0] == (None, "ordered") and merged[-1] == (None, "complete")
        assert ("ShopWave", "delayed") in merged and ("Kiondo Market", "delivered") in merged
        [shopwave_view] = [v for v in view.sub_orders if v.sub_order.id == shopwave.id]
        assert all(entry.done for entry in shopwave_view.timeline)
        shipped_entry = next(e for e in shopwave_view.timeline if e.step == "shipped")
        assert shipped.tracking_number in shipped_entry.detail


def test_a_part_placed_straight_into_preparation_keeps_that_step_once_it_moves_on(
    tracked_shop: Shop,
) -> None:
    """Kiondo (WooCommerce) answers a new order with "processing": the order page showed "Being
    prepared" until the parcel shipped, then that step vanished from Kiondo's timeline and the
    merged one, as if it had never happened (it was drawn from the status, never recorded)."""
    shop = tracked_shop
    _, order = _placed_order(shop, [("kiondo", 2, 1)])
    kiondo = shop.sub_order(order, "kiondo")
    assert kiondo.status == SubOrderStatus.PROCESSING
    _advance(shop, "kiondo", kiondo.marketplace_order_id, steps=2)
    _track(shop)

    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.SHIPPED
    assert _steps(shop, kiondo.id) == ["processing", "shipped"]
    with shop.session() as session:
        view = build_order_view(session, session.get(Order, order.id))
        [part] = view.sub_orders
        done = [entry.step for entry in part.timeline if entry.done]
        assert done == ["ordered", "placed", "processing", "shipped"]
        merged = [(entry.marketplace, entry.step) for entry in view.merged if entry.done]
        assert ("Kiondo Market", "processing") in merged


def test_a_marketplace_s_cancellation_is_told_in_words_not_its_status_code(
    tracked_shop: Shop,
) -> None:
    """ShopWave (Shopify) cancels an order it accepted: the order page's "Why" and timeline said
    "ShopWave cancelled the order (CANCELLED (UNFULFILLED))." — Shopify's status and fulfilment
    enums, for the shopper to decode. The raw status stays on the sub-order for operators."""
    shop = tracked_shop
    shop.knobs("shopwave", cancel_rate=1)
    user, order = _placed_order(shop, [("shopwave", 2, 1)])
    shopwave = shop.sub_order(order, "shopwave")
    _advance(shop, "shopwave", shopwave.marketplace_order_id, steps=3)
    _track(shop)

    cancelled = shop.sub_order(order, "shopwave")
    assert cancelled.status == SubOrderStatus.CANCELLED
    assert cancelled.last_error == "ShopWave cancelled the order."
    assert cancelled.raw_status and "CANCELLED" in cancelled.raw_status
    html = shop.client_for(user).get(f"/orders/{order.number}").get_data(as_text=True)
    assert "ShopWave cancelled the order." in html and "UNFULFILLED" not in html


def test_a_marketplace_without_a_status_api_is_left_out_until_the_shopper_confirms(
    tracked_shop: Shop,
) -> None:
    shop = tracked_shop
    user, order = _placed_order(shop, [("shopwave", 3, 1), ("dummymart", 3, 1)])
    shopwave = shop.sub_order(order, "shopwave")
    dummymart = shop.sub_order(order, "dummymart")
    _advance(shop, "shopwave", shopwave.marketplace_order_id, steps=4)
    _track(shop)

    fresh = shop.order(order.number)
    assert fresh.status == OrderStatus.DELIVERED  # DummyMart does not hold it back
    client = shop.client_for(user)
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "Placed — this marketplace doesn&#39;t report delivery" in html
    assert "does not tell us when it ships or arrives" in html
    assert "I received these items" in html

    response = client.post(f"/orders/{order.number}/sub-orders/{dummymart.id}/received")
    # Back at that part's panel, not at the top of the page.
    assert response.status_code == 303
    assert response.location.endswith(f"/orders/{order.number}#part-{dummymart.id}")
    assert f'id="part-{dummymart.id}"' in client.get(f"/orders/{order.number}").get_data(
        as_text=True
    )
    assert shop.sub_order(order, "dummymart").status == SubOrderStatus.DELIVERED
    assert _steps(shop, dummymart.id) == ["receipt_confirmed"]
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "Received (you confirmed)" in html and "I received these items" not in html
    # Confirming twice, or for a tracked marketplace, is refused.
    again = client.post(f"/orders/{order.number}/sub-orders/{dummymart.id}/received")
    other = client.post(f"/orders/{order.number}/sub-orders/{shopwave.id}/received")
    assert again.status_code == other.status_code == 303
    assert _steps(shop, shopwave.id).count("receipt_confirmed") == 0


def test_an_order_delivered_but_for_an_unreported_part_is_not_announced_as_all_delivered(
    tracked_shop: Shop,
) -> None:
    """The order counts as delivered once every tracked part is (DummyMart reports nothing), but
    the shopper's notification and e-mail said "Your order … has been delivered." while the order
    page said only what is tracked had arrived and asked them to confirm DummyMart's items."""
    shop = tracked_shop
    user, order = _placed_order(shop, [("shopwave", 3, 1), ("dummymart", 3, 1)])
    shopwave = shop.sub_order(order, "shopwave")
    _advance(shop, "shopwave", shopwave.marketplace_order_id, steps=2)
    _track(shop)
    assert shop.order(order.number).status == OrderStatus.SHIPPED
    _advance(shop, "shopwave", shopwave.marketplace_order_id, steps=2)
    _track(shop)

    assert shop.order(order.number).status == OrderStatus.DELIVERED
    notes = {note.kind: note.message for note in _notes(shop, user.id)}
    # The order's sentence leads ShopWave's own in the same notification: it is the e-mail's
    # subject, and the subject says the order as a whole while a part is unconfirmed.
    assert notes["order_shipped"].startswith(
        f"Everything we can track in your order {order.number} has shipped; "
        "DummyMart does not report shipping or delivery. Your ShopWave items"
    )
    assert notes["order_delivered"].startswith(
        f"Your order {order.number} has been delivered, but the DummyMart part is not "
        "confirmed. DummyMart does not report delivery: tell us on the order page when those "
        "items arrive. Your ShopWave items"
    )
    assert all(
        f"Your order {order.number} has shipped" not in note
        and f"Your order {order.number} has been delivered." not in note
        for note in notes.values()
    )


def test_derived_status_ignores_unreported_parts_but_not_an_order_made_only_of_them() -> None:
    placed, delivered = SubOrderStatus.PLACED, SubOrderStatus.DELIVERED
    assert derive_order_status([delivered], unreported=1) == OrderStatus.DELIVERED
    assert derive_order_status([], unreported=1) == OrderStatus.PROCESSING
    assert derive_order_status([placed, delivered]) == OrderStatus.PARTIALLY_DELIVERED
    assert derive_order_status([SubOrderStatus.CANCELLED], unreported=1) == OrderStatus.PROCESSING


def test_notifications_merge_within_a_change_and_once_means_once(tracked_shop: Shop) -> None:
    shop = tracked_shop
    user, order = _placed_order(shop, [("shopwave", 4, 1)])
    before = len(_notes(shop, user.id))
    with shop.session() as session, session.begin():
        fresh = session.get(Order, order.id)
        notify(session, fresh, "sub_order_delivered", "Your ShopWave items have arrived.")
        notify(session, fresh, "order_delivered", "Your order has been delivered.", once=True)
    with shop.session() as session, session.begin():
        fresh = session.get(Order, order.id)
        notify(session, fresh, "order_delivered", "Your order has been delivered.", once=True)
    notes = [
        note
        for note in _notes(shop, user.id)[before:]
        if note.kind in ("sub_order_delivered", "order_delivered")
    ]
    # The order's sentence is the part's news made whole: said once, not after the part's.
    assert [(note.kind, note.message) for note in notes] == [
        ("order_delivered", "Your order has been delivered.")
    ]


def test_cancellation_shows_each_marketplaces_answer_and_the_refund(tracked_shop: Shop) -> None:
    shop = tracked_shop
    user, order = _placed_order(shop, [("shopwave", 5, 1), ("dummymart", 5, 1)])
    client = shop.client_for(user)

    # Without the confirmation, nothing is cancelled: the confirmation page is shown.
    first = client.post(f"/orders/{order.number}/cancel")
    assert first.status_code == 303 and first.headers["Location"].endswith("/cancel")
    preview = client.get(f"/orders/{order.number}/cancel").get_data(as_text=True)
    assert "we ask ShopWave to cancel" in preview
    assert "DummyMart does not accept cancellations" in preview
    assert shop.order(order.number).cancel_requested_at is None

    assert client.post(f"/orders/{order.number}/cancel", data={"confirm": "yes"}).status_code == 303
    wait_for(
        lambda: (
            shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED
            and shop.sub_order(order, "dummymart").cancel_outcome == "refused"
        ),
        what="ShopWave to cancel and DummyMart to refuse",
    )
    shop.wait_until_settled()
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "Partly cancelled" in html
    assert 'data-outcome="cancelled"' in html and 'data-outcome="refused"' in html
    shopwave = shop.sub_order(order, "shopwave")
    assert "Refunded so far" in html
    assert shop.sub_order(order, "shopwave").cancel_outcome == "cancelled"
    assert shopwave.charge_minor > 0
    # The refund reads as shoppers read money ("$61.99"), not as "61.99 USD".
    refund_text = format_money(shopwave.charge_minor, shopwave.charge_currency)
    assert f"cancelled; {refund_text} refunded." in html or (
        f"cancelled; your {refund_text} refund is on its way." in html
    )
    amount = from_minor_units(shopwave.charge_minor, shopwave.charge_currency)
    assert f"{amount:,} {shopwave.charge_currency}" not in html


def test_a_cancellation_with_no_clear_answer_is_told_honestly(tracked_shop: Shop) -> None:
    shop = tracked_shop
    user, order = _placed_order(shop, [("shopwave", 6, 1)])
    client = shop.client_for(user)
    shop.make_unreachable("shopwave")  # the cancel and the status check both fail

    assert client.post(f"/orders/{order.number}/cancel", data={"confirm": "yes"}).status_code == 303
    # The first unanswered attempt already shows "unknown"; the last one also tells the shopper.
    wait_for(
        lambda: "cancellation_unknown" in [note.kind for note in _notes(shop, user.id)],
        what="the last cancel attempt to give up",
    )
    assert shop.sub_order(order, "shopwave").cancel_outcome == "unknown"
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-outcome="unknown"' in html and 'data-testid="cancel-unknown"' in html
    assert "We don&#39;t know yet whether ShopWave has cancelled" in html
    kinds = [note.kind for note in _notes(shop, user.id)]
    assert kinds.count("cancellation_unknown") == 1
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.PLACED


class RefusesRefunds:
    """The real gateway, whose refunds Stripe refuses for good (what localstripe never does)."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        raise PaymentDeclined("The card refund re_refused failed.")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _refusing(session: Session, payment: Payment) -> PaymentGateway:
    return RefusesRefunds(gateway_for_payment(session, payment))  # type: ignore[return-value]


def test_the_order_page_says_refunded_only_once_the_refund_is_confirmed(
    tracked_shop: Shop,
) -> None:
    shop = tracked_shop
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 4, 1), ("kiondo", 4, 1)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="stripe", test_card="pm_card_visa")
    shop.knobs("kiondo", refuse_next_orders=1)
    kiondo = shop.sub_order(order, "kiondo")
    place_sub_order(
        shop.session_factory, kiondo.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.FAILED

    # ShopWave is still being placed, so the card is not settled: Kiondo's share is left out of
    # the capture to come. It was never charged, so it is not a refund on its way (shop15).
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "Not placed (not charged)" in html
    assert "Not placed (refund" not in html
    assert "to be released from your card hold" in html

    shopwave = shop.sub_order(order, "shopwave")
    place_sub_order(
        shop.session_factory, shopwave.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "Not placed (not charged)" in html  # left out of the capture: released
    assert "Not placed (refunded)" not in html and "released from your card hold" in html

    # The shopper cancels ShopWave's part; Stripe refuses its refund for good.
    assert client.post(f"/orders/{order.number}/cancel", data={"confirm": "yes"}).status_code == 303
    carry_out_cancellation(
        shop.session_factory,
        order.id,
        adapter_for=adapter_for_marketplace,
        gateway_for=_refusing,
        final_attempt=True,
    )
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    share = format_money(shopwave.charge_minor, shopwave.charge_currency)
    assert f"cancelled; {share} refunded." not in html
    assert f"cancelled; your {share} refund is not confirmed yet" in html
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "refused" in flagged.attention_reason
    # The refused refund leaves the books open on purpose: it is on the operator's list.
    shop.unbalanced_orders.add(order.number)
