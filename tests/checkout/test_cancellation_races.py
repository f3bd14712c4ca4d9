"""A shopper's cancellation racing the placement of their order: the parts whose placement is in
doubt when the cancellation job runs must still be cancelled once their outcome is known, by
whichever path learns it. Placement and cancellation run in-process against the sandbox and
localstripe (no queue: the outbox rows say what would be enqueued)."""

from __future__ import annotations

import sqlalchemy as sa

from adapters.base import MarketplaceAdapter
from commerce.attention import mark_placed_by_operator
from commerce.cancellation import carry_out_cancellation, request_cancellation
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.marketplace_access import adapter_for_marketplace
from commerce.models import Marketplace
from commerce.notification_models import Notification
from commerce.order_models import (
    MarketplaceOrder,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.placement import place_sub_order
from commerce.tracking import apply_marketplace_state
from tests.checkout.shop import Shop
from tests.faults.conftest import check_invariants


def _cancel_jobs(shop: Shop, order_id: int) -> int:
    with shop.session() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count()).where(
                    OutboxMessage.order_id == order_id,
                    OutboxMessage.topic == OutboxTopic.CANCEL_ORDER,
                )
            )
            or 0
        )


def test_a_part_an_operator_confirms_placed_after_the_shopper_cancelled_is_cancelled_too(
    shop: Shop,
) -> None:
    """Shopwave's placement is in doubt (it needs an operator) when the shopper cancels, so the
    cancellation job can only report it in flight. When the operator then confirms Shopwave
    holds the order, the cancellation must be asked for again, as it is when a placement in
    doubt is found placed; otherwise it ships although the shopper cancelled."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shopwave = shop.sub_order(order, "shopwave")
    place_sub_order(
        shop.session_factory, shopwave.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    held = shop.sub_order(order, "shopwave").marketplace_order_id
    assert held
    # The reply was lost and Shopwave could not be asked: an operator must find out.
    with shop.session_factory() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == shopwave.id)
            .values(
                status=SubOrderStatus.NEEDS_ATTENTION, marketplace_order_id=None, placed_at=None
            )
        )

    with shop.session_factory() as session, session.begin():
        request_cancellation(session, user.id, order.number)
    report = carry_out_cancellation(
        shop.session_factory, order.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    assert report.in_flight == ("ShopWave",)
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED
    jobs_before = _cancel_jobs(shop, order.id)

    assert mark_placed_by_operator(shop.session_factory, shopwave.id, held, operator="ops")

    assert _cancel_jobs(shop, order.id) == jobs_before + 1  # asked for again
    carry_out_cancellation(
        shop.session_factory, order.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED
    payment = shop.order(order.number).payment
    assert payment is not None
    assert payment.status in (PaymentStatus.REFUNDED, PaymentStatus.VOIDED)
    assert all(refund.status == RefundStatus.SUCCEEDED for refund in payment.refunds)
    assert {refund.kind for refund in payment.refunds} <= {
        RefundKind.RELEASE,
        RefundKind.CARD_REFUND,
    }
    check_invariants(shop)


def test_a_cancellation_still_unanswered_after_the_last_attempt_goes_to_an_operator(
    shop: Shop,
) -> None:
    """Shopwave is down when the shopper cancels, through every attempt of the job: nobody asks
    it again after the last one, so the order goes on the operator's list (the shopper is told
    the answer is unknown) instead of the cancellation being dropped silently."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shopwave = shop.sub_order(order, "shopwave")
    place_sub_order(
        shop.session_factory, shopwave.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.PLACED
    with shop.session_factory() as session, session.begin():
        request_cancellation(session, user.id, order.number)
    shop.knobs("shopwave", down=True)
    try:
        early = carry_out_cancellation(
            shop.session_factory, order.id, adapter_for=adapter_for_marketplace
        )
        assert early.in_flight == ("ShopWave",)
        assert shop.order(order.number).attention_reason is None  # the job tries again

        last = carry_out_cancellation(
            shop.session_factory, order.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
    finally:
        shop.knobs("shopwave", down=False)

    assert last.in_flight == ("ShopWave",)
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.PLACED
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "ShopWave" in flagged.attention_reason
    assert "cancel" in flagged.attention_reason
    admin = shop.make_user(is_admin=True)
    page = shop.client_for(admin).get("/admin/attention").get_data(as_text=True)
    assert order.number in page
    check_invariants(shop)


def test_a_part_the_marketplace_cancels_while_the_cancellation_job_runs_is_not_reported_refused(
    shop: Shop,
) -> None:
    """The job reads the part as placed; before it asks the marketplace, tracking learns the
    marketplace cancelled it (and refunds it). The job finds it cancelled: that is the shopper's
    cancellation done, not refused — the shopper is not told it ships, nothing is refunded twice."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shopwave = shop.sub_order(order, "shopwave")
    place_sub_order(
        shop.session_factory, shopwave.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    with shop.session_factory() as session, session.begin():
        request_cancellation(session, user.id, order.number)

    def cancelled_meanwhile(marketplace: Marketplace) -> MarketplaceAdapter:
        adapter = adapter_for_marketplace(marketplace)
        held = shop.sub_order(order, "shopwave").marketplace_order_id or ""
        adapter.cancel_order(held)
        apply_marketplace_state(shop.session_factory, shopwave.id, adapter.order_status(held))
        return adapter

    report = carry_out_cancellation(shop.session_factory, order.id, adapter_for=cancelled_meanwhile)

    assert (report.cancelled, report.refused) == ((shopwave.marketplace.name,), ())
    with shop.session() as session:
        kinds = set(
            session.scalars(sa.select(Notification.kind).where(Notification.order_id == order.id))
        )
    assert "cancellation_refused" not in kinds
    sub = shop.sub_order(order, "shopwave")
    assert sub.status == SubOrderStatus.CANCELLED and sub.cancel_outcome == "cancelled"
    with shop.session() as session:
        refunds = session.execute(
            sa.select(Refund.amount_minor, Refund.status).where(Refund.sub_order_id == sub.id)
        ).all()
    assert [tuple(row) for row in refunds] == [(sub.charge_minor, RefundStatus.SUCCEEDED)]
    check_invariants(shop)


def test_an_unclear_cancel_answer_before_the_last_attempt_keeps_the_card_share_uncaptured(
    shop: Shop,
) -> None:
    """Shopwave is placed, Kiondo not yet (so the card is still only authorized) when the
    shopper cancels. Shopwave is down at the job's first attempt: RQ retries, so that unclear
    answer is not the answer the capture waits for. Before, it was recorded as "unknown", the
    capture stopped waiting and took Shopwave's share, and the retry's confirmed cancel refunded
    it (a charge and a refund on the statement) instead of releasing the hold."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shopwave = shop.sub_order(order, "shopwave")
    place_sub_order(
        shop.session_factory, shopwave.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.PLACED
    with shop.session_factory() as session, session.begin():
        request_cancellation(session, user.id, order.number)
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED
    shop.knobs("shopwave", down=True)
    try:
        early = carry_out_cancellation(
            shop.session_factory, order.id, adapter_for=adapter_for_marketplace
        )
    finally:
        shop.knobs("shopwave", down=False)
    assert early.in_flight == ("ShopWave",)
    assert shop.sub_order(order, "shopwave").cancel_outcome is None
    payment = shop.order(order.number).payment
    assert payment is not None
    assert payment.status == PaymentStatus.AUTHORIZED, "captured on a non-final unclear answer"

    last = carry_out_cancellation(
        shop.session_factory, order.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )

    assert last.cancelled == ("ShopWave",)
    payment = shop.order(order.number).payment
    assert payment is not None
    assert (payment.status, payment.captured_minor) == (PaymentStatus.VOIDED, 0)
    assert {(refund.kind, refund.status) for refund in payment.refunds} == {
        (RefundKind.RELEASE, RefundStatus.SUCCEEDED)
    }
    check_invariants(shop)


def test_an_unclear_cancel_answer_on_the_last_attempt_ends_the_wait_and_captures(
    shop: Shop,
) -> None:
    """Guard: the last attempt's unclear answer is an answer. The part may ship, so its share is
    captured (an operator follows the cancellation up); the hold is not left to lapse."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shopwave = shop.sub_order(order, "shopwave")
    place_sub_order(
        shop.session_factory, shopwave.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    with shop.session_factory() as session, session.begin():
        request_cancellation(session, user.id, order.number)
    shop.knobs("shopwave", down=True)
    try:
        for final_attempt in (False, True):
            report = carry_out_cancellation(
                shop.session_factory,
                order.id,
                adapter_for=adapter_for_marketplace,
                final_attempt=final_attempt,
            )
            assert report.in_flight == ("ShopWave",)
    finally:
        shop.knobs("shopwave", down=False)

    part = shop.sub_order(order, "shopwave")
    assert (part.status, part.cancel_outcome) == (SubOrderStatus.PLACED, "unknown")
    payment = shop.order(order.number).payment
    assert payment is not None
    assert payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == part.kept_charge_minor > 0
    assert shop.order(order.number).attention_reason
    check_invariants(shop)
