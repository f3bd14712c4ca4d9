"""What /admin/attention shows an operator of a flagged order, and how it copes with many: the
amounts with their currency, the card payment's PaymentIntent, each refund tried, each
marketplace's part with its order number, and every flagged order reachable however many there
are. On the test database (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Marketplace, User, utc_now
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from tests.storefront.order_factories import add_order, add_payment, add_sub_order


@pytest.fixture
def admin_client(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> FlaskClient:
    login(client, make_user(username="ops-admin", is_admin=True))
    return client


@pytest.fixture
def shopper(make_user: Callable[..., User]) -> User:
    return make_user()


@pytest.fixture
def dummymart(make_marketplace: Callable[..., Marketplace]) -> Marketplace:
    return make_marketplace(name="DummyMart Test")


def _flagged_order(
    db_session: Session, user: User, reason: str, *, flagged_at: Any = None, currency: str = "KES"
) -> Order:
    return add_order(
        db_session,
        user,
        total_minor=1_250_000,
        currency=currency,
        payment_method=PaymentMethod.STRIPE,
        attention_reason=reason,
        **({} if flagged_at is None else {"updated_at": flagged_at}),
    )


def _wallet_paid_part(
    db_session: Session, order: Order, market: Marketplace, **fields: object
) -> MarketplaceOrder:
    """`order` paid from the wallet (995 USD cents, captured) with one part of that amount on
    `market`, with `fields` (status, marketplace number, claim, …) set; committed."""
    order.payment_method = PaymentMethod.WALLET
    add_payment(
        db_session,
        order,
        method=PaymentMethod.WALLET,
        status=PaymentStatus.CAPTURED,
        amount_minor=995,
        provider_reference=f"wallet-{order.id}",
    )
    sub = add_sub_order(db_session, order, market, amount_minor=995, **fields)
    db_session.commit()
    return sub


def _flagged_rows(html: str) -> str:
    start = html.index("<h2>Flagged orders</h2>")
    return html[start : html.index("<h2>Recently resolved</h2>", start)]


def _operator_cancel_refused(
    admin_client: FlaskClient, db_session: Session, sub: MarketplaceOrder
) -> MarketplaceOrder:
    """Checks that the flagged order's row offers no "… confirmed it cancelled" for `sub` and
    that a post naming it changes nothing and refunds nothing; returns `sub` as it is now."""
    row = _flagged_rows(admin_client.get("/admin/attention").get_data(as_text=True))
    assert f"/admin/attention/{sub.id}/cancelled" not in row

    answer = admin_client.post(f"/admin/attention/{sub.id}/cancelled", follow_redirects=True)

    assert "nothing was changed" in answer.get_data(as_text=True)
    db_session.expire_all()
    kept = db_session.get(MarketplaceOrder, sub.id)
    assert kept is not None
    assert list(db_session.scalars(sa.select(Refund).where(Refund.sub_order_id == sub.id))) == []
    return kept


def test_a_flagged_order_shows_what_the_operator_needs_to_refund_by_hand(
    admin_client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """ "Refund r-… refused by the provider" names no amount: the row must show the order's and the
    payment's amounts with currency, the refund tried (amount, currency, state, key), and each
    marketplace's part with its order number, so the operator can pay the shopper back by hand
    and find the order at the marketplace."""
    shopper = make_user()
    kiondo = make_marketplace(name="Kiondo Test", currency="KES")
    order = _flagged_order(
        db_session, shopper, "Refund rf-ord-77 refused by the provider: card closed"
    )
    payment = add_payment(
        db_session,
        order,
        method=PaymentMethod.STRIPE,
        status=PaymentStatus.CAPTURED,
        currency="KES",
        amount_minor=1_250_000,
        provider_reference="pi_flaggedcase0001",
    )
    sub = add_sub_order(
        db_session,
        order,
        kiondo,
        status=SubOrderStatus.CANCELLED,
        amount_minor=830_000,
        currency="KES",
        marketplace_order_id="4471",
        placed_at=utc_now(),
    )
    db_session.add(
        Refund(
            payment_id=payment.id,
            sub_order_id=sub.id,
            kind=RefundKind.CARD_REFUND,
            status=RefundStatus.FAILED,
            amount_minor=830_000,
            currency="KES",
            idempotency_key="rf-ord-77",
        )
    )
    db_session.commit()

    row = _flagged_rows(admin_client.get("/admin/attention").get_data(as_text=True))

    assert "pi_flaggedcase0001" in row
    assert "KES12,500.00" in row  # the order's total and the payment
    assert "KES8,300.00" in row  # the refund tried and the part it was for
    assert "rf-ord-77" in row and "failed" in row
    assert "Kiondo Test" in row and "#4471" in row and "cancelled" in row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row)  # when the order was made


def test_every_flagged_order_is_reachable_however_many_there_are(
    admin_client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The list stopped at 200 rows, newest first, and said nothing: the orders flagged longest
    ago, the most urgent, were never shown. It says how many there are and pages through them."""
    from storefront.admin import routes

    monkeypatch.setattr(routes, "FLAGGED_PAGE_SIZE", 3)
    shopper = make_user()
    now = utc_now()
    orders = [
        _flagged_order(db_session, shopper, f"problem {n}", flagged_at=now - timedelta(minutes=n))
        for n in range(7)
    ]
    db_session.commit()

    first = _flagged_rows(admin_client.get("/admin/attention").get_data(as_text=True))
    assert "7 flagged orders" in first
    seen = set()
    for page in (1, 2, 3):
        html = admin_client.get(f"/admin/attention?flagged_page={page}").get_data(as_text=True)
        seen |= {order.number for order in orders if order.number in _flagged_rows(html)}
    assert seen == {order.number for order in orders}
    assert 'href="/admin/attention?flagged_page=2' in first
    # Out of range or not a number: the nearest page, never an error.
    assert admin_client.get("/admin/attention?flagged_page=99").status_code == 200
    for junk in ("x", "-1", "²", "9" * 40):
        assert admin_client.get(f"/admin/attention?flagged_page={junk}").status_code == 200


@pytest.mark.parametrize(
    ("path", "form"),
    [
        # "Mark placed" and "Refund" raised LookupError for an unknown sub-order: a 500 page.
        ("/admin/attention/999999/placed", {"marketplace_order_id": "51"}),
        ("/admin/attention/999999/refund", None),
        # An unknown dispute or hold was answered "That dispute was acknowledged already." (a
        # redirect), as if someone had dealt with it.
        ("/admin/attention/disputes/999999/acknowledge", None),
        ("/admin/attention/unowned-holds/999999/acknowledge", None),
    ],
    ids=["mark-placed", "refund", "acknowledge-dispute", "acknowledge-unowned-hold"],
)
def test_acting_on_a_sub_order_dispute_or_hold_that_does_not_exist_is_404(
    admin_client: FlaskClient, path: str, form: dict[str, str] | None
) -> None:
    assert admin_client.post(path, data=form).status_code == 404


def test_the_unanswered_placements_list_is_bounded_and_says_how_many_wait(
    admin_client: FlaskClient,
    db_session: Session,
    shopper: User,
    dummymart: Marketplace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every sub-order needing attention was rendered, each with two forms: a marketplace
    outage leaving thousands made the page as large and slow as that. The list shows the ones
    waiting longest, at most a bound, and says how many wait in all."""
    from storefront.admin import routes

    monkeypatch.setattr(routes, "SUB_ORDERS_SHOWN", 2)
    now = utc_now()
    waiting = []
    for n in range(3):
        order = _flagged_order(db_session, shopper, f"unused {n}")
        order.attention_reason = None
        sub = add_sub_order(
            db_session,
            order,
            dummymart,
            status=SubOrderStatus.NEEDS_ATTENTION,
            amount_minor=995,
            updated_at=now - timedelta(hours=3 - n),  # the first waits longest
        )
        waiting.append(sub)
    db_session.commit()

    html = admin_client.get("/admin/attention").get_data(as_text=True)
    assert f'id="sub-order-{waiting[0].id}"' in html and f'id="sub-order-{waiting[1].id}"' in html
    assert f'id="sub-order-{waiting[2].id}"' not in html
    assert "3 sub-orders need attention; the 2 waiting longest are shown" in html


def test_the_answer_to_mark_placed_names_the_order_and_marketplace_not_an_internal_id(
    admin_client: FlaskClient,
    db_session: Session,
    shopper: User,
    dummymart: Marketplace,
) -> None:
    """The page lists orders by number and marketplace; "Sub-order 17 is recorded as placed" (and
    "... no longer needs attention" on a second click) named an id shown nowhere on it."""
    order = _flagged_order(db_session, shopper, "unused")
    order.attention_reason = None
    sub = add_sub_order(
        db_session,
        order,
        dummymart,
        status=SubOrderStatus.PLACED,  # settled by another operator already
        amount_minor=995,
        marketplace_order_id="51",
    )
    db_session.commit()

    answer = admin_client.post(
        f"/admin/attention/{sub.id}/placed",
        data={"marketplace_order_id": "51"},
        follow_redirects=True,
    ).get_data(as_text=True)
    refund = admin_client.post(f"/admin/attention/{sub.id}/refund", follow_redirects=True).get_data(
        as_text=True
    )

    for html in (answer, refund):
        # The flash keeps the order's number on one line (order_numbers_whole).
        number = f'<span class="keep-together">{order.number}</span>'
        assert f"{number}: DummyMart Test" in html and "no longer needs attention" in html
        assert f"Sub-order {sub.id}" not in html


def test_a_flagged_orders_placed_part_can_be_recorded_cancelled_by_its_marketplace(
    admin_client: FlaskClient,
    db_session: Session,
    shopper: User,
    dummymart: Marketplace,
) -> None:
    """A placed part whose cancel nobody confirmed offers the operator "… confirmed it
    cancelled": posting it ends the part cancelled with its share refunded (a wallet order, so
    at once), and a second post changes nothing."""
    order = _flagged_order(
        db_session, shopper, "sub-order: billed beyond what was paid; cancelling it: refused"
    )
    sub = _wallet_paid_part(
        db_session,
        order,
        dummymart,
        status=SubOrderStatus.PLACED,
        marketplace_order_id="51",
    )
    row = _flagged_rows(admin_client.get("/admin/attention").get_data(as_text=True))
    assert f"/admin/attention/{sub.id}/cancelled" in row
    assert "DummyMart Test confirmed it cancelled" in row

    first = admin_client.post(f"/admin/attention/{sub.id}/cancelled", follow_redirects=True)
    second = admin_client.post(f"/admin/attention/{sub.id}/cancelled", follow_redirects=True)

    number = f'<span class="keep-together">{order.number}</span>'
    assert f"{number}: DummyMart Test is recorded as cancelled" in first.get_data(as_text=True)
    assert "nothing was changed" in second.get_data(as_text=True)
    db_session.expire_all()
    ended = db_session.get(MarketplaceOrder, sub.id)
    assert ended is not None and ended.status == SubOrderStatus.CANCELLED
    refunds = list(db_session.scalars(sa.select(Refund).where(Refund.sub_order_id == sub.id)))
    assert [(refund.amount_minor, refund.status) for refund in refunds] == [
        (995, RefundStatus.SUCCEEDED)
    ]
    row = _flagged_rows(admin_client.get("/admin/attention").get_data(as_text=True))
    assert f"/admin/attention/{sub.id}/cancelled" not in row


def test_a_delivered_part_cannot_be_recorded_cancelled_by_an_operator(
    admin_client: FlaskClient,
    db_session: Session,
    shopper: User,
    dummymart: Marketplace,
) -> None:
    """Delivered ends fulfilment: what a marketplace gives back after delivery is a refund it
    made, passed on for its amount (commerce.marketplace_refunds), never a cancellation. A
    flagged order's delivered part offers no "… confirmed it cancelled", and a post naming it
    (a page loaded before delivery, a second tab) changes nothing: the part stays delivered,
    nothing of its share is refunded, and its delivered units are not put up for sale again."""
    order = _flagged_order(db_session, shopper, "a disputed payment on another part")
    sub = _wallet_paid_part(
        db_session,
        order,
        dummymart,
        status=SubOrderStatus.DELIVERED,
        marketplace_order_id="52",
        stock_held=True,
    )
    kept = _operator_cancel_refused(admin_client, db_session, sub)

    assert kept.status == SubOrderStatus.DELIVERED and kept.stock_held


def test_a_part_whose_cancel_is_being_asked_right_now_waits_for_its_answer(
    admin_client: FlaskClient,
    db_session: Session,
    shopper: User,
    dummymart: Marketplace,
) -> None:
    """A placed part under a live claim is being cancelled on its marketplace this moment (an
    order billed beyond the tolerance: placement keeps its claim until the cancel has an
    answer, renewing it while it waits). The operator's "… confirmed it cancelled" does not
    race that answer: not offered, and a post changes nothing (nothing refunded, no unit given
    back) until the claim is released or has run out (its worker died: the operator may then
    record it, as the sweeper would finish it)."""
    order = _flagged_order(db_session, shopper, "another part: a refund refused for good")
    sub = _wallet_paid_part(
        db_session,
        order,
        dummymart,
        status=SubOrderStatus.PLACED,
        marketplace_order_id="53",
        claim_token="cancel-under-way",
        claim_expires_at=utc_now() + timedelta(minutes=5),
    )
    kept = _operator_cancel_refused(admin_client, db_session, sub)

    assert kept.status == SubOrderStatus.PLACED
    assert kept.claim_token == "cancel-under-way"

    # The worker died: its lease ran out, and the operator's confirmation is recorded.
    kept.claim_expires_at = utc_now() - timedelta(minutes=1)
    db_session.commit()
    row = _flagged_rows(admin_client.get("/admin/attention").get_data(as_text=True))
    assert f"/admin/attention/{sub.id}/cancelled" in row
    answer = admin_client.post(f"/admin/attention/{sub.id}/cancelled", follow_redirects=True)
    assert "is recorded as cancelled" in answer.get_data(as_text=True)
    db_session.expire_all()
    ended = db_session.get(MarketplaceOrder, sub.id)
    assert ended is not None and ended.status == SubOrderStatus.CANCELLED


class _ShippedThere:
    """A marketplace that reports the order shipped, and, while it is being asked, the operator
    records (from the marketplace's own word to them) that it was cancelled."""

    slug = "dummymart-test"

    def __init__(self, on_ask: Callable[[], object]) -> None:
        self.on_ask = on_ask

    def order_status(self, marketplace_order_id: str) -> Any:
        from adapters.base import OrderState
        from adapters.base import OrderStatus as MarketStatus

        self.on_ask()
        return OrderState(marketplace_order_id, MarketStatus.SHIPPED, "shipped")


def test_the_abandoned_cancellation_sweep_does_not_tell_an_operator_cancelled_part_goes_ahead(
    db_session: Session,
    storefront_db_url: str,
    shopper: User,
    dummymart: Marketplace,
) -> None:
    """The sweep took over a part whose cancellation job died and asks its marketplace; the
    operator records the marketplace's cancellation meanwhile (the share refunded). The sweep's
    late "shipped" must not then tell the shopper the part "goes ahead" (read as: you are
    charged for it) nor record the cancellation refused on a cancelled part."""
    from commerce.abandoned_cancellations import resolve_abandoned_cancellation
    from commerce.attention import cancelled_by_operator
    from commerce.db import get_session_factory
    from commerce.notification_models import Notification

    factory = get_session_factory(storefront_db_url)
    order = _flagged_order(db_session, shopper, "the shopper's cancellation got no answer")
    order.cancel_requested_at = utc_now() - timedelta(hours=2)
    sub = _wallet_paid_part(
        db_session, order, dummymart, status=SubOrderStatus.PLACED, marketplace_order_id="54"
    )
    adapter = _ShippedThere(lambda: cancelled_by_operator(factory, sub.id, operator="ops"))

    resolve_abandoned_cancellation(
        factory, sub.id, adapter_for=lambda market: adapter, gateway_for=lambda *a: None
    )

    db_session.expire_all()
    ended = db_session.get(MarketplaceOrder, sub.id)
    assert ended is not None and ended.status == SubOrderStatus.CANCELLED
    assert ended.cancel_outcome != "refused"
    kinds = list(
        db_session.scalars(sa.select(Notification.kind).where(Notification.order_id == order.id))
    )
    # Its only part cancelled: the shopper is told the order is cancelled (and refunded).
    assert "order_cancelled" in kinds
    assert "cancellation_refused" not in kinds


class _CancelOutlivedByTheOperator:
    """A marketplace whose answer to a cancel never comes (nor its order's status), while the
    worker asking it loses its lease (it is taken for dead) and the operator records, from the
    marketplace's own word to them, that it cancelled the order and clears the order's flag."""

    slug = "dummymart-test"

    def __init__(self, meanwhile: Callable[[], object]) -> None:
        self.meanwhile = meanwhile

    def cancel_order(self, marketplace_order_id: str) -> Any:
        from adapters.base import MarketplaceError

        self.meanwhile()
        raise MarketplaceError("timed out")

    def order_status(self, marketplace_order_id: str) -> Any:
        from adapters.base import MarketplaceError

        raise MarketplaceError("timed out")


def test_a_late_overcharge_cancel_leaves_a_part_the_operator_cancelled_alone(
    db_session: Session,
    storefront_db_url: str,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """A part billed beyond the tolerance is being cancelled on its marketplace by a worker that
    stops answering: its lease runs out, the operator records the marketplace's cancellation
    (refunded) and clears the order's flag. The worker's late "no answer" must not put the order
    back on the list asking the operator to record what they recorded, nor touch the part."""
    from commerce.attention import cancelled_by_operator
    from commerce.db import get_session_factory
    from commerce.placement_outcomes import finish_abandoned_cancel

    factory = get_session_factory(storefront_db_url)
    market = make_marketplace(name="DummyMart Test")
    order = _flagged_order(db_session, make_user(), "DummyMart Test billed beyond what was paid")
    sub = _wallet_paid_part(
        db_session,
        order,
        market,
        status=SubOrderStatus.PLACED,
        marketplace_order_id="55",
        last_error="billed 12.00, paid 9.95",
        claim_token="the-placement-that-died",
        claim_expires_at=utc_now() - timedelta(minutes=1),
    )

    def worker_taken_for_dead_and_operator_cancels() -> None:
        with factory() as session, session.begin():
            part = session.get(MarketplaceOrder, sub.id)
            assert part is not None
            part.claim_expires_at = utc_now() - timedelta(seconds=1)
        assert cancelled_by_operator(factory, sub.id, operator="ops", gateway_for=lambda *a: None)
        with factory() as session, session.begin():
            flagged = session.get(Order, order.id)
            assert flagged is not None
            flagged.attention_reason = None

    adapter = _CancelOutlivedByTheOperator(worker_taken_for_dead_and_operator_cancels)

    finish_abandoned_cancel(
        factory,
        sub.id,
        adapter_for=lambda market: adapter,
        gateway_for=lambda *a: None,
        lease=timedelta(minutes=5),
    )

    db_session.expire_all()
    ended = db_session.get(MarketplaceOrder, sub.id)
    assert ended is not None and ended.status == SubOrderStatus.CANCELLED
    assert ended.claim_token is None
    [refund] = db_session.scalars(sa.select(Refund).where(Refund.sub_order_id == sub.id))
    assert refund.status == RefundStatus.SUCCEEDED
    resolved = db_session.get(Order, order.id)
    assert resolved is not None and resolved.attention_reason is None


class _UnansweredWhileTheOperatorCancels:
    """A marketplace that gives no answer (to the status asked, or to the cancel sent after a
    first status saying it is still processing), and meanwhile the operator records, from its
    own word to them, that it cancelled the part and clears the order's flag."""

    slug = "dummymart-test"

    def __init__(self, meanwhile: Callable[[], object], *, status_first: bool) -> None:
        self.meanwhile = meanwhile
        self.status_first = status_first
        self.asked = 0

    def order_status(self, marketplace_order_id: str) -> Any:
        from adapters.base import MarketplaceError, OrderState
        from adapters.base import OrderStatus as MarketStatus

        self.asked += 1
        if self.status_first and self.asked == 1:
            return OrderState(marketplace_order_id, MarketStatus.PROCESSING, "processing")
        if not self.status_first:
            self.meanwhile()
        raise MarketplaceError("timed out")

    def cancel_order(self, marketplace_order_id: str) -> Any:
        from adapters.base import MarketplaceError

        self.meanwhile()
        raise MarketplaceError("timed out")


@pytest.mark.parametrize(
    "status_first", [False, True], ids=["status-unanswered", "cancel-unanswered"]
)
def test_the_abandoned_cancellation_sweep_does_not_flag_a_part_the_operator_cancelled(
    status_first: bool,
    db_session: Session,
    storefront_db_url: str,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """The sweep asks the marketplace about a part whose cancellation job died and gets no
    answer; meanwhile the operator records the marketplace's cancellation (refunded) and clears
    the order's flag. The sweep's "no answer" must not put the order back on the list asking
    the operator to find out what they recorded."""
    from commerce.abandoned_cancellations import resolve_abandoned_cancellation
    from commerce.attention import cancelled_by_operator
    from commerce.db import get_session_factory

    factory = get_session_factory(storefront_db_url)
    market = make_marketplace(name="DummyMart Test", capabilities=["cancel", "order_status"])
    order = _flagged_order(db_session, make_user(), "the shopper's cancellation got no answer")
    order.cancel_requested_at = utc_now() - timedelta(hours=2)
    sub = _wallet_paid_part(
        db_session, order, market, status=SubOrderStatus.PLACED, marketplace_order_id="56"
    )

    def operator_cancels_and_clears_the_flag() -> None:
        assert cancelled_by_operator(factory, sub.id, operator="ops", gateway_for=lambda *a: None)
        with factory() as session, session.begin():
            flagged = session.get(Order, order.id)
            assert flagged is not None
            flagged.attention_reason = None

    adapter = _UnansweredWhileTheOperatorCancels(
        operator_cancels_and_clears_the_flag, status_first=status_first
    )

    resolve_abandoned_cancellation(
        factory, sub.id, adapter_for=lambda market: adapter, gateway_for=lambda *a: None
    )

    db_session.expire_all()
    ended = db_session.get(MarketplaceOrder, sub.id)
    assert ended is not None and ended.status == SubOrderStatus.CANCELLED
    resolved = db_session.get(Order, order.id)
    assert resolved is not None and resolved.attention_reason is None
