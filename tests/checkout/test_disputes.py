"""Disputes (chargebacks) of an order's card charge, against localstripe: the dispute is recorded
once, kept up to date from Stripe's events whatever their order, and the order goes on the
operator's list; nothing is refunded. Stripe's events are signed and posted to the webhook."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from commerce.dispute_models import PaymentDispute
from commerce.disputes import apply_dispute_event, dispute_facts
from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import Order, PaymentStatus, Refund
from commerce.placement import place_sub_order
from tests.checkout.dispute_events import charge_of, dispute_object, new_dispute_id, post_event
from tests.checkout.shop import Shop


def _captured_card_order(shop: Shop) -> Order:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    for sub in order.charged_sub_orders:
        place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
    order = shop.order(order.number)
    assert order.payment is not None and order.payment.status == PaymentStatus.CAPTURED
    return order


def _disputes(shop: Shop) -> list[PaymentDispute]:
    with shop.session() as session:
        rows = list(session.scalars(sa.select(PaymentDispute).order_by(PaymentDispute.id)))
        session.expunge_all()
        return rows


def test_a_dispute_of_an_orders_charge_puts_the_order_on_the_operators_list_and_refunds_nothing(
    shop: Shop,
) -> None:
    order = _captured_card_order(shop)
    assert order.payment is not None
    intent_id = order.payment.provider_reference
    dispute_id = new_dispute_id()
    dispute = dispute_object(
        dispute_id,
        charge=charge_of(intent_id),
        intent=intent_id,
        amount=order.payment.captured_minor,
        status="needs_response",
        reason="product_not_received",
    )

    response = post_event(shop.app, "charge.dispute.created", dispute)

    assert response.status_code == 200
    assert response.get_json()["dispute"].startswith("dispute recorded (needs_response)")
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "disputed" in flagged.attention_reason
    assert "product_not_received" in flagged.attention_reason
    assert flagged.payment is not None and flagged.payment.status == PaymentStatus.CAPTURED
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Refund)) == 0
    [row] = _disputes(shop)
    assert (row.dispute_id, row.purpose, row.order_id) == (dispute_id, "order", order.id)
    assert row.evidence_due_by is not None and row.closed_at is None
    admin = shop.client_for(shop.make_user(is_admin=True))
    page = admin.get("/admin/attention").get_data(as_text=True)
    for fact in (dispute_id, order.number, "product_not_received", "needs_response", "2025-12-31"):
        assert fact in page
    assert f"{order.payment.captured_minor:,} USD" in page

    # Lost: recorded as the outcome, still nothing refunded by OneCart.
    lost = {**dispute, "status": "lost"}
    assert post_event(shop.app, "charge.dispute.closed", lost).status_code == 200
    [row] = _disputes(shop)
    assert row.status == "lost" and row.closed_at is not None
    page = admin.get("/admin/attention").get_data(as_text=True)
    assert "lost" in page and "closed" in page


def test_replayed_and_late_dispute_events_never_move_the_dispute_back(shop: Shop) -> None:
    order = _captured_card_order(shop)
    assert order.payment is not None
    intent_id = order.payment.provider_reference
    dispute_id = new_dispute_id()
    base = dispute_object(
        dispute_id,
        charge=charge_of(intent_id),
        intent=intent_id,
        amount=order.payment.captured_minor,
        status="needs_response",
    )
    now = int(time.time())
    won = {**base, "status": "won"}

    # Delivered out of order: the closing event first, then the ones made before it.
    assert (
        post_event(
            shop.app, "charge.dispute.closed", won, created=now, event_id="evt_w"
        ).status_code
        == 200
    )
    assert post_event(shop.app, "charge.dispute.created", base, created=now - 60).status_code == 200
    review = {**base, "status": "under_review"}
    assert (
        post_event(shop.app, "charge.dispute.updated", review, created=now - 30).status_code == 200
    )
    assert [row.status for row in _disputes(shop)] == ["won"]
    replay = post_event(shop.app, "charge.dispute.closed", won, created=now, event_id="evt_w")

    assert replay.status_code == 200
    [row] = _disputes(shop)
    assert row.status == "won" and row.closed_at is not None
    assert shop.order(order.number).attention_reason  # on the list once, with the first facts


def test_concurrent_first_deliveries_record_one_dispute(shop: Shop) -> None:
    order = _captured_card_order(shop)
    assert order.payment is not None
    intent_id = order.payment.provider_reference
    dispute = dispute_object(
        new_dispute_id(),
        charge=charge_of(intent_id),
        intent=intent_id,
        amount=order.payment.captured_minor,
        status="needs_response",
    )
    facts = dispute_facts("charge.dispute.created", dispute, int(time.time()))

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(
            pool.map(lambda _: apply_dispute_event(shop.session_factory, facts), range(4))
        )

    assert sum(outcome.startswith("dispute recorded") for outcome in outcomes) == 1
    assert len(_disputes(shop)) == 1


def test_an_unreadable_dispute_event_is_acknowledged_and_changes_nothing(shop: Shop) -> None:
    response = post_event(shop.app, "charge.dispute.created", {"id": "du_x", "object": "dispute"})

    assert response.status_code == 200
    assert response.get_json()["dispute"].startswith("unreadable dispute")
    assert _disputes(shop) == []
