"""Admin QA leftovers on /admin/attention: when an order or a part was flagged for an operator
was not recorded (the page showed when the order was made, and sorted parts by their last
change), and "Refund (holds no order)" did not say where the money goes: to the shopper's
OneCart wallet, back on the card, or by releasing a card hold never captured. On the test
database (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from commerce.db import get_session_factory
from commerce.flag_resolution import resolve_flag
from commerce.models import Marketplace, User, WalletEntry, utc_now
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    SubOrderStatus,
)
from commerce.order_state import flag_order
from commerce.placement_claims import Claim
from commerce.placement_outcomes import needs_attention
from commerce.wallet import pay_from_wallet, top_up
from onecart.money import Money
from tests.storefront.order_factories import add_order, add_payment, add_sub_order


@pytest.fixture
def factory(storefront_db_url: str, app: Any) -> sessionmaker[Session]:
    return get_session_factory(storefront_db_url)


@pytest.fixture
def admin_client(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> FlaskClient:
    login(client, make_user(username="ops-times", is_admin=True))
    return client


def _order(
    session: Session,
    user: User,
    method: PaymentMethod,
    payment_status: PaymentStatus,
    marketplace: Marketplace,
) -> tuple[Order, MarketplaceOrder]:
    """An order of 2,500 USD with its payment and one sub-order being placed (claim "tok")."""
    order = add_order(session, user, total_minor=2500, payment_method=method)
    reference = "pi_times0001"
    if method == PaymentMethod.WALLET:
        reference = f"wallet-{uuid.uuid4().hex[:12]}"
        top_up(session, user, Decimal("25"), reference=f"sandbox-topup-{order.id}")
        pay_from_wallet(session, user, Money(2500, "USD"), reference=reference)
    add_payment(
        session,
        order,
        method=method,
        status=payment_status,
        amount_minor=2500,
        captured_minor=2500 if payment_status == PaymentStatus.CAPTURED else 0,
        provider_reference=reference,
    )
    sub = add_sub_order(
        session,
        order,
        marketplace,
        status=SubOrderStatus.PLACING,
        amount_minor=2500,
        claim_token="tok",
    )
    session.commit()
    return order, sub


def test_the_time_a_part_and_an_order_were_flagged_is_recorded_and_shown(
    admin_client: FlaskClient,
    db_session: Session,
    factory: sessionmaker[Session],
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    dummymart = make_marketplace(name="DummyMart Times")
    order, sub = _order(
        db_session, make_user(), PaymentMethod.WALLET, PaymentStatus.CAPTURED, dummymart
    )
    before = utc_now()
    needs_attention(factory, sub.id, Claim(token="tok", in_doubt=True), "timed out")
    with factory() as session, session.begin():
        flag_order(session.get(Order, order.id), "Refund r-9 refused by the provider")  # type: ignore[arg-type]
    first_flag = utc_now()
    with factory() as session, session.begin():
        # A second reason later does not move the time the order was listed.
        flag_order(session.get(Order, order.id), "Capture refused for good")  # type: ignore[arg-type]

    db_session.expire_all()
    sub = db_session.get(MarketplaceOrder, sub.id)  # type: ignore[assignment]
    order = db_session.get(Order, order.id)  # type: ignore[assignment]
    assert sub.attention_since is not None and before <= sub.attention_since <= first_flag
    assert order.flagged_at is not None and before <= order.flagged_at <= first_flag

    html = admin_client.get("/admin/attention").get_data(as_text=True)
    row = html[html.index(f'id="sub-order-{sub.id}"') :]
    row = row[: row.index("</tr>")]
    assert f"needs attention since {sub.attention_since:%Y-%m-%d %H:%M} UTC" in row
    flagged = html[html.index(f'id="flagged-order-{order.id}"') :]
    flagged = flagged[: flagged.index("</tr>")]
    assert f"flagged {order.flagged_at:%Y-%m-%d %H:%M} UTC" in flagged

    # Resolved, the order leaves the list and its time goes with it; flagged again, anew.
    with factory() as session, session.begin():
        current = session.get(Order, order.id).attention_reason  # type: ignore[union-attr]
    assert resolve_flag(factory, order.id, current or "", "ops-times", "paid by hand").resolved
    db_session.expire_all()
    assert db_session.get(Order, order.id).flagged_at is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "payment_status", "button", "kind", "said", "recorded"),
    [
        (
            PaymentMethod.WALLET,
            PaymentStatus.CAPTURED,
            "Refund to the wallet",
            RefundKind.WALLET_CREDIT,
            "is refunded to the shopper's OneCart wallet.",
            "its share is refunded to the OneCart wallet",
        ),
        (
            PaymentMethod.STRIPE,
            PaymentStatus.CAPTURED,
            "Refund to the card",
            RefundKind.CARD_REFUND,
            # Until Stripe confirms it (process_refunds is not run here).
            "is being refunded on the shopper's card (Stripe has not confirmed it yet).",
            "its share is going back to the card",
        ),
        (
            PaymentMethod.STRIPE,
            PaymentStatus.AUTHORIZED,
            "Release the card hold",
            RefundKind.RELEASE,
            # The hold is released by the capture or the cancel (settle_payment is not run
            # here): until then it is not said released.
            "is left out of the card payment (nothing of it is captured; its hold is released "
            "when the payment is settled).",
            "its share is left out of the card payment (nothing of it is captured)",
        ),
    ],
    ids=["wallet", "card", "card-hold"],
)
def test_the_refund_action_says_whether_it_refunds_to_the_wallet_or_the_card(
    admin_client: FlaskClient,
    db_session: Session,
    factory: sessionmaker[Session],
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    monkeypatch: pytest.MonkeyPatch,
    method: PaymentMethod,
    payment_status: PaymentStatus,
    button: str,
    kind: RefundKind,
    said: str,
    recorded: str,
) -> None:
    # The card refund itself is sent by process_refunds (Stripe): not what is tested here.
    monkeypatch.setattr("commerce.attention.process_refunds", lambda *args, **kwargs: 0)
    monkeypatch.setattr("commerce.attention.settle_payment", lambda *args, **kwargs: None)
    market = make_marketplace(name="Fake Store Refunds")
    order, sub = _order(db_session, make_user(), method, payment_status, market)
    needs_attention(factory, sub.id, Claim(token="tok", in_doubt=True), "timed out")

    html = admin_client.get("/admin/attention").get_data(as_text=True)
    row = html[html.index(f'id="sub-order-{sub.id}"') :]
    row = row[: row.index("</tr>")]
    assert re.search(rf">{button} \(holds no order\)<", row), row

    answer = admin_client.post(f"/admin/attention/{sub.id}/refund", follow_redirects=True)
    page = answer.get_data(as_text=True).replace("&#39;", "'")
    number = f'<span class="keep-together">{order.number}</span>'
    assert f"{number}: Fake Store Refunds holds no order: its share of $25.00 {said}" in page
    db_session.expire_all()
    refund = db_session.scalars(sa.select(Refund).where(Refund.sub_order_id == sub.id)).one()
    assert refund.kind == kind
    # The refund's recorded reason (on the order's pages and the attention list) says it too.
    assert recorded in refund.reason
    if kind == RefundKind.WALLET_CREDIT:
        line = db_session.scalars(
            sa.select(WalletEntry).where(WalletEntry.reference == refund.provider_reference)
        ).one()
        assert line.description == (
            "Refund: Fake Store Refunds holds no order (confirmed by our team); "
            "its share is refunded to the OneCart wallet."
        )
