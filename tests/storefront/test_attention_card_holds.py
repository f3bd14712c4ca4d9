"""/admin/attention and a card hold before an operator (commerce.card_hold_resolutions): the row
offers the two answers the operator can establish in Stripe, and each is taken once, from the
page as it was shown. The test database (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.exactly_once_models import CardHoldInDoubt
from commerce.models import User, utc_now


@pytest.fixture
def admin_client(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> FlaskClient:
    login(client, make_user(username="ops-admin", is_admin=True))
    return client


def _hold(db_session: Session, user: User, *, flagged: bool) -> CardHoldInDoubt:
    since = utc_now() - timedelta(hours=2)
    hold = CardHoldInDoubt(
        user_id=user.id,
        validation_token="t" * 32,
        idempotency_key=f"onecart-checkout-{user.id}-key",
        amount_minor=2500,
        currency="USD",
        created_at=since,
        stripe_failed_since=since,
        flagged_at=since + timedelta(hours=1) if flagged else None,
        last_error="Stripe answered authorization … ask Stripe whether it holds money",
    )
    db_session.add(hold)
    db_session.commit()
    return hold


def _seen(page: str, hold_id: int) -> str:
    """The `seen` field of the hold's resolve form, as the page carries it."""
    row = page[page.index(f'id="card-hold-{hold_id}"') :]
    found = re.search(r'name="seen" value="([^"]+)"', row)
    assert found is not None, row[:2000]
    return html.unescape(found.group(1))


def test_a_flagged_card_hold_is_resolved_from_the_attention_page_once(
    admin_client: FlaskClient, db_session: Session, make_user: Callable[..., User]
) -> None:
    """Before: a hold under item 4 had no button; it stayed listed until Stripe showed an
    intent or someone cleared the row by hand."""
    hold = _hold(db_session, make_user(), flagged=True)
    page = admin_client.get("/admin/attention").get_data(as_text=True)
    action = f"/admin/attention/card-holds/{hold.id}/resolve"
    assert action in page
    form = {"finding": "no_hold", "seen": _seen(page, hold.id)}

    first = admin_client.post(action, data=form, follow_redirects=True)
    again = admin_client.post(action, data=form, follow_redirects=True)

    assert "resolved: no payment held" in first.get_data(as_text=True)
    assert "resolved already" in again.get_data(as_text=True)
    db_session.expire_all()
    row = db_session.get(CardHoldInDoubt, hold.id)
    assert row is not None and row.resolved_at is not None
    assert row.resolution is not None and "ops-admin" in row.resolution
    assert f'id="card-hold-{hold.id}"' not in admin_client.get("/admin/attention").get_data(
        as_text=True
    )


def test_a_hold_the_sweeper_still_resolves_offers_no_operator_answer(
    admin_client: FlaskClient, db_session: Session, make_user: Callable[..., User]
) -> None:
    hold = _hold(db_session, make_user(), flagged=False)
    page = admin_client.get("/admin/attention").get_data(as_text=True)
    assert f'id="card-hold-{hold.id}"' in page
    assert f"/admin/attention/card-holds/{hold.id}/resolve" not in page


def test_naming_an_intent_records_it_for_the_sweeper(
    admin_client: FlaskClient, db_session: Session, make_user: Callable[..., User]
) -> None:
    hold = _hold(db_session, make_user(), flagged=True)
    page = admin_client.get("/admin/attention").get_data(as_text=True)
    form = {"finding": "intent", "intent_id": "pi_Found123", "seen": _seen(page, hold.id)}

    answer = admin_client.post(
        f"/admin/attention/card-holds/{hold.id}/resolve", data=form, follow_redirects=True
    )

    assert "pi_Found123 is recorded" in answer.get_data(as_text=True)
    db_session.expire_all()
    row = db_session.get(CardHoldInDoubt, hold.id)
    assert row is not None and row.intent_id == "pi_Found123" and row.resolved_at is None


@pytest.mark.parametrize(
    "form",
    [
        {"finding": "maybe", "seen": "x"},
        {"finding": "no_hold", "seen": "yesterday"},
        {"finding": "no_hold", "seen": "2026-12-07T02:00:00"},
        {},
    ],
    ids=["unknown-finding", "unreadable-seen", "seen-without-zone", "empty"],
)
def test_a_malformed_answer_changes_nothing(
    admin_client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
    form: dict[str, str],
) -> None:
    hold = _hold(db_session, make_user(), flagged=True)
    answer = admin_client.post(
        f"/admin/attention/card-holds/{hold.id}/resolve", data=form, follow_redirects=True
    )
    assert answer.status_code == 200
    db_session.expire_all()
    row = db_session.get(CardHoldInDoubt, hold.id)
    assert row is not None and row.resolved_at is None and row.intent_id is None
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CardHoldInDoubt)) == 1


def test_resolving_a_card_hold_that_does_not_exist_is_404(admin_client: FlaskClient) -> None:
    form = {"finding": "no_hold", "seen": utc_now().isoformat()}
    assert (
        admin_client.post("/admin/attention/card-holds/999999/resolve", data=form).status_code
        == 404
    )
