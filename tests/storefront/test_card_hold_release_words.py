"""Money left out of a card payment is never called refunded on the order page.

A card is authorized for the whole order and captured for what the marketplaces keep: the share
a marketplace did not accept (billed less, left items out) or of a part that was cancelled or
never placed before the capture is simply not captured, its hold released (a Refund row of kind
`release`). It was never charged, so the page must not head it "Refunded" nor count it in the
order's "Refunded" total: the shopper's bank shows no refund, and a "Refunded $8.00" that never
arrives reads as money lost. It says "Not charged", with the amount, released from the card hold.

Shopper QA (shop15) found the sub-order's line, the timeline, the part's state, the cancellation
and the order's summary all saying "Refunded" for such releases. Real database, the real page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Marketplace, User
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from tests.storefront.conftest import text_of
from tests.storefront.order_factories import add_order, add_payment, add_sub_order

PLACED_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TRACKED = ["catalog", "order", "track", "cancel"]
BILLED_LESS = "Kiondo billed $40.00, not the $50.00 paid."


def _card_order(
    session: Session, user: User, *, status: OrderStatus, payment_status: PaymentStatus, **extra
) -> tuple[Order, Payment]:
    order = add_order(
        session,
        user,
        status=status,
        total_minor=5000,
        payment_method=PaymentMethod.STRIPE,
        created_at=PLACED_AT - timedelta(minutes=1),
        **extra,
    )
    captured = 4000 if payment_status == PaymentStatus.CAPTURED else 0
    payment = add_payment(
        session,
        order,
        method=PaymentMethod.STRIPE,
        status=payment_status,
        amount_minor=5000,
        captured_minor=captured,
        provider_reference=f"pi_{uuid.uuid4().hex[:12]}",
    )
    return order, payment


def _part(
    session: Session, order: Order, marketplace: Marketplace, status: SubOrderStatus
) -> MarketplaceOrder:
    return add_sub_order(
        session,
        order,
        marketplace,
        status=status,
        amount_minor=5000,
        marketplace_order_id=f"{marketplace.slug}-{uuid.uuid4().hex[:6]}",
        placed_at=PLACED_AT,
        created_at=PLACED_AT - timedelta(minutes=1),
    )


def _refund(
    payment: Payment,
    sub: MarketplaceOrder,
    amount: int,
    key: str,
    *,
    kind: RefundKind,
    status: RefundStatus,
    reason: str,
) -> Refund:
    done = status == RefundStatus.SUCCEEDED
    return Refund(
        payment_id=payment.id,
        sub_order_id=sub.id,
        kind=kind,
        status=status,
        amount_minor=amount,
        currency="USD",
        idempotency_key=key,
        reason=reason,
        created_at=PLACED_AT + timedelta(hours=1),
        completed_at=PLACED_AT + timedelta(hours=1) if done else None,
    )


@pytest.fixture
def kiondo(make_marketplace: Callable[..., Marketplace]) -> Marketplace:
    return make_marketplace(name="Kiondo", capabilities=TRACKED)


def _page(client: FlaskClient, order: Order) -> str:
    answer = client.get(f"/orders/{order.number}")
    assert answer.status_code == 200
    return text_of(answer.get_data(as_text=True))


@pytest.mark.parametrize(
    ("payment_status", "release_status", "released_words"),
    [
        (PaymentStatus.CAPTURED, RefundStatus.SUCCEEDED, "released from your card hold"),
        (PaymentStatus.AUTHORIZED, RefundStatus.PENDING, "to be released from your card hold"),
    ],
    ids=["captured", "not-captured-yet"],
)
def test_what_a_card_was_never_charged_for_is_said_not_charged_not_refunded(
    payment_status: PaymentStatus,
    release_status: RefundStatus,
    released_words: str,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    kiondo: Marketplace,
) -> None:
    """Kiondo billed $40.00 of the $50.00 held on the card: the $10.00 is left out of the
    capture. Before and after the capture, the page says it is not charged, never refunded."""
    order, payment = _card_order(
        db_session, signed_in_user, status=OrderStatus.PROCESSING, payment_status=payment_status
    )
    sub = _part(db_session, order, kiondo, SubOrderStatus.PLACED)
    sub.accepted_charge_minor = 4000
    db_session.add(
        _refund(
            payment,
            sub,
            1000,
            f"refund-sub-{sub.id}-adjust",
            kind=RefundKind.RELEASE,
            status=release_status,
            reason=BILLED_LESS,
        )
    )
    db_session.commit()

    page = _page(client, order)

    # The part's own line: the amount, not charged, and why (in the note's words).
    assert f"Not charged $10.00 ({released_words}: Kiondo billed $40.00, not the" in page
    # The summary and the timeline say the same; nothing on the page says refund.
    assert f"Not charged $10.00 {released_words}" in page
    assert "$10.00 not charged" in page
    assert "refund" not in page.lower()
    # Nor "Total paid $50.00" for a card charged $40.00, or only held so far.
    assert "Total paid" not in page and "Order total $50.00" in page
    if payment_status == PaymentStatus.CAPTURED:
        assert "Charged to your card $40.00" in page
    else:
        assert "Charged to your card" not in page


def test_a_cancelled_part_left_out_of_the_capture_is_not_charged_and_not_in_the_refunds(
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    kiondo: Marketplace,
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """The shopper cancelled; Kiondo's part was cancelled before the capture (released), and
    ShopWave's was refunded on the card after it. Each is told as what it is, and "Refunded so
    far" counts only the card refund."""
    shopwave = make_marketplace(name="ShopWave", capabilities=TRACKED)
    order, payment = _card_order(
        db_session,
        signed_in_user,
        status=OrderStatus.CANCELLED,
        payment_status=PaymentStatus.CAPTURED,
        cancel_requested_at=PLACED_AT + timedelta(minutes=30),
    )
    order.total_minor = 10000
    payment.amount_minor = 10000
    payment.captured_minor = 5000
    payment.status = PaymentStatus.REFUNDED
    released = _part(db_session, order, kiondo, SubOrderStatus.CANCELLED)
    refunded = _part(db_session, order, shopwave, SubOrderStatus.CANCELLED)
    for sub, kind in ((released, RefundKind.RELEASE), (refunded, RefundKind.CARD_REFUND)):
        db_session.add(
            _refund(
                payment,
                sub,
                5000,
                f"refund-sub-{sub.id}",
                kind=kind,
                status=RefundStatus.SUCCEEDED,
                reason="You cancelled it.",
            )
        )
    db_session.commit()

    page = _page(client, order)

    assert "Kiondo : cancelled; $50.00 not charged (released from your card hold)." in page
    assert "ShopWave : cancelled; $50.00 refunded." in page
    assert "Refunded so far: $50.00 to your card." in page
    assert "Not charged: $50.00 (released from your card hold)." in page
    assert "Cancelled (not charged)" in page and "Cancelled (refunded)" in page
    assert "Refunded $50.00" in page  # ShopWave's timeline: a real card refund
    assert "$50.00 not charged" in page  # Kiondo's timeline
    assert "Refunded $100.00" not in page and "Refunded so far: $100.00" not in page


def test_an_order_its_marketplaces_cancelled_before_the_capture_is_not_called_refunded(
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    kiondo: Marketplace,
) -> None:
    """Every part cancelled by its marketplace makes the order `refunded`; its badge (on the
    order page and in the order list) said "Refunded" for a card only held, whose hold was
    released: nothing was charged."""
    order, payment = _card_order(
        db_session, signed_in_user, status=OrderStatus.REFUNDED, payment_status=PaymentStatus.VOIDED
    )
    sub = _part(db_session, order, kiondo, SubOrderStatus.CANCELLED)
    db_session.add(
        _refund(
            payment,
            sub,
            5000,
            f"refund-sub-{sub.id}",
            kind=RefundKind.RELEASE,
            status=RefundStatus.SUCCEEDED,
            reason="Kiondo cancelled the order.",
        )
    )
    db_session.commit()

    page = _page(client, order)
    listed = text_of(client.get("/orders").get_data(as_text=True))

    assert f"Order {order.number} Cancelled (not charged)" in page
    assert "Cancelled (not charged)" in listed
    assert "refund" not in page.lower() and "Refunded" not in listed
