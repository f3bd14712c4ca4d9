"""/admin/actions: what operators did (commerce.operator_actions), newest first, a page at a time,
filtered by order number or marketplace; for admins only (tests/storefront/test_access.py lists
it with every other admin URL). On the test database (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Marketplace, User, utc_now
from commerce.operator_actions import OperatorAction
from commerce.order_models import PaymentMethod
from storefront.admin.operator_actions_page import ACTIONS_PAGE_SIZE
from tests.storefront.conftest import text_of
from tests.storefront.order_factories import add_order

OPERATOR = "ops-dana"


@pytest.fixture
def admin_client(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> FlaskClient:
    login(client, make_user(username=OPERATOR, is_admin=True))
    return client


def _action(db_session: Session, minutes_ago: int, **fields: Any) -> OperatorAction:
    values: dict[str, Any] = {
        "operator": OPERATOR,
        "action": "marketplace_edited",
        "subject": "Somewhere (somewhere)",
        "detail": "",
        "acted_at": utc_now() - timedelta(minutes=minutes_ago),
    }
    values.update(fields)
    row = OperatorAction(**values)
    db_session.add(row)
    return row


def test_guests_are_sent_to_sign_in_and_shoppers_are_refused(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    guest = client.get("/admin/actions?order=OC-1&page=2")
    assert guest.status_code == 302 and guest.headers["Location"].startswith("/login?next=")
    login(client, make_user())
    assert client.get("/admin/actions").status_code == 403


def test_the_page_lists_who_did_what_newest_first(
    admin_client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    market = make_marketplace(name="Lagos Deals", slug="lagos-deals")
    order = add_order(db_session, make_user(), total_minor=995, payment_method=PaymentMethod.WALLET)
    _action(
        db_session,
        30,
        operator="ops-erin",
        action="marketplace_disabled",
        subject="Lagos Deals (lagos-deals)",
        marketplace_id=market.id,
    )
    _action(
        db_session,
        5,
        action="sub_order_refunded",
        subject=f"{order.number}: Lagos Deals",
        detail="USD 9.95 to the wallet",
        order_id=order.id,
        marketplace_id=market.id,
    )
    db_session.commit()

    page = admin_client.get("/admin/actions")
    assert page.status_code == 200
    text = text_of(page.get_data(as_text=True))
    assert (
        f"{OPERATOR} sub_order_refunded {order.number}: Lagos Deals USD 9.95 to the wallet" in text
    )
    assert "ops-erin marketplace_disabled Lagos Deals (lagos-deals)" in text
    assert text.index("sub_order_refunded") < text.index("marketplace_disabled")
    assert (
        page.headers["Cache-Control"].startswith("private")
        or "no-store" in page.headers["Cache-Control"]
    )


def test_the_list_filters_by_order_number_and_by_marketplace(
    admin_client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    first, second = make_marketplace(name="First Shop"), make_marketplace(name="Second Shop")
    shopper = make_user()
    order = add_order(db_session, shopper, total_minor=995, payment_method=PaymentMethod.WALLET)
    other = add_order(db_session, shopper, total_minor=500, payment_method=PaymentMethod.WALLET)
    _action(
        db_session,
        3,
        action="sub_order_marked_placed",
        subject=f"{order.number}: First Shop",
        order_id=order.id,
        marketplace_id=first.id,
    )
    _action(
        db_session,
        2,
        action="sub_order_cancelled",
        subject=f"{other.number}: Second Shop",
        order_id=other.id,
        marketplace_id=second.id,
    )
    # An order deleted since: the row keeps its words, and its number still finds it.
    _action(db_session, 1, action="sub_order_refunded", subject="OC-GONE-0001: First Shop")
    db_session.commit()

    by_order = text_of(
        admin_client.get(f"/admin/actions?order={order.number.lower()}").get_data(as_text=True)
    )
    assert "sub_order_marked_placed" in by_order
    assert "sub_order_cancelled" not in by_order and "sub_order_refunded" not in by_order
    gone = text_of(admin_client.get("/admin/actions?order=OC-GONE-0001").get_data(as_text=True))
    assert "sub_order_refunded" in gone and "sub_order_marked_placed" not in gone
    # LIKE's wildcards are plain characters in a number typed.
    wild = text_of(admin_client.get("/admin/actions?order=OC-%25").get_data(as_text=True))
    assert "sub_order_" not in wild and "No operator action" in wild

    by_market = text_of(
        admin_client.get(f"/admin/actions?marketplace={second.id}").get_data(as_text=True)
    )
    assert "sub_order_cancelled" in by_market and "sub_order_marked_placed" not in by_market
    both = text_of(
        admin_client.get(f"/admin/actions?order={order.number}&marketplace={second.id}").get_data(
            as_text=True
        )
    )
    assert "No operator action" in both


@pytest.mark.parametrize("junk", ["abc", "-1", "²", "9" * 40, "1e3"])
def test_a_marketplace_filter_that_is_no_id_is_refused_with_a_message(
    admin_client: FlaskClient, junk: str
) -> None:
    page = admin_client.get("/admin/actions", query_string={"marketplace": junk})
    assert page.status_code == 400
    assert "Choose a marketplace from the list" in text_of(page.get_data(as_text=True))


def test_pages_are_bounded_and_a_page_past_the_end_shows_the_last(
    admin_client: FlaskClient, db_session: Session
) -> None:
    total = ACTIONS_PAGE_SIZE * 2 + 7
    for n in range(total):
        _action(db_session, total - n, subject=f"Shop {n:04d} (shop-{n:04d})")
    db_session.commit()

    first = text_of(admin_client.get("/admin/actions").get_data(as_text=True))
    assert f"Shop {total - 1:04d}" in first  # the newest
    assert f"Shop {total - ACTIONS_PAGE_SIZE:04d}" in first
    assert f"Shop {total - ACTIONS_PAGE_SIZE - 1:04d}" not in first
    assert f"Page 1 of 3 ({total} actions)" in first

    for asked in ("3", "999999999999", "99999999999999999999999"):
        last = text_of(admin_client.get(f"/admin/actions?page={asked}").get_data(as_text=True))
        assert "Page 3 of 3" in last
        assert "Shop 0000" in last and "Shop 0006" in last and "Shop 0007" not in last
    for junk in ("0", "-2", "abc", "²"):
        assert "Page 1 of 3" in text_of(
            admin_client.get("/admin/actions", query_string={"page": junk}).get_data(as_text=True)
        )
