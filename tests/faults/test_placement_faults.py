"""Placement faults against the sandbox's order knobs, with real `rq worker` processes and RQ's
cron scheduler: replies lost after the marketplace accepted, prices that moved, lines dropped or
cut short, a worker killed after the marketplace accepted. Every test ends with the invariants
(tests/faults/conftest.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.marketplace_access import adapter_for_marketplace
from commerce.notification_models import Notification
from commerce.order_models import PLACED_SUB_ORDER_STATUSES, Refund, RefundStatus, SubOrderStatus
from commerce.placement import place_sub_order
from tests.checkout.shop import Shop, wait_for
from tests.faults.conftest import check_invariants, held_orders, sweep_now

pytestmark = pytest.mark.slow


def _refunds(shop: Shop, sub_order_id: int) -> list[Refund]:
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(Refund).where(Refund.sub_order_id == sub_order_id).order_by(Refund.id)
            )
        )


def _kinds(shop: Shop, user_id: int) -> list[str]:
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(Notification.kind)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id)
            )
        )


@pytest.mark.parametrize(
    ("slug", "knobs"),
    [
        ("kiondo", {"order_reply_delay_ms": 2500}),
        ("shopwave", {"fail_after_next_orders": 12}),
    ],
    ids=["reply-after-timeout", "5xx-after-commit"],
)
def test_lost_reply_on_every_attempt_is_found_by_reference_not_refunded(
    faults: Shop, slug: str, knobs: dict[str, int]
) -> None:
    user = faults.make_user(wallet=Decimal("5000"))
    faults.fill_cart(user, [(slug, 0, 1), ("fakestore", 1, 1)])
    order = faults.checkout(faults.client_for(user), payment_method="wallet")
    faults.knobs(slug, **knobs)
    faults.start_workers(1)

    faults.wait_until_settled()

    sub = faults.sub_order(order, slug)
    assert sub.status in PLACED_SUB_ORDER_STATUSES
    assert sub.attempts >= 2  # the first attempt's outcome was unknown; the next one asked
    assert _refunds(faults, sub.id) == []
    check_invariants(faults)


def test_marketplace_that_cannot_answer_keeps_the_sub_order_reconciling_until_it_can(
    faults: Shop,
) -> None:
    user = faults.make_user()
    faults.fill_cart(user, [("kiondo", 0, 1), ("shopwave", 0, 1)])
    order = faults.checkout(
        faults.client_for(user), payment_method="stripe", test_card="pm_card_visa"
    )
    faults.knobs("kiondo", order_reply_delay_ms=2500)
    faults.start_workers(1)
    kiondo = faults.sub_order(order, "kiondo")
    wait_for(
        lambda: held_orders(faults, "kiondo", kiondo, order),
        what="the marketplace to accept the order",
    )
    # Down (503) right after accepting: nobody can tell whether the order exists.
    faults.knobs("kiondo", down=True)

    wait_for(
        lambda: (
            faults.sub_order(order, "kiondo").status == SubOrderStatus.RECONCILING
            and faults.sub_order(order, "kiondo").attempts >= 3
        ),
        what="the attempts to end without an answer",
    )
    kiondo = faults.sub_order(order, "kiondo")
    assert _refunds(faults, kiondo.id) == []
    payment = faults.order(order.number).payment
    assert payment is not None and payment.status.value == "authorized"  # capture waits
    shopper = faults.client_for(user)
    wait_for(  # between two attempts (an attempt in progress shows as placing)
        lambda: (
            "we are checking whether it has your order"
            in shopper.get(f"/orders/{order.number}").get_data(as_text=True)
        ),
        what="the order page to say the outcome is being checked",
    )

    faults.knobs("kiondo", down=False, order_reply_delay_ms=0)
    sweep_now(faults)
    faults.wait_until_settled()

    assert faults.sub_order(order, "kiondo").status in PLACED_SUB_ORDER_STATUSES
    assert _refunds(faults, kiondo.id) == []
    check_invariants(faults)


def test_unknown_outcome_on_a_marketplace_that_cannot_be_asked_needs_an_operator(
    faults: Shop,
) -> None:
    user = faults.make_user(wallet=Decimal("5000"))
    faults.fill_cart(user, [("dummymart", 0, 1), ("fakestore", 0, 1)])
    order = faults.checkout(faults.client_for(user), payment_method="wallet")
    # DummyJSON cart accepted, reply lost every time; Fake Store answers 503 before creating
    # anything. Neither can be asked by reference, so neither may be refunded automatically.
    faults.knobs("dummymart", order_reply_delay_ms=2500)
    faults.knobs("fakestore", fail_next_orders=1000)
    faults.start_workers(1)

    for slug in ("dummymart", "fakestore"):
        wait_for(
            lambda slug=slug: (
                faults.sub_order(order, slug).status == SubOrderStatus.NEEDS_ATTENTION
            ),
            what=f"{slug} to need attention",
        )
        assert _refunds(faults, faults.sub_order(order, slug).id) == []
    assert "sub_order_needs_attention" in _kinds(faults, user.id)
    shopper_page = faults.client_for(user).get(f"/orders/{order.number}")
    assert "has not confirmed whether it has your order" in shopper_page.get_data(as_text=True)

    faults.knobs("dummymart", order_reply_delay_ms=0)
    faults.knobs("fakestore", fail_next_orders=0)
    admin = faults.make_user(is_admin=True)
    client = faults.client_for(admin)
    page = client.get("/admin/attention").get_data(as_text=True)
    dummymart = faults.sub_order(order, "dummymart")
    fakestore = faults.sub_order(order, "fakestore")
    assert dummymart.idempotency_key in page and fakestore.idempotency_key in page
    # The operator finds the cart by the idempotency key and records it; Fake Store holds none.
    [cart] = held_orders(faults, "dummymart", dummymart, order)
    assert held_orders(faults, "fakestore", fakestore, order) == []
    placed = client.post(
        f"/admin/attention/{dummymart.id}/placed",
        data={"marketplace_order_id": str(cart["number"])},
    )
    refunded = client.post(f"/admin/attention/{fakestore.id}/refund")
    assert placed.status_code == 302 and refunded.status_code == 302

    faults.wait_until_settled()
    assert faults.sub_order(order, "dummymart").status == SubOrderStatus.PLACED
    assert faults.sub_order(order, "fakestore").status == SubOrderStatus.FAILED
    [refund] = _refunds(faults, fakestore.id)
    assert (refund.amount_minor, refund.status) == (fakestore.charge_minor, RefundStatus.SUCCEEDED)
    check_invariants(faults)


def test_price_moved_after_checkout_lower_refunds_the_difference_higher_follows_the_policy(
    faults: Shop,
) -> None:
    user = faults.make_user()
    faults.fill_cart(user, [("shopwave", 1, 2), ("kiondo", 1, 1)])
    order = faults.checkout(
        faults.client_for(user), payment_method="stripe", test_card="pm_card_visa"
    )
    faults.knobs("shopwave", order_price_change_pct=-10)  # billed less than paid
    faults.knobs("kiondo", order_price_change_pct=40)  # billed far more: cancel and refund
    faults.start_workers(1)

    faults.wait_until_settled()

    shopwave = faults.sub_order(order, "shopwave")
    kiondo = faults.sub_order(order, "kiondo")
    assert shopwave.status in PLACED_SUB_ORDER_STATUSES
    assert shopwave.accepted_charge_minor is not None
    assert 0 < shopwave.accepted_charge_minor < shopwave.charge_minor
    [adjustment] = _refunds(faults, shopwave.id)
    assert adjustment.amount_minor == shopwave.charge_minor - shopwave.accepted_charge_minor
    assert kiondo.status == SubOrderStatus.CANCELLED
    assert [r.amount_minor for r in _refunds(faults, kiondo.id)] == [kiondo.charge_minor]
    [held] = held_orders(faults, "kiondo", kiondo, order)
    assert held["status"] == "cancelled"
    payment = faults.order(order.number).payment
    assert payment is not None and payment.captured_minor == shopwave.accepted_charge_minor
    check_invariants(faults)


def test_small_overcharge_within_the_tolerance_is_absorbed(faults: Shop) -> None:
    user = faults.make_user(wallet=Decimal("5000"))
    faults.fill_cart(user, [("kiondo", 2, 1)])
    order = faults.checkout(faults.client_for(user), payment_method="wallet")
    faults.knobs("kiondo", order_price_change_pct=3)  # tolerance is 5% in the fault suite
    faults.start_workers(1)

    faults.wait_until_settled()

    kiondo = faults.sub_order(order, "kiondo")
    assert kiondo.status in PLACED_SUB_ORDER_STATUSES
    assert kiondo.accepted_amount_minor is not None
    assert kiondo.accepted_amount_minor > kiondo.amount_minor
    assert _refunds(faults, kiondo.id) == []
    check_invariants(faults)


def test_dropped_and_short_lines_are_a_partial_placement(faults: Shop) -> None:
    user = faults.make_user(wallet=Decimal("5000"))
    faults.fill_cart(user, [("dummymart", 3, 1), ("dummymart", 4, 2), ("kiondo", 3, 3)])
    order = faults.checkout(faults.client_for(user), payment_method="wallet")
    dropped = faults.product("dummymart", 3)
    faults.knobs("dummymart", drop_unknown_lines=True, delisted_products=[dropped.external_id])
    faults.knobs("kiondo", max_line_quantity=1)
    faults.start_workers(1)

    faults.wait_until_settled()

    order = faults.order(order.number)
    dummymart = faults.sub_order(order, "dummymart")
    kiondo = faults.sub_order(order, "kiondo")
    dropped_item = next(i for i in order.items if i.external_id == dropped.external_id)
    assert dummymart.status in PLACED_SUB_ORDER_STATUSES
    assert dummymart.accepted_charge_minor == dummymart.charge_minor - dropped_item.charge_minor
    [kiondo_item] = [i for i in order.items if i.sub_order_id == kiondo.id]
    assert kiondo.accepted_charge_minor == kiondo_item.charge_minor // 3
    assert [r.amount_minor for r in _refunds(faults, kiondo.id)] == [
        kiondo.charge_minor - kiondo.accepted_charge_minor
    ]
    assert "sub_order_adjusted" in _kinds(faults, user.id)
    check_invariants(faults)


def test_marketplace_cancelling_after_placement_refunds_that_share(faults: Shop) -> None:
    faults.knobs("shopwave", cancel_next_orders=1)
    user = faults.make_user()
    faults.fill_cart(user, [("shopwave", 4, 1), ("kiondo", 4, 1)])
    order = faults.checkout(
        faults.client_for(user), payment_method="stripe", test_card="pm_card_visa"
    )
    faults.start_workers(1)

    wait_for(
        lambda: faults.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED,
        what="tracking to see the marketplace's cancellation",
    )
    faults.wait_until_settled()

    shopwave = faults.sub_order(order, "shopwave")
    assert [r.amount_minor for r in _refunds(faults, shopwave.id)] == [shopwave.charge_minor]
    check_invariants(faults)


@pytest.mark.parametrize(
    "slug",
    [
        # DummyJSON cannot be asked by reference: the next attempt after the lease runs out may
        # only resend with the same idempotency key, which returns the cart the dead worker made.
        "dummymart",
        # Kiondo (WooCommerce) can: the next attempt finds the order by reference and adopts it.
        "kiondo",
    ],
    ids=["unaskable-same-key", "found-by-reference"],
)
def test_worker_killed_after_the_marketplace_accepted_places_once(faults: Shop, slug: str) -> None:
    faults.worker_env.update(ONECART_MARKETPLACE_READ_TIMEOUT_S="30")
    user = faults.make_user(wallet=Decimal("5000"))
    faults.fill_cart(user, [(slug, 5, 1)])
    order = faults.checkout(faults.client_for(user), payment_method="wallet")
    faults.knobs(slug, order_reply_delay_ms=4000)
    [worker] = faults.start_workers(1)
    sub = faults.sub_order(order, slug)
    wait_for(
        lambda: held_orders(faults, slug, sub, order),
        what="the marketplace to accept the order",
    )
    worker.kill()
    faults.knobs(slug, order_reply_delay_ms=0)
    connection = faults.redis()
    connection.delete(f"rq:scheduler-lock:{faults.queue_name}")
    connection.close()

    faults.start_workers(1)
    faults.wait_until_settled()

    sub = faults.sub_order(order, slug)
    assert sub.status in PLACED_SUB_ORDER_STATUSES
    assert sub.attempts >= 2
    assert len(held_orders(faults, slug, sub, order)) == 1
    check_invariants(faults)


def test_an_order_accepting_none_of_the_items_that_cannot_be_cancelled_charges_nothing_for_it(
    faults: Shop,
) -> None:
    """DummyJSON drops products it no longer lists and answers 201 with an empty cart: the
    marketplace accepted none of the items, and its format cannot cancel. The placement asked
    for the cancel, was refused, flagged the order and released its claim; the capture then took
    the whole share for items nobody will ship, leaving an operator to refund it in Stripe by
    hand. The marketplace said what it accepted (nothing), so the share is refunded as for a
    refusal; the order stays on the operator's list for the empty order it holds."""
    user = faults.make_user()
    faults.fill_cart(user, [("dummymart", 3, 1), ("kiondo", 3, 1)])
    order = faults.checkout(
        faults.client_for(user), payment_method="stripe", test_card="pm_card_visa"
    )
    dropped = faults.product("dummymart", 3)
    faults.knobs("dummymart", drop_unknown_lines=True, delisted_products=[dropped.external_id])

    for sub in order.charged_sub_orders:
        place_sub_order(
            faults.session_factory,
            sub.id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
            overcharge_tolerance_bps=500,
        )

    order = faults.order(order.number)
    dummymart = faults.sub_order(order, "dummymart")
    kiondo = faults.sub_order(order, "kiondo")
    assert dummymart.marketplace_order_id and dummymart.kept_charge_minor == 0
    assert [(r.amount_minor, r.status) for r in _refunds(faults, dummymart.id)] == [
        (dummymart.charge_minor, RefundStatus.SUCCEEDED)
    ]
    payment = order.payment
    assert payment is not None and payment.captured_minor == kiondo.charge_minor
    assert order.attention_reason and "accepted none of the items" in order.attention_reason
    check_invariants(faults)
