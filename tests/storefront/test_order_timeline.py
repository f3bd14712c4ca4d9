"""The order page's timelines (commerce.order_timeline.build_order_view) tell what happened and
nothing more: a step the marketplace answered with at placement is shown as reached, and the
merged timeline does not claim that a part nobody reports on has arrived."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from commerce.marketplace_refunds import marketplace_refund_key
from commerce.models import Marketplace, User
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    OrderEvent,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.order_timeline import TimelineEntry, build_order_view, order_status_label
from tests.storefront.order_factories import add_order, add_payment, add_sub_order

PLACED_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TRACKED = ["catalog", "order", "track", "cancel"]
UNTRACKED = ["catalog", "order"]


@pytest.fixture
def shopwave(make_marketplace: Callable[..., Marketplace]) -> Marketplace:
    """ShopWave: a marketplace that reports its orders' progress and takes cancellations."""
    return make_marketplace(name="ShopWave", capabilities=TRACKED)


def _order(session: Session, user: User, status: OrderStatus) -> Order:
    return add_order(
        session,
        user,
        status=status,
        total_minor=10000,
        payment_method=PaymentMethod.WALLET,
        created_at=PLACED_AT - timedelta(minutes=1),
    )


def _sub_order(
    session: Session, order: Order, marketplace: Marketplace, status: SubOrderStatus
) -> MarketplaceOrder:
    return add_sub_order(
        session,
        order,
        marketplace,
        status=status,
        amount_minor=5000,
        marketplace_order_id=f"{marketplace.slug}-1",
        placed_at=PLACED_AT,
        created_at=PLACED_AT - timedelta(minutes=1),
    )


def _cancelled_wallet_part(
    session: Session, user: User, marketplace: Marketplace
) -> tuple[MarketplaceOrder, Payment]:
    """A cancelled order's one cancelled part on `marketplace`, and its wallet payment (refunded)."""
    order = _order(session, user, OrderStatus.CANCELLED)
    sub = _sub_order(session, order, marketplace, SubOrderStatus.CANCELLED)
    payment = add_payment(
        session,
        order,
        method=PaymentMethod.WALLET,
        status=PaymentStatus.REFUNDED,
        amount_minor=5000,
        provider_reference=f"wallet-{uuid.uuid4().hex[:12]}",
    )
    return sub, payment


def _wallet_refund(
    payment: Payment,
    sub: MarketplaceOrder,
    amount: int,
    key: str,
    at: datetime,
    reason: str = "",
    *,
    completed_at: datetime | None = None,
) -> Refund:
    """A wallet refund of `amount` for `sub`, made `at` (and completed then, unless
    `completed_at` says otherwise)."""
    return Refund(
        payment_id=payment.id,
        sub_order_id=sub.id,
        kind=RefundKind.WALLET_CREDIT,
        status=RefundStatus.SUCCEEDED,
        amount_minor=amount,
        currency="USD",
        idempotency_key=key,
        reason=reason,
        created_at=at,
        completed_at=at if completed_at is None else completed_at,
    )


def _timeline_once_cancelled(
    session: Session, sub: MarketplaceOrder, cancelled_at: datetime, refunds: list[Refund]
) -> list[TimelineEntry]:
    """`sub`'s timeline once `refunds` and its "cancelled" step at `cancelled_at` are recorded."""
    session.add_all(
        [
            *refunds,
            OrderEvent(
                order_id=sub.order_id,
                sub_order_id=sub.id,
                step="cancelled",
                occurred_at=cancelled_at,
            ),
        ]
    )
    session.commit()
    [part] = _view_of(session, sub.order_id).sub_orders
    return part.timeline


def _view_of(session: Session, order_id: int):  # type: ignore[no-untyped-def]
    session.expire_all()
    order = session.scalars(
        sa.select(Order)
        .where(Order.id == order_id)
        .options(selectinload(Order.sub_orders), selectinload(Order.payment))
    ).one()
    return build_order_view(session, order)


def test_a_part_placed_straight_into_preparation_shows_that_step_as_reached(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    # WooCommerce answers a new order with "processing": the sub-order starts there and
    # tracking never records the step, yet the page says "Being prepared".
    kiondo = make_marketplace(name="Kiondo Market", capabilities=TRACKED)
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    _sub_order(db_session, order, kiondo, SubOrderStatus.PROCESSING)
    db_session.commit()

    view = _view_of(db_session, order.id)

    [part] = view.sub_orders
    assert part.state == "Being prepared"
    steps = [(entry.step, entry.done) for entry in part.timeline]
    assert ("processing", True) in steps
    assert ("processing", False) not in steps
    assert [step for step, done in steps if not done] == ["shipped", "in_transit", "delivered"]
    at = {entry.step: entry.at for entry in part.timeline}
    assert at["processing"] == at["placed"]  # reached when the marketplace accepted the order
    assert ("Kiondo Market", "processing") in [(e.marketplace, e.step) for e in view.merged]


def test_a_recorded_preparation_step_is_not_shown_twice(
    db_session: Session,
    make_user: Callable[..., User],
    shopwave: Marketplace,
) -> None:
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    sub = _sub_order(db_session, order, shopwave, SubOrderStatus.PROCESSING)
    db_session.add(
        OrderEvent(
            order_id=order.id,
            sub_order_id=sub.id,
            step="processing",
            occurred_at=PLACED_AT + timedelta(minutes=5),
        )
    )
    db_session.commit()

    [part] = _view_of(db_session, order.id).sub_orders

    assert [entry.step for entry in part.timeline].count("processing") == 1


def test_an_order_delivered_but_for_an_unreported_part_does_not_say_everything_arrived(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    shopwave: Marketplace,
) -> None:
    fakestore = make_marketplace(name="Fake Store Berlin", capabilities=UNTRACKED)
    order = _order(db_session, make_user(), OrderStatus.DELIVERED)
    delivered = _sub_order(db_session, order, shopwave, SubOrderStatus.DELIVERED)
    unreported = _sub_order(db_session, order, fakestore, SubOrderStatus.PLACED)
    db_session.add(
        OrderEvent(
            order_id=order.id,
            sub_order_id=delivered.id,
            step="delivered",
            occurred_at=PLACED_AT + timedelta(days=2),
        )
    )
    db_session.commit()

    last = _view_of(db_session, order.id).merged[-1]

    assert last.step == "complete" and last.done
    assert last.label != "Everything has arrived"
    assert "Fake Store Berlin" in last.detail

    # Once the shopper confirms the unreported part, everything has arrived.
    unreported.status = SubOrderStatus.DELIVERED
    unreported.receipt_confirmed_at = PLACED_AT + timedelta(days=3)
    db_session.commit()
    assert _view_of(db_session, order.id).merged[-1].label == "Everything has arrived"


def test_a_delivered_order_names_the_parts_nobody_confirmed_in_its_status(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    shopwave: Marketplace,
) -> None:
    """Shopper QA, fifth pass: the order's badge, the orders list and the status link said
    "Delivered" while DummyMart's and Fake Store's parts (marketplaces that report no delivery)
    were not confirmed received. They still do not hold the order up, but its status says which
    parts nobody confirmed, until the shopper does."""
    dummymart = make_marketplace(name="DummyMart", capabilities=UNTRACKED)
    fakestore = make_marketplace(name="Fake Store Berlin", capabilities=UNTRACKED)
    order = _order(db_session, make_user(), OrderStatus.DELIVERED)
    _sub_order(db_session, order, shopwave, SubOrderStatus.DELIVERED)
    unconfirmed = [
        _sub_order(db_session, order, dummymart, SubOrderStatus.PLACED),
        _sub_order(db_session, order, fakestore, SubOrderStatus.PROCESSING),
    ]
    db_session.commit()

    view = _view_of(db_session, order.id)
    assert view.status_label == "Delivered (DummyMart, Fake Store Berlin not confirmed)"
    assert order_status_label(view.order) == view.status_label  # the orders list's words

    unconfirmed[0].status = SubOrderStatus.DELIVERED
    unconfirmed[0].receipt_confirmed_at = PLACED_AT + timedelta(days=3)
    db_session.commit()
    assert (
        _view_of(db_session, order.id).status_label == "Delivered (Fake Store Berlin not confirmed)"
    )

    unconfirmed[1].status = SubOrderStatus.DELIVERED
    unconfirmed[1].receipt_confirmed_at = PLACED_AT + timedelta(days=3)
    db_session.commit()
    assert _view_of(db_session, order.id).status_label == "Delivered"


def test_a_refund_made_while_the_cancellation_is_recorded_follows_it(
    db_session: Session,
    make_user: Callable[..., User],
    shopwave: Marketplace,
) -> None:
    # A wallet refund is credited inside the cancellation's transaction, a few milliseconds
    # before its "cancelled" step is written: the page must still tell it in that order.
    sub, payment = _cancelled_wallet_part(db_session, make_user(), shopwave)
    cancelled_at = PLACED_AT + timedelta(hours=1)
    refund = _wallet_refund(
        payment,
        sub,
        5000,
        uuid.uuid4().hex,
        cancelled_at - timedelta(milliseconds=21),
        completed_at=cancelled_at - timedelta(milliseconds=16),
    )

    timeline = _timeline_once_cancelled(db_session, sub, cancelled_at, [refund])

    steps = [entry.step for entry in timeline]
    assert steps.index("cancelled") < steps.index("refunded")


def test_a_marketplace_refund_days_before_the_cancellation_keeps_its_own_time(
    db_session: Session,
    make_user: Callable[..., User],
    shopwave: Marketplace,
) -> None:
    # The store refunded one line a day after placement and cancelled the rest a day later:
    # the partial refund is told where it happened, before the cancellation and its refund.
    sub, payment = _cancelled_wallet_part(db_session, make_user(), shopwave)
    partly_refunded_at = PLACED_AT + timedelta(days=1)
    cancelled_at = PLACED_AT + timedelta(days=2)
    refunds = [
        _wallet_refund(
            payment,
            sub,
            1000,
            marketplace_refund_key(sub.id, 1000),
            partly_refunded_at,
            reason="ShopWave refunded $10.00 of its order.",
        ),
        _wallet_refund(
            payment, sub, 4000, uuid.uuid4().hex, cancelled_at - timedelta(milliseconds=20)
        ),
    ]

    timeline = _timeline_once_cancelled(db_session, sub, cancelled_at, refunds)

    told = [(entry.step, entry.label) for entry in timeline]
    assert told.index(("refunded", "Refunded $10.00")) < told.index(("cancelled", "Cancelled"))
    assert told.index(("cancelled", "Cancelled")) < told.index(("refunded", "Refunded $40.00"))


def test_a_refused_cancellation_keeps_its_reason_once_the_part_ships_or_is_received(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    # The shopper cancelled while both parts were only placed: DummyMart takes no cancellations
    # and ShopWave refused. Later ShopWave ships it and the shopper confirms DummyMart's part.
    # Neither had shipped when the cancellation was refused, so the page must not say so.
    dummymart = make_marketplace(name="DummyMart", capabilities=UNTRACKED)
    shopwave = make_marketplace(name="ShopWave", capabilities=TRACKED)
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    order.cancel_requested_at = PLACED_AT + timedelta(hours=1)
    untracked = _sub_order(db_session, order, dummymart, SubOrderStatus.PLACED)
    refused = _sub_order(db_session, order, shopwave, SubOrderStatus.PLACED)
    refused.cancel_outcome = "refused"
    db_session.commit()
    before = {
        part.sub_order.id: part.cancel.text for part in _view_of(db_session, order.id).sub_orders
    }

    untracked.status = SubOrderStatus.DELIVERED
    untracked.receipt_confirmed_at = PLACED_AT + timedelta(days=2)
    refused.status = SubOrderStatus.SHIPPED
    db_session.commit()
    after = {
        part.sub_order.id: part.cancel.text for part in _view_of(db_session, order.id).sub_orders
    }

    assert after == before
    assert "does not accept cancellations" in after[untracked.id]
    # ShopWave takes cancellations: it declined this one (shopper QA: not "does not accept").
    assert "declined to cancel this order" in after[refused.id]
    assert "shipped" not in after[untracked.id] and "shipped" not in after[refused.id]


def test_a_part_shipped_before_the_cancellation_reached_it_says_so(
    db_session: Session,
    make_user: Callable[..., User],
    shopwave: Marketplace,
) -> None:
    # The cancellation job found it shipped and never asked the marketplace (no answer kept).
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    order.cancel_requested_at = PLACED_AT + timedelta(hours=1)
    _sub_order(db_session, order, shopwave, SubOrderStatus.SHIPPED)
    db_session.commit()

    [part] = _view_of(db_session, order.id).sub_orders

    assert part.cancel.text == "had already shipped it, so it goes ahead."


def _card_refund(
    payment: Payment, sub: MarketplaceOrder, amount: int, key: str, status: RefundStatus
) -> Refund:
    return Refund(
        payment_id=payment.id,
        sub_order_id=sub.id,
        kind=RefundKind.CARD_REFUND,
        status=status,
        amount_minor=amount,
        currency="USD",
        idempotency_key=key,
        reason="Kiondo cancelled it (confirmed by our team).",
        created_at=PLACED_AT + timedelta(hours=1),
        completed_at=PLACED_AT + timedelta(hours=1) if status == RefundStatus.SUCCEEDED else None,
    )


def _card_payment(session: Session, order: Order) -> Payment:
    order.payment_method = PaymentMethod.STRIPE
    payment = Payment(
        order_id=order.id,
        method=PaymentMethod.STRIPE,
        status=PaymentStatus.CAPTURED,
        currency="USD",
        amount_minor=10000,
        captured_minor=10000,
        provider_reference=f"pi_{uuid.uuid4().hex[:12]}",
    )
    session.add(payment)
    session.flush()
    return payment


@pytest.mark.parametrize(
    ("status", "state", "told"),
    [
        (RefundStatus.PROCESSING, "Cancelled (refund on its way)", "Refund of $50.00 on its way"),
        (
            RefundStatus.FAILED,
            "Cancelled (our team is checking your refund)",
            "Refund of $50.00 not confirmed: our team is looking into it",
        ),
        (RefundStatus.SUCCEEDED, "Cancelled (refunded)", "Refunded $50.00"),
    ],
    ids=["processing", "failed", "succeeded"],
)
def test_a_cancelled_part_says_where_its_card_refund_really_stands(
    status: RefundStatus,
    state: str,
    told: str,
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """An operator (or the marketplace) cancelled the part and its card refund was recorded: the
    page follows the refund's own status at Stripe, never "cancelled" alone while the shopper's
    money is on its way or was refused, and a refused refund does not vanish from the timeline."""
    kiondo = make_marketplace(name="Kiondo", capabilities=TRACKED)
    order = _order(db_session, make_user(), OrderStatus.CANCELLED)
    sub = _sub_order(db_session, order, kiondo, SubOrderStatus.CANCELLED)
    sub.last_error = "Kiondo cancelled it (confirmed by our team)."
    payment = _card_payment(db_session, order)
    db_session.add(_card_refund(payment, sub, 5000, f"refund-sub-{sub.id}", status))
    db_session.commit()

    [part] = _view_of(db_session, order.id).sub_orders

    assert part.state == state
    labels = [entry.label for entry in part.timeline]
    assert told in labels
    if status != RefundStatus.SUCCEEDED:
        assert not any(label.startswith("Refunded") for label in labels)


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (RefundStatus.PENDING, "Being refunded"),
        (RefundStatus.PROCESSING, "Being refunded"),
        (RefundStatus.FAILED, "Refund not confirmed (our team is looking into it)"),
        (RefundStatus.SUCCEEDED, "Refunded"),
    ],
)
def test_what_a_marketplace_did_not_accept_is_said_refunded_only_once_it_is(
    status: RefundStatus,
    said: str,
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    kiondo = make_marketplace(name="Kiondo", capabilities=TRACKED)
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    sub = _sub_order(db_session, order, kiondo, SubOrderStatus.PLACED)
    sub.accepted_charge_minor = 4000
    payment = _card_payment(db_session, order)
    db_session.add(_card_refund(payment, sub, 1000, f"refund-sub-{sub.id}-adjust", status))
    db_session.commit()

    [part] = _view_of(db_session, order.id).sub_orders

    assert part.accepted_refund_label == said


@pytest.mark.parametrize(
    ("kind", "status", "said"),
    [
        (RefundKind.CARD_REFUND, RefundStatus.SUCCEEDED, "of $50.00 paid; the rest refunded"),
        (RefundKind.CARD_REFUND, RefundStatus.PENDING, "of $50.00 paid; the rest being refunded"),
        (
            RefundKind.CARD_REFUND,
            RefundStatus.FAILED,
            "of $50.00 paid; the refund of the rest not confirmed yet",
        ),
        (
            RefundKind.RELEASE,
            RefundStatus.SUCCEEDED,
            "of $50.00 held on your card; the rest not charged",
        ),
        (
            RefundKind.RELEASE,
            RefundStatus.PENDING,
            "of $50.00 held on your card; the rest not charged",
        ),
        (
            RefundKind.RELEASE,
            RefundStatus.FAILED,
            "of $50.00 held on your card; the release of the rest not confirmed yet",
        ),
    ],
)
def test_a_part_charged_less_than_its_share_heads_with_where_the_rest_went(
    kind: RefundKind,
    status: RefundStatus,
    said: str,
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """The heading says only "the rest": its amount is on the refund line below, once; and a
    share left out of a card payment was never paid, so it is "held", "not charged"."""
    kiondo = make_marketplace(name="Kiondo", capabilities=TRACKED)
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    sub = _sub_order(db_session, order, kiondo, SubOrderStatus.PLACED)
    assert (sub.charge_minor, sub.charge_currency) == (5000, "USD")
    sub.accepted_charge_minor = 4000
    payment = _card_payment(db_session, order)
    refund = _card_refund(payment, sub, 1000, f"refund-sub-{sub.id}-adjust", status)
    refund.kind = kind
    db_session.add(refund)
    db_session.commit()

    [part] = _view_of(db_session, order.id).sub_orders

    assert part.charged_note == said
    assert "$10.00" not in said


def test_a_part_charged_its_whole_share_has_no_heading_note(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    kiondo = make_marketplace(name="Kiondo", capabilities=TRACKED)
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    sub = _sub_order(db_session, order, kiondo, SubOrderStatus.PLACED)
    sub.accepted_charge_minor = sub.charge_minor
    db_session.commit()

    [part] = _view_of(db_session, order.id).sub_orders

    assert part.charged_note is None


def test_a_part_being_asked_again_says_checking_not_being_placed(
    db_session: Session, make_user: Callable[..., User], shopwave: Marketplace
) -> None:
    """An unresolved part is claimed (`placing`) at every re-ask and given back `reconciling`:
    the page said "Being placed" and "Checking with ShopWave" by turns every few seconds. A
    re-ask (its first claim earlier than this one) is the check it is; only a first attempt is
    being placed."""
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    first_claim = PLACED_AT - timedelta(hours=3)
    asking_again = _sub_order(db_session, order, shopwave, SubOrderStatus.PLACING)
    asking_again.unresolved_since = first_claim
    asking_again.placing_started_at = PLACED_AT
    db_session.commit()

    [part] = _view_of(db_session, order.id).sub_orders
    assert part.state == "Checking with ShopWave"

    asking_again.unresolved_since = PLACED_AT  # its first attempt, under way
    db_session.commit()
    [part] = _view_of(db_session, order.id).sub_orders
    assert part.state == "Being placed"


def test_a_cancelled_orders_part_being_asked_again_does_not_say_it_is_stopped_before_placing(
    db_session: Session, make_user: Callable[..., User], shopwave: Marketplace
) -> None:
    """The same flip on the cancellation's line: between re-asks the part said "We don't know
    yet whether ShopWave has cancelled", and during each re-ask "stopping it before it is
    placed…", which is false: ShopWave may hold the order. A re-ask says what is known."""
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    order.cancel_requested_at = PLACED_AT + timedelta(minutes=5)
    part = _sub_order(db_session, order, shopwave, SubOrderStatus.RECONCILING)
    part.unresolved_since = PLACED_AT - timedelta(hours=3)
    db_session.commit()
    [between] = _view_of(db_session, order.id).sub_orders

    part.status = SubOrderStatus.PLACING
    part.placing_started_at = PLACED_AT
    db_session.commit()
    [asking] = _view_of(db_session, order.id).sub_orders

    assert between.cancel is not None and asking.cancel is not None
    assert asking.cancel == between.cancel
    assert "before it is placed" not in asking.cancel.text


def test_a_partly_cancelled_order_says_how_its_other_parts_ended(
    db_session: Session, make_user: Callable[..., User], shopwave: Marketplace, make_marketplace
) -> None:
    """Shopper QA: one part cancelled by the shopper, the rest delivered, and the orders list
    still said "Partly cancelled": it says the parts' real end, and how many were cancelled."""
    kiondo = make_marketplace(name="Kiondo Market", capabilities=TRACKED)
    fakestore = make_marketplace(name="Fake Store Berlin", capabilities=TRACKED)
    order = _order(db_session, make_user(), OrderStatus.PROCESSING)
    order.cancel_requested_at = PLACED_AT + timedelta(hours=1)
    _sub_order(db_session, order, shopwave, SubOrderStatus.CANCELLED)
    delivered = _sub_order(db_session, order, kiondo, SubOrderStatus.SHIPPED)
    db_session.commit()
    # Still on its way: nothing ended yet but the cancelled part.
    assert order_status_label(_view_of(db_session, order.id).order) == "Partly cancelled"

    delivered.status = SubOrderStatus.DELIVERED
    order.status = OrderStatus.DELIVERED
    db_session.commit()
    view = _view_of(db_session, order.id)
    assert view.status_label == "Delivered, 1 part cancelled"
    assert order_status_label(view.order) == view.status_label  # the orders list's words

    _sub_order(db_session, order, fakestore, SubOrderStatus.CANCELLED)
    db_session.commit()
    assert order_status_label(_view_of(db_session, order.id).order) == (
        "Delivered, 2 parts cancelled"
    )
