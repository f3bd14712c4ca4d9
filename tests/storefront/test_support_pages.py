"""About and Support pages: the support form stores a ticket and confirms with its reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Marketplace, SupportTicket, User

TICKET = {
    "name": "Guest Shopper",
    "email": "guest@example.com",
    "order_number": "",
    "subject": "",
    "message": "My headphones arrived without the charging cable.",
}


def _html(response: Any) -> str:
    return response.get_data(as_text=True)


def test_about_lists_active_marketplaces_escaped(
    client: FlaskClient, make_marketplace: Callable[..., Marketplace]
) -> None:
    make_marketplace(name="<b>Bold</b> Bazaar")
    make_marketplace(name="Hidden Shop", active=False)
    html = _html(client.get("/about"))
    assert "How it works" in html
    assert "&lt;b&gt;Bold&lt;/b&gt; Bazaar" in html
    assert "Hidden Shop" not in html


def test_about_promises_only_what_the_pages_show_about_converted_prices(
    client: FlaskClient,
) -> None:
    """Listing cards show the original price beside a converted one but no rates date (the
    product page, cart and checkout do); three-decimal prices are rounded to card steps."""
    page = " ".join(_html(client.get("/about")).split())

    assert "next to any converted amount, with the date of the exchange rates" not in page
    assert "the product page, the cart and the checkout also say which exchange rates" in page
    assert "rounded down to the nearest 0.010" in page


def test_guest_ticket_is_stored_and_confirmed_with_its_reference(
    client: FlaskClient, db_session: Session
) -> None:
    response = client.post("/support", data={**TICKET, "order_number": "OC-7F3K"})
    assert response.status_code == 302 and response.headers["Location"] == "/support/received"

    ticket = db_session.scalar(sa.select(SupportTicket))
    assert ticket is not None
    assert (ticket.name, ticket.email, ticket.order_number, ticket.user_id) == (
        "Guest Shopper",
        "guest@example.com",
        "OC-7F3K",
        None,
    )
    confirmation = _html(client.get("/support/received"))
    assert f'data-testid="ticket-reference">{ticket.reference}<' in confirmation


def test_confirmation_without_a_ticket_goes_back_to_the_form(client: FlaskClient) -> None:
    assert client.get("/support/received").headers["Location"] == "/support"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Tell us your name."),
        ({"email": ""}, "Enter the e-mail address we should answer."),
        ({"email": "nope@"}, "There must be something after the @-sign."),
        ({"message": ""}, "Describe what you need help with."),
        ({"message": "help"}, "Describe the problem in at least 10 characters."),
        ({"order_number": "x" * 41}, "Field cannot be longer than 40 characters."),
    ],
)
def test_support_form_errors_rerender(
    client: FlaskClient, db_session: Session, changes: dict[str, str], message: str
) -> None:
    response = client.post("/support", data={**TICKET, **changes})
    assert response.status_code == 422
    assert message in _html(response)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SupportTicket)) == 0


def test_support_form_is_prefilled_for_signed_in_shoppers_and_tickets_are_theirs(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    db_session: Session,
) -> None:
    user = make_user(username="esi", email="esi@example.com", first_name="Esi", last_name="Owusu")
    login(client, user)
    form = _html(client.get("/support"))
    assert 'value="Esi Owusu"' in form and 'value="esi@example.com"' in form

    client.post("/support", data={**TICKET, "name": "Esi Owusu", "email": "esi@example.com"})
    ticket = db_session.scalar(sa.select(SupportTicket))
    assert ticket is not None and ticket.user_id == user.id

    listing = _html(client.get("/support/tickets"))
    assert ticket.reference in listing
    detail = _html(client.get(f"/support/tickets/{ticket.reference}"))
    assert "without the charging cable" in detail


def test_ticket_text_is_escaped(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    db_session: Session,
) -> None:
    login(client, make_user())
    client.post("/support", data={**TICKET, "message": "<script>alert('x')</script> please help"})
    ticket = db_session.scalar(sa.select(SupportTicket))
    assert ticket is not None
    html = _html(client.get(f"/support/tickets/{ticket.reference}"))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
