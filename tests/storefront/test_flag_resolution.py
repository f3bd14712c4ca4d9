"""Closing a flagged order (commerce.flag_resolution): an operator resolves it only while its flag
reads what their page showed and no dispute of it is open; the resolution is recorded and shown;
acknowledging a dispute takes only that dispute's reason off its order. On the test database
(SQLite, or PostgreSQL with DATABASE_URL), with orders written as checkout records them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, selectinload, sessionmaker

from commerce.acknowledgements import acknowledge_dispute
from commerce.attention_models import FlagResolution
from commerce.db import get_session_factory
from commerce.dispute_models import PaymentDispute
from commerce.disputes import DisputeFacts, apply_dispute_event
from commerce.flag_resolution import ResolveOutcome, resolve_flag
from commerce.models import User, utc_now
from commerce.order_locks import lock_order
from commerce.order_models import Order, Payment, PaymentMethod, PaymentStatus
from commerce.order_state import flag_order
from commerce.orders import order_books_problems
from tests.storefront.conftest import DEFAULT_PASSWORD, csrf_token_from
from tests.storefront.order_factories import add_order, add_payment

REFUND_REFUSED = "Refund r-1 refused by the provider: card closed"
CAPTURE_REFUSED = "Card payment could not be collected: authorization expired"
NOT_FLAGGED = "payment failed but the order is not flagged"


@pytest.fixture
def factory(storefront_db_url: str, app: Any) -> sessionmaker[Session]:
    return get_session_factory(storefront_db_url)


@pytest.fixture
def shopper(make_user: Callable[..., User]) -> User:
    return make_user()


def _order(
    factory: sessionmaker[Session],
    user: User,
    *,
    payment_status: PaymentStatus = PaymentStatus.CAPTURED,
) -> Order:
    """A card order of 2,500 USD with its payment (no sub-orders: the flag is what is tested)."""
    with factory() as session, session.begin():
        order = add_order(session, user, total_minor=2500, payment_method=PaymentMethod.STRIPE)
        add_payment(
            session,
            order,
            method=PaymentMethod.STRIPE,
            status=payment_status,
            amount_minor=2500,
            captured_minor=2500 if payment_status == PaymentStatus.CAPTURED else 0,
            provider_reference=f"pi_{uuid.uuid4().hex[:24]}",
        )
    return _load(factory, order.id)


def _load(factory: sessionmaker[Session], order_id: int) -> Order:
    with factory() as session:
        order = session.scalars(
            sa.select(Order)
            .where(Order.id == order_id)
            .options(
                selectinload(Order.payment).selectinload(Payment.refunds),
                selectinload(Order.sub_orders),
                selectinload(Order.items),
            )
        ).one()
        session.expunge_all()
        return order


def _flag(factory: sessionmaker[Session], order_id: int, reason: str) -> str:
    """Flag the order as the services do (under its lock); the flag as it now reads."""
    with factory() as session, session.begin():
        lock_order(session, order_id)
        order = session.get(Order, order_id)
        assert order is not None
        flag_order(order, reason)
        return order.attention_reason or ""


def _dispute(
    factory: sessionmaker[Session], order: Order, status: str = "needs_response", *, later: int = 0
) -> PaymentDispute:
    """Stripe's dispute event of the order's charge, applied as the webhook does (an open one
    flags the order through commerce.disputes)."""
    assert order.payment is not None
    dispute_id = f"du_{order.payment.provider_reference[3:]}"
    apply_dispute_event(
        factory,
        DisputeFacts(
            dispute_id=dispute_id,
            charge_id=f"ch_{order.payment.provider_reference[3:]}",
            intent_id=order.payment.provider_reference,
            amount_minor=2500,
            currency="USD",
            reason="product_not_received",
            status=status,
            evidence_due_by=utc_now() + timedelta(days=7),
            funds_withdrawn=False,
            funds_reinstated=False,
            at=utc_now() + timedelta(seconds=later),
        ),
    )
    with factory() as session:
        row = session.scalars(
            sa.select(PaymentDispute).where(PaymentDispute.dispute_id == dispute_id)
        ).one()
        session.expunge(row)
        return row


def _resolutions(factory: sessionmaker[Session]) -> list[FlagResolution]:
    with factory() as session:
        rows = list(session.scalars(sa.select(FlagResolution).order_by(FlagResolution.id)))
        session.expunge_all()
        return rows


def _reason(factory: sessionmaker[Session], order_id: int) -> str | None:
    return _load(factory, order_id).attention_reason


def test_resolving_clears_the_flag_and_records_who_when_what_and_the_note(
    factory: sessionmaker[Session], shopper: User
) -> None:
    order = _order(factory, shopper)
    seen = _flag(factory, order.id, REFUND_REFUSED)

    result = resolve_flag(factory, order.id, seen, "ops-ann", "  Refunded by bank transfer.  ")

    assert result.outcome == ResolveOutcome.RESOLVED and order.number in result.message
    assert _reason(factory, order.id) is None
    [row] = _resolutions(factory)
    assert (row.order_id, row.reason, row.note, row.resolved_by, row.dispute_id) == (
        order.id,
        REFUND_REFUSED,
        "Refunded by bank transfer.",
        "ops-ann",
        None,
    )
    assert utc_now() - row.resolved_at < timedelta(minutes=1)


def test_a_stale_form_resolves_nothing_and_names_the_new_problem(
    factory: sessionmaker[Session], shopper: User
) -> None:
    order = _order(factory, shopper)
    seen = _flag(factory, order.id, REFUND_REFUSED)
    now = _flag(factory, order.id, CAPTURE_REFUSED)  # reported after the page was loaded

    result = resolve_flag(factory, order.id, seen, "ops-ann")

    assert result.outcome == ResolveOutcome.CHANGED
    assert "A new problem was reported" in result.message and CAPTURE_REFUSED in result.message
    assert REFUND_REFUSED not in result.message  # the operator saw that one
    assert _reason(factory, order.id) == now == f"{REFUND_REFUSED} | {CAPTURE_REFUSED}"
    assert _resolutions(factory) == []


def test_a_browsers_line_breaks_still_match_what_the_operator_saw(
    factory: sessionmaker[Session], shopper: User
) -> None:
    """A form posts every line break as CRLF: the same text, so it is resolved; and a note the
    textarea let through (500 characters, a line break counted once) is kept whole."""
    order = _order(factory, shopper)
    seen = _flag(factory, order.id, "Refund refused:\nthe card is closed")
    note = "Called the bank.\r\n" * 29  # 29 × 17 characters with "\n"

    result = resolve_flag(factory, order.id, seen.replace("\n", "\r\n"), "ops-ann", note)

    assert result.resolved
    [row] = _resolutions(factory)
    assert row.reason == seen and row.note == note.replace("\r\n", "\n").strip()


def test_two_concurrent_resolutions_record_exactly_one(
    factory: sessionmaker[Session], shopper: User
) -> None:
    order = _order(factory, shopper)
    seen = _flag(factory, order.id, REFUND_REFUSED)
    start = threading.Barrier(4)

    def resolve(operator: str) -> ResolveOutcome:
        start.wait()
        return resolve_flag(factory, order.id, seen, operator, f"by {operator}").outcome

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(resolve, ["ops-a", "ops-b", "ops-c", "ops-d"]))

    assert sorted(outcomes) == sorted([ResolveOutcome.RESOLVED] + [ResolveOutcome.NOT_FLAGGED] * 3)
    [row] = _resolutions(factory)
    assert row.note == f"by {row.resolved_by}"
    assert _reason(factory, order.id) is None
    again = resolve_flag(factory, order.id, seen, "ops-e")
    assert again.outcome == ResolveOutcome.NOT_FLAGGED
    assert f"resolved already, by {row.resolved_by}" in again.message


def test_an_order_flagged_again_after_resolving_has_only_the_new_reason(
    factory: sessionmaker[Session], shopper: User
) -> None:
    order = _order(factory, shopper)
    assert resolve_flag(factory, order.id, _flag(factory, order.id, REFUND_REFUSED), "a").resolved

    # The same problem again is a new report, not one folded into the resolved one.
    assert _flag(factory, order.id, CAPTURE_REFUSED) == CAPTURE_REFUSED
    assert _flag(factory, order.id, REFUND_REFUSED) == f"{CAPTURE_REFUSED} | {REFUND_REFUSED}"


def test_an_open_dispute_refuses_resolution_until_the_bank_decides_it(
    factory: sessionmaker[Session], shopper: User
) -> None:
    """Open (acknowledged or not) refuses; closed, the order can be resolved."""
    order = _order(factory, shopper)
    _flag(factory, order.id, REFUND_REFUSED)
    dispute = _dispute(factory, order)
    seen = _reason(factory, order.id)
    assert seen and dispute.dispute_id in seen

    refused = resolve_flag(factory, order.id, seen, "ops-ann")

    assert refused.outcome == ResolveOutcome.DISPUTE_OPEN
    assert dispute.dispute_id in refused.message and "needs_response" in refused.message
    assert _reason(factory, order.id) == seen and _resolutions(factory) == []

    assert acknowledge_dispute(factory, dispute.id, "ops-ann")  # answered in Stripe
    assert _reason(factory, order.id) == REFUND_REFUSED
    still = resolve_flag(factory, order.id, REFUND_REFUSED, "ops-ann")
    assert still.outcome == ResolveOutcome.DISPUTE_OPEN and _reason(factory, order.id)

    _dispute(factory, order, "won", later=5)
    assert resolve_flag(factory, order.id, REFUND_REFUSED, "ops-ann").resolved
    assert _reason(factory, order.id) is None


def test_acknowledging_a_dispute_takes_off_only_its_own_reason(
    factory: sessionmaker[Session], shopper: User
) -> None:
    order = _order(factory, shopper)
    _flag(factory, order.id, REFUND_REFUSED)
    dispute = _dispute(factory, order)
    _flag(factory, order.id, CAPTURE_REFUSED)
    dispute_reason = _reason(factory, order.id).split(" | ")[1]  # type: ignore[union-attr]
    assert dispute.dispute_id in dispute_reason

    assert acknowledge_dispute(factory, dispute.id, "ops-ann")

    assert _reason(factory, order.id) == f"{REFUND_REFUSED} | {CAPTURE_REFUSED}"
    [row] = _resolutions(factory)
    assert (row.order_id, row.reason, row.resolved_by, row.dispute_id) == (
        order.id,
        dispute_reason,
        "ops-ann",
        dispute.dispute_id,
    )
    # A second acknowledgement changes nothing.
    assert not acknowledge_dispute(factory, dispute.id, "ops-bob")
    assert len(_resolutions(factory)) == 1


def test_acknowledging_the_only_reasons_dispute_takes_the_order_off_the_list(
    factory: sessionmaker[Session], shopper: User, admin_client: FlaskClient
) -> None:
    order = _order(factory, shopper)
    dispute = _dispute(factory, order)
    assert order.number in _flagged_rows(admin_client.get("/admin/attention"))

    assert acknowledge_dispute(factory, dispute.id, "ops-ann")

    assert _reason(factory, order.id) is None
    page = admin_client.get("/admin/attention").get_data(as_text=True)
    assert order.number not in _flagged_rows(page)
    assert "The dispute was acknowledged." in page and dispute.dispute_id in page


def test_a_failed_payments_order_may_have_its_flag_resolved_in_the_books(
    factory: sessionmaker[Session], shopper: User
) -> None:
    """The books require a failed payment's order to be flagged, or resolved by an operator."""
    unflagged = _order(factory, shopper, payment_status=PaymentStatus.FAILED)
    order = _order(factory, shopper, payment_status=PaymentStatus.FAILED)
    seen = _flag(factory, order.id, CAPTURE_REFUSED)
    with factory() as session:
        assert any(NOT_FLAGGED in p for p in order_books_problems(session, unflagged))
        flagged = order_books_problems(session, _load(factory, order.id))
        assert not any(NOT_FLAGGED in p for p in flagged)

    assert resolve_flag(factory, order.id, seen, "ops-ann", "Shopper paid again.").resolved

    with factory() as session:
        problems = order_books_problems(session, _load(factory, order.id))
    assert not any(NOT_FLAGGED in p for p in problems), problems


# --- The admin page -----------------------------------------------------------------------------


@pytest.fixture
def admin_client(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> FlaskClient:
    login(client, make_user(username="ops-admin", is_admin=True))
    return client


def _flagged_rows(page: Any) -> str:
    """The flagged orders' table of the attention page."""
    html = page if isinstance(page, str) else page.get_data(as_text=True)
    start = html.index("<h2>Flagged orders</h2>")
    return html[start : html.index("<h2>Recently resolved</h2>", start)]


def test_an_admin_resolves_a_flagged_order_from_the_attention_page_with_a_csrf_token(
    csrf_client: FlaskClient,
    factory: sessionmaker[Session],
    shopper: User,
    make_user: Callable[..., User],
) -> None:
    order = _order(factory, shopper)
    _flag(factory, order.id, REFUND_REFUSED)
    admin = make_user(is_admin=True)
    token = csrf_token_from(csrf_client, "/login")
    csrf_client.post(
        "/login", data={"login": admin.username, "password": DEFAULT_PASSWORD, "csrf_token": token}
    )
    page = csrf_client.get("/admin/attention").get_data(as_text=True)
    assert order.number in _flagged_rows(page) and 'name="reason"' in page
    url = f"/admin/attention/orders/{order.id}/resolve"
    form = {"reason": REFUND_REFUSED, "note": "Refunded by bank transfer."}

    assert csrf_client.post(url, data=form).status_code == 400  # no token: nothing changes
    assert _reason(factory, order.id) == REFUND_REFUSED

    token = csrf_token_from(csrf_client, "/admin/attention")
    done = csrf_client.post(url, data={**form, "csrf_token": token}, follow_redirects=True)

    page = done.get_data(as_text=True)
    # The flash keeps the order's number on one line (order_numbers_whole).
    assert f'Order <span class="keep-together">{order.number}</span> is resolved.' in page
    assert order.number not in _flagged_rows(page)
    resolved = page[page.index("<h2>Recently resolved</h2>") :]
    for fact in (order.number, REFUND_REFUSED, "Refunded by bank transfer.", admin.username):
        assert fact in resolved
    assert _reason(factory, order.id) is None


def test_a_stale_resolve_form_shows_the_new_problem_and_keeps_the_note(
    admin_client: FlaskClient, factory: sessionmaker[Session], shopper: User
) -> None:
    order = _order(factory, shopper)
    _flag(factory, order.id, REFUND_REFUSED)
    _flag(factory, order.id, CAPTURE_REFUSED)

    response = admin_client.post(
        f"/admin/attention/orders/{order.id}/resolve",
        data={"reason": REFUND_REFUSED, "note": "Called the bank."},
    )

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "A new problem was reported for order" in page and "since you looked" in page
    rows = _flagged_rows(page)
    assert f"{REFUND_REFUSED} | {CAPTURE_REFUSED}" in rows  # shown again, as it now reads
    assert "Called the bank.</textarea>" in rows
    assert _resolutions(factory) == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"reason": REFUND_REFUSED, "note": "x" * 501}, "The note is 501 characters long"),
        ({"note": "done"}, "The form does not say which problem you resolved"),
    ],
)
def test_a_bad_resolve_form_re_renders_with_a_message(
    admin_client: FlaskClient,
    factory: sessionmaker[Session],
    shopper: User,
    form: dict[str, str],
    message: str,
) -> None:
    order = _order(factory, shopper)
    _flag(factory, order.id, REFUND_REFUSED)

    response = admin_client.post(f"/admin/attention/orders/{order.id}/resolve", data=form)

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and order.number in _flagged_rows(page)
    assert _reason(factory, order.id) == REFUND_REFUSED and _resolutions(factory) == []


def test_an_open_dispute_refusal_is_shown_on_the_page(
    admin_client: FlaskClient, factory: sessionmaker[Session], shopper: User
) -> None:
    order = _order(factory, shopper)
    dispute = _dispute(factory, order)

    response = admin_client.post(
        f"/admin/attention/orders/{order.id}/resolve",
        data={"reason": _reason(factory, order.id)},
    )

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "cannot be resolved while its dispute is open" in page and dispute.dispute_id in page
    unknown = admin_client.post("/admin/attention/orders/999999/resolve", data={"reason": "x"})
    assert unknown.status_code == 404
