"""The profile page: details, display currency, password change, wallet balance, ledger, top-up."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.accounts import authenticate
from commerce.models import FxRate, User, WalletEntry
from commerce.wallet import wallet_balance
from onecart.money import Money
from tests.storefront.conftest import DEFAULT_PASSWORD

DETAILS = {
    "first_name": "Ama",
    "last_name": "Mensah",
    "email": "ama@example.com",
    "phone_number": "+233 20 123 4567",
    "display_currency": "USD",
}
NEW_PASSWORD = "Another-strong-9-pass"


def _html(response: Any) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user(username="ama", email="ama@example.com")


@pytest.fixture
def signed_in(client: FlaskClient, user: User, login: Callable[..., Any]) -> FlaskClient:
    login(client, user)
    return client


def _topup_reference(client: FlaskClient) -> str:
    html = _html(client.get("/profile"))
    match = re.search(r'name="reference" type="hidden" value="([^"]+)"', html) or re.search(
        r'id="reference" name="reference" type="hidden" value="([^"]+)"', html
    )
    assert match, "no top-up reference on the profile page"
    return match.group(1)


def test_profile_shows_details_wallet_and_links(signed_in: FlaskClient) -> None:
    html = _html(signed_in.get("/profile"))
    assert 'value="ama@example.com"' in html
    assert 'data-testid="wallet-balance">$0.00<' in html
    assert "No wallet activity yet." in html
    assert 'href="/support/tickets"' in html
    # Orders and notifications pages come with a later issue; no dead links until then.
    assert ('href="/orders"' in html) == signed_in.application.url_map.bind("x").test("/orders")


def test_display_currency_choices_come_from_published_fx_rates(
    signed_in: FlaskClient, db_session: Session
) -> None:
    db_session.add_all(
        [
            FxRate(currency="KES", rate=Decimal("129.5"), as_of=date(2026, 11, 20), source="test"),
            FxRate(currency="EUR", rate=Decimal("0.92"), as_of=date(2026, 11, 20), source="test"),
        ]
    )
    db_session.commit()
    html = _html(signed_in.get("/profile"))
    assert re.findall(r'<option[^>]*value="([A-Z]{3})"', html) == ["EUR", "KES", "USD"]


def test_saving_details(signed_in: FlaskClient, user: User, db_session: Session) -> None:
    db_session.add(FxRate(currency="KES", rate=Decimal("129.5"), as_of=date(2026, 11, 20)))
    db_session.commit()
    response = signed_in.post(
        "/profile",
        data={
            **DETAILS,
            "email": "Ama.New@Example.com",
            "display_currency": "KES",
            # Changing the e-mail needs the password (issue 12).
            "email_password": DEFAULT_PASSWORD,
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/profile"
    db_session.refresh(user)
    assert (user.first_name, user.email, user.display_currency, user.phone_number) == (
        "Ama",
        "ama.new@example.com",
        "KES",
        "+233 20 123 4567",
    )
    assert "Your profile has been saved." in _html(signed_in.get("/profile"))


@pytest.mark.parametrize("password", ["", "not-the-password-1"])
def test_changing_the_email_needs_the_current_password(
    signed_in: FlaskClient, user: User, db_session: Session, password: str
) -> None:
    response = signed_in.post(
        "/profile", data={**DETAILS, "email": "thief@example.com", "email_password": password}
    )
    assert response.status_code == 422
    assert "Enter your current password to change your e-mail address." in _html(response)
    db_session.refresh(user)
    assert user.email == "ama@example.com"
    # Other details save without the password while the address stays the same.
    kept = signed_in.post("/profile", data={**DETAILS, "first_name": "Akosua"})
    assert kept.status_code == 302
    db_session.refresh(user)
    assert user.first_name == "Akosua"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"email": ""}, "Enter your e-mail address."),
        ({"email": "nope"}, "An email address must have an @-sign."),
        (
            {"email": "taken@example.com", "email_password": DEFAULT_PASSWORD},
            "An account with this e-mail address already exists.",
        ),
        ({"phone_number": "call me"}, "Enter a phone number"),
        ({"first_name": "A" * 81}, "Field cannot be longer than 80 characters."),
        ({"display_currency": "XXX"}, "Not a valid choice."),
    ],
)
def test_detail_errors_rerender_the_page(
    signed_in: FlaskClient,
    user: User,
    make_user: Callable[..., User],
    db_session: Session,
    changes: dict[str, str],
    message: str,
) -> None:
    make_user(email="taken@example.com")
    response = signed_in.post("/profile", data={**DETAILS, **changes})
    assert response.status_code == 422
    assert message in _html(response)
    db_session.refresh(user)
    assert user.email == "ama@example.com"


def test_changing_the_password(signed_in: FlaskClient, user: User, db_session: Session) -> None:
    response = signed_in.post(
        "/profile/password",
        data={
            "current_password": DEFAULT_PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_new_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    db_session.expire_all()
    assert authenticate(db_session, "ama", NEW_PASSWORD) is not None
    assert authenticate(db_session, "ama", DEFAULT_PASSWORD) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"current_password": "wrong-one-123", "new_password": NEW_PASSWORD, "confirm_new_password": NEW_PASSWORD},
            "Your current password is not correct.",
        ),
        (
            {"current_password": "", "new_password": NEW_PASSWORD, "confirm_new_password": NEW_PASSWORD},
            "Enter your current password.",
        ),
        (
            {"current_password": DEFAULT_PASSWORD, "new_password": "weak", "confirm_new_password": "weak"},
            "Use at least 10 characters.",
        ),
        (
            {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD, "confirm_new_password": "different-1x"},
            "The two passwords don&#39;t match.",
        ),
        (
            {"current_password": DEFAULT_PASSWORD, "new_password": DEFAULT_PASSWORD, "confirm_new_password": DEFAULT_PASSWORD},
            "Choose a password different from the current one.",
        ),
    ],
)  # fmt: skip
def test_password_change_errors(
    signed_in: FlaskClient, db_session: Session, data: dict[str, str], message: str
) -> None:
    response = signed_in.post("/profile/password", data=data)
    assert response.status_code == 422
    assert message in _html(response)
    db_session.expire_all()
    assert authenticate(db_session, "ama", DEFAULT_PASSWORD) is not None


def test_top_up_adds_a_ledger_line_and_the_balance_matches(
    signed_in: FlaskClient, user: User, db_session: Session
) -> None:
    reference = _topup_reference(signed_in)
    response = signed_in.post(
        "/profile/wallet/top-up", data={"amount": "25.50", "reference": reference}
    )
    assert response.status_code == 302

    html = _html(signed_in.get("/profile"))
    assert 'data-testid="wallet-balance">$25.50<' in html
    assert "Top-up (sandbox: no payment taken)" in html  # says so (issue 12)
    entries = db_session.scalars(sa.select(WalletEntry).where(WalletEntry.user_id == user.id)).all()
    assert [(e.amount_minor, e.reference) for e in entries] == [(2550, reference)]
    assert wallet_balance(db_session, user) == Money(sum(e.amount_minor for e in entries), "USD")


def test_resubmitting_the_same_top_up_form_charges_once(
    signed_in: FlaskClient, user: User, db_session: Session
) -> None:
    reference = _topup_reference(signed_in)
    for _ in range(2):
        signed_in.post("/profile/wallet/top-up", data={"amount": "10", "reference": reference})
    assert "already recorded" in _html(signed_in.get("/profile"))
    assert wallet_balance(db_session, user) == Money(1000, "USD")


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("", "Enter an amount."),
        ("abc", "Enter an amount like 25 or 25.50."),
        ("0", "Enter an amount greater than zero."),
        ("-10", "Enter an amount greater than zero."),
        ("1.234", "Enter an amount in USD with at most 2 decimal places."),
        ("10000.01", "A single top-up can be at most 10,000.00 USD."),
    ],
)
def test_top_up_errors(
    signed_in: FlaskClient, user: User, db_session: Session, amount: str, message: str
) -> None:
    reference = _topup_reference(signed_in)
    response = signed_in.post(
        "/profile/wallet/top-up", data={"amount": amount, "reference": reference}
    )
    assert response.status_code == 422
    assert message in _html(response)
    assert wallet_balance(db_session, user) == Money(0, "USD")


def test_top_up_with_a_forged_reference_is_refused(
    signed_in: FlaskClient, user: User, db_session: Session
) -> None:
    response = signed_in.post(
        "/profile/wallet/top-up", data={"amount": "5", "reference": "order-1"}
    )
    assert response.status_code == 422
    assert "This form has expired" in _html(response)
    assert wallet_balance(db_session, user) == Money(0, "USD")


def test_without_the_password_a_taken_address_answers_like_a_free_one(
    signed_in: FlaskClient, make_user: Callable[..., User]
) -> None:
    """The profile form must not tell a signed-in stranger which addresses have an account
    (sign-up and password reset never do): the password is checked first."""
    make_user(email="taken@example.com")
    answers = [
        _html(signed_in.post("/profile", data={**DETAILS, "email": address}))
        for address in ("taken@example.com", "free@example.com")
    ]
    for html in answers:
        assert "Enter your current password to change your e-mail address." in html
        assert "already exists" not in html


@pytest.mark.parametrize("app_config_overrides", [{"ACCOUNT_CHANGES_LIMIT": "3/3600"}])
def test_attempts_to_change_the_address_or_password_are_limited_per_account(
    signed_in: FlaskClient, user: User, db_session: Session
) -> None:
    """Each attempt checks the current password: without a limit, a stolen session could guess
    it (and probe addresses) as fast as the site answers."""
    statuses = [
        signed_in.post(
            "/profile",
            data={**DETAILS, "email": f"probe{n}@example.com", "email_password": f"guess-{n}"},
        ).status_code
        for n in range(2)
    ]
    statuses.append(
        signed_in.post(
            "/profile/password",
            data={
                "current_password": "guess-3",
                "new_password": NEW_PASSWORD,
                "confirm_new_password": NEW_PASSWORD,
            },
        ).status_code
    )
    assert statuses == [422, 422, 422]
    refused = signed_in.post(
        "/profile",
        data={**DETAILS, "email": "probe9@example.com", "email_password": DEFAULT_PASSWORD},
    )
    assert refused.status_code == 429
    db_session.refresh(user)
    assert user.email == "ama@example.com"
    # Details that need no password still save.
    assert signed_in.post("/profile", data={**DETAILS, "first_name": "Akosua"}).status_code == 302
