"""A cancellation whose parts' money goes back two ways, reproduced end to end: the capture
lands between two parts' cancellations of one attempt of the job.

The order has three parts, paid by card (localstripe): Fake Store Berlin (no cancellation API)
and Kiondo Market (WooCommerce) are placed, DummyMart's placement is under way when the shopper
cancels. The job's first attempt finds DummyMart in flight, is refused by Kiondo Market (the
store was busy with the order; its read-back says not cancelled: "refused" is kept), and Fake
Store Berlin goes ahead. DummyMart's placement then gives its claim back unsent (pending). The
second attempt (the parts in their order: DummyMart's first) cancels DummyMart at once, a release
of its share from the hold, and asks Kiondo Market again; while it asks, another worker settles
the payment (every part has its answer: nothing waits), capturing Kiondo Market's and Fake Store
Berlin's shares; then Kiondo Market confirms. Its share, now charged, is refunded to the card.
The shopper must be told each way truly, be charged exactly Fake Store Berlin's share in the
end, and Stripe's books must agree.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from adapters.base import MarketplaceAdapter, OrderState, Rejected
from commerce.cancellation import CancelOutcome, carry_out_cancellation, request_cancellation
from commerce.marketplace_access import adapter_for_marketplace
from commerce.models import Marketplace
from commerce.notification_models import Notification
from commerce.order_models import (
    Order,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.placement import place_sub_order
from commerce.placement_claims import claim_sub_order, release_claim
from commerce.settlement import settle_payment
from onecart.money import format_money
from tests.checkout.shop import Shop, stripe_books_problems


class KiondoMeanwhile:
    """Kiondo Market's real adapter; its cancel refused once as the store would while busy with
    the order, then, on the next ask, another worker's settlement runs first (the race)."""

    def __init__(self, real: MarketplaceAdapter, shop: Shop, order_id: int) -> None:
        self.real, self.shop, self.order_id = real, shop, order_id
        self.cancels = 0
        self.captured_meanwhile: bool | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        self.cancels += 1
        if self.cancels == 1:
            raise Rejected("order is locked for editing; try again", marketplace="kiondo")
        self.captured_meanwhile = settle_payment(self.shop.session_factory, self.order_id)
        return self.real.cancel_order(marketplace_order_id)


def _messages(shop: Shop, order: Order) -> dict[str, str]:
    with shop.session() as session:
        rows = session.execute(
            sa.select(Notification.kind, Notification.message)
            .where(Notification.order_id == order.id)
            .order_by(Notification.id)
        )
        return {kind: message for kind, message in rows}


def test_a_capture_between_two_parts_cancellations_refunds_one_releases_the_other(
    shop: Shop,
) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", 2, 1), ("fakestore", 2, 1), ("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    for slug in ("fakestore", "kiondo"):
        place_sub_order(
            shop.session_factory,
            shop.sub_order(order, slug).id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
        )
    released_id = shop.sub_order(order, "dummymart").id
    placing = claim_sub_order(shop.session_factory, released_id, lease=timedelta(minutes=5))
    assert placing is not None
    with shop.session_factory() as session, session.begin():
        request_cancellation(session, user.id, order.number)

    kiondo = KiondoMeanwhile(
        adapter_for_marketplace(shop.sub_order(order, "kiondo").marketplace), shop, order.id
    )

    def adapter_for(marketplace: Marketplace) -> MarketplaceAdapter:
        return kiondo if marketplace.slug == "kiondo" else adapter_for_marketplace(marketplace)  # type: ignore[return-value]

    first = carry_out_cancellation(shop.session_factory, order.id, adapter_for=adapter_for)
    assert first.in_flight == ("DummyMart",)
    assert shop.sub_order(order, "kiondo").cancel_outcome == CancelOutcome.REFUSED.value
    assert shop.order(order.number).payment.status == PaymentStatus.AUTHORIZED  # type: ignore[union-attr]

    # DummyMart's placement attempt gives its part back unsent (its marketplace was not reached).
    assert release_claim(
        shop.session_factory, released_id, placing, SubOrderStatus.PENDING, "connect failed"
    )
    second = carry_out_cancellation(
        shop.session_factory, order.id, adapter_for=adapter_for, final_attempt=True
    )

    assert kiondo.captured_meanwhile is True  # the race happened: captured between the two
    assert set(second.cancelled) == {"DummyMart", "Kiondo Market"}
    final = shop.order(order.number)
    released, kiondo_part, ahead = (
        shop.sub_order(order, slug) for slug in ("dummymart", "kiondo", "fakestore")
    )
    assert (released.status, kiondo_part.status) == (SubOrderStatus.CANCELLED,) * 2
    assert ahead.status in (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING)
    payment = final.payment
    assert payment is not None
    refunds = {refund.sub_order_id: refund for refund in payment.refunds}
    assert (refunds[released.id].kind, refunds[released.id].status) == (
        RefundKind.RELEASE,
        RefundStatus.SUCCEEDED,
    )
    assert (refunds[kiondo_part.id].kind, refunds[kiondo_part.id].status) == (
        RefundKind.CARD_REFUND,
        RefundStatus.SUCCEEDED,
    )
    assert refunds[released.id].amount_minor == released.charge_minor
    assert refunds[kiondo_part.id].amount_minor == kiondo_part.charge_minor
    # Captured: Kiondo Market's and Fake Store Berlin's shares; refunded: Kiondo Market's. The
    # shopper pays Fake Store Berlin's share, never more than the hold, and Stripe agrees.
    assert payment.captured_minor == kiondo_part.charge_minor + ahead.charge_minor
    card_refunded = sum(r.amount_minor for r in payment.refunds if r.kind == RefundKind.CARD_REFUND)
    assert payment.captured_minor - card_refunded == ahead.charge_minor
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert stripe_books_problems(final) == []

    told = _messages(shop, order)
    kiondo_share = format_money(kiondo_part.charge_minor, kiondo_part.charge_currency)
    released_share = format_money(released.charge_minor, released.charge_currency)
    assert told["cancellation_refused"] == (
        "Your DummyMart and Kiondo Market items were cancelled; "
        f"the {released_share} for DummyMart is not charged to your card, and "
        f"we are refunding the {kiondo_share} for Kiondo Market. "
        # One marketplace named as one (shop20's refusal_notice).
        "Fake Store Berlin could not cancel its part of your order, so it goes ahead."
    ), told
    assert kiondo_share in told["refund_made"] and "to your card" in told["refund_made"]
    assert released_share not in told["refund_made"]
