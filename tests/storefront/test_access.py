"""Who may open what: every protected URL of the core blueprints, for anonymous visitors, other
shoppers and non-admins. A completeness check fails when a new core route is not classified."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Marketplace, User
from commerce.support import create_ticket
from tests.storefront.conftest import DEFAULT_PASSWORD

CORE_BLUEPRINTS = {"auth", "account", "pages", "admin", "errors", "health"}

# (method, URL) that need a signed-in shopper; {ticket} and {marketplace} are filled in per test.
SIGNED_IN_ONLY = [
    ("GET", "/profile"),
    ("POST", "/profile"),
    ("POST", "/profile/password"),
    ("POST", "/profile/wallet/top-up"),
    ("GET", "/profile/wallet/top-up/pi_unknown/pay"),
    ("GET", "/profile/wallet/top-up/pi_unknown/done"),
    ("GET", "/support/tickets"),
    ("GET", "/support/tickets/{ticket}"),
    ("POST", "/logout"),
]
ADMIN_ONLY = [
    ("GET", "/admin/"),
    ("GET", "/admin/marketplaces"),
    ("GET", "/admin/marketplaces/new"),
    ("POST", "/admin/marketplaces/new"),
    ("GET", "/admin/marketplaces/{marketplace}/edit"),
    ("POST", "/admin/marketplaces/{marketplace}/edit"),
    ("POST", "/admin/marketplaces/{marketplace}/disable"),
    ("POST", "/admin/marketplaces/{marketplace}/enable"),
    ("GET", "/admin/attention"),
    ("POST", "/admin/attention/{sub_order}/placed"),
    ("POST", "/admin/attention/{sub_order}/refund"),
    ("POST", "/admin/attention/orders/{sub_order}/resolve"),
    ("POST", "/admin/attention/disputes/{sub_order}/acknowledge"),
    ("POST", "/admin/attention/unowned-holds/{sub_order}/acknowledge"),
    ("POST", "/admin/attention/card-holds/{sub_order}/resolve"),
    ("GET", "/admin/wallets"),
    ("GET", "/admin/actions"),
    ("GET", "/admin/users/{user}/wallet"),
]
PUBLIC = {
    "auth.login",
    "auth.signup",
    "auth.forgot_password",
    "auth.reset_password_page",
    "auth.confirm_signup",
    # The link e-mailed to a new address: the signed token is the proof, no sign-in needed
    # (tests/storefront/test_email_change.py).
    "account.confirm_email",
    "pages.about",
    "pages.support",
    "pages.support_received",
    "health.healthz",
}


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user()


@pytest.fixture
def url_values(
    db_session: Session, owner: User, make_marketplace: Callable[..., Marketplace]
) -> dict[str, str]:
    ticket = create_ticket(
        db_session, name="Owner", email=owner.email, message="Please call me back.", user=owner
    )
    db_session.commit()
    # Access is decided before the sub-order is looked up: any id will do.
    return {
        "ticket": ticket.reference,
        "marketplace": str(make_marketplace().id),
        "sub_order": "1",
        "user": str(owner.id),
    }


def _request(client: FlaskClient, method: str, url: str, values: dict[str, str]) -> Any:
    return client.open(url.format(**values), method=method)


@pytest.mark.parametrize(("method", "url"), SIGNED_IN_ONLY + ADMIN_ONLY)
def test_anonymous_visitors_are_sent_to_login(
    client: FlaskClient, url_values: dict[str, str], method: str, url: str
) -> None:
    response = _request(client, method, url, url_values)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(("method", "url"), SIGNED_IN_ONLY + ADMIN_ONLY)
def test_anonymous_json_clients_get_401(
    client: FlaskClient, url_values: dict[str, str], method: str, url: str
) -> None:
    response = client.open(
        url.format(**url_values), method=method, headers={"Accept": "application/json"}
    )
    assert response.status_code == 401
    assert response.get_json()["error"]["status"] == 401


@pytest.mark.parametrize(("method", "url"), ADMIN_ONLY)
def test_signed_in_non_admins_get_403(
    client: FlaskClient,
    url_values: dict[str, str],
    owner: User,
    login: Callable[..., Any],
    method: str,
    url: str,
) -> None:
    login(client, owner)
    assert _request(client, method, url, url_values).status_code == 403


def test_another_shoppers_ticket_is_404_and_not_listed(
    client: FlaskClient,
    url_values: dict[str, str],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    login(client, make_user())
    assert client.get(f"/support/tickets/{url_values['ticket']}").status_code == 404
    assert url_values["ticket"] not in client.get("/support/tickets").get_data(as_text=True)


def test_the_owner_can_open_their_ticket(
    client: FlaskClient, url_values: dict[str, str], owner: User, login: Callable[..., Any]
) -> None:
    login(client, owner)
    assert client.get(f"/support/tickets/{url_values['ticket']}").status_code == 200


def test_profile_forms_only_ever_change_the_signed_in_account(
    client: FlaskClient,
    owner: User,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    db_session: Session,
) -> None:
    victim = make_user(email="victim@example.com")
    login(client, owner)
    client.post(
        "/profile",
        data={
            "user_id": str(victim.id),
            "id": str(victim.id),
            "email": "owner-new@example.com",
            "display_currency": "USD",
            "email_password": DEFAULT_PASSWORD,  # a new e-mail needs the password (issue 12)
        },
    )
    db_session.refresh(victim)
    db_session.refresh(owner)
    assert victim.email == "victim@example.com"
    assert owner.email == "owner-new@example.com"


def test_every_core_route_is_classified(app: Flask) -> None:
    """A new route in a core blueprint must be added to PUBLIC or to a protected list above."""
    protected = {url.split("{")[0].rstrip("/") for _, url in SIGNED_IN_ONLY + ADMIN_ONLY}
    unclassified = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".")[0]
        if blueprint not in CORE_BLUEPRINTS or rule.endpoint in PUBLIC:
            continue
        prefix = rule.rule.split("<")[0].rstrip("/")
        if prefix not in protected:
            unclassified.append(rule.rule)
    assert unclassified == []
