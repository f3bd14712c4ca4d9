"""Sign-up, login and logout through the Flask test client: every success and validation error,
safe redirects, session cookies, guest-cart merge and the Redis-backed login rate limit."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import CartItem, Marketplace, Product, User
from onecart import processes
from tests.storefront.conftest import DEFAULT_PASSWORD

SIGNUP = {
    "username": "newshopper",
    "email": "New.Shopper@Example.com",
    "first_name": "New",
    "last_name": "Shopper",
    "password": DEFAULT_PASSWORD,
    "confirm_password": DEFAULT_PASSWORD,
}


def _html(response: Any) -> str:
    return response.get_data(as_text=True)


# --- Sign-up ---------------------------------------------------------------------------------


def test_signup_page_has_labelled_fields(client: FlaskClient) -> None:
    html = _html(client.get("/signup"))
    for field in ("username", "email", "password", "confirm_password"):
        assert f'for="{field}"' in html and f'id="{field}"' in html


def test_signup_creates_the_account_signs_in_and_goes_home(
    client: FlaskClient, db_session: Session
) -> None:
    response = client.post("/signup", data=SIGNUP)

    assert response.status_code == 302
    assert response.headers["Location"] == "/home"
    user = db_session.scalar(sa.select(User).where(User.username == "newshopper"))
    assert user is not None and user.email == "new.shopper@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert client.get("/profile").status_code == 200


def test_signup_follows_a_safe_next(client: FlaskClient) -> None:
    response = client.post("/signup", data={**SIGNUP, "next": "/cart"})
    assert response.headers["Location"] == "/cart"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"username": ""}, "Choose a username."),
        ({"username": "a b"}, "Use 3–40 letters"),
        ({"email": ""}, "Enter your e-mail address."),
        ({"email": "not-an-email"}, "An email address must have an @-sign."),
        ({"password": "short", "confirm_password": "short"}, "Use at least 10 characters."),
        ({"password": "onlyletterslong", "confirm_password": "onlyletterslong"}, "Mix letters"),
        ({"confirm_password": "something-else-1"}, "The two passwords don&#39;t match."),
        ({"confirm_password": ""}, "Repeat your password."),
        ({"first_name": "New\nClaim your prize: https://evil.example"}, "without line breaks"),
        ({"last_name": "Shopper\u2028Bcc"}, "without line breaks"),
    ],
)
def test_signup_validation_errors_rerender_the_form(
    client: FlaskClient, db_session: Session, changes: dict[str, str], message: str
) -> None:
    response = client.post("/signup", data={**SIGNUP, **changes})

    assert response.status_code == 422
    html = _html(response)
    assert message in html
    assert 'aria-invalid="true"' in html
    assert db_session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"username": "Taken"}, "This username is already taken."),
        ({"email": "TAKEN@example.com"}, "An account with this e-mail address already exists."),
    ],
)
def test_signup_rejects_a_taken_username_or_email(
    client: FlaskClient, make_user: Callable[..., User], changes: dict[str, str], message: str
) -> None:
    make_user(username="taken", email="taken@example.com")
    response = client.post("/signup", data={**SIGNUP, **changes})
    assert response.status_code == 422
    assert message in _html(response)


# --- Login -------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_email", [False, True])
def test_login_with_username_or_email(
    client: FlaskClient, make_user: Callable[..., User], db_session: Session, use_email: bool
) -> None:
    user = make_user(username="Kofi", email="kofi@example.com")
    response = client.post(
        "/login",
        data={"login": "KOFI@example.com" if use_email else "kofi", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/home"
    db_session.refresh(user)
    assert user.last_login is not None
    assert "Kofi" in _html(client.get("/profile"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"login": "", "password": DEFAULT_PASSWORD}, "Enter your username or e-mail address."),
        ({"login": "someone", "password": ""}, "Enter your password."),
        ({"login": "someone", "password": "wrong-password-9"}, "or the password, is wrong"),
        ({"login": "nobody-here", "password": DEFAULT_PASSWORD}, "or the password, is wrong"),
    ],
)
def test_login_errors_rerender_the_form(
    client: FlaskClient, make_user: Callable[..., User], data: dict[str, str], message: str
) -> None:
    make_user(username="someone")
    response = client.post("/login", data=data)
    assert response.status_code == 422
    assert message in _html(response)
    assert client.get("/profile").status_code == 302


@pytest.mark.parametrize("login", ["someone", "someone@example.com", "nobody-here"])
def test_a_refused_sign_in_blames_no_one_field(
    client: FlaskClient, make_user: Callable[..., User], login: str
) -> None:
    """Shopper QA, fifth pass: a wrong password said "Please fix the highlighted field." and
    marked the password box invalid, as if its format were wrong. The refusal now says the pair
    is wrong without saying which half (an unknown account reads the same), and marks no field."""
    make_user(username="someone", email="someone@example.com")
    response = client.post("/login", data={"login": login, "password": "wrong-password-9"})
    html = _html(response)
    assert response.status_code == 422
    assert "The username or e-mail address, or the password, is wrong." in html
    assert "highlighted" not in html and 'aria-invalid="true"' not in html
    assert 'role="alert"' in html  # still the focused summary at the top of the form


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "//evil.com/path",
        "https://evil.com",
        "http://evil.com/cart",
        "/\\evil.com",
        "\\\\evil.com",
        "/\t/evil.com",
        "javascript:alert(1)",
        "evil.com",
        "",
    ],
)
def test_login_never_redirects_off_site(
    client: FlaskClient, make_user: Callable[..., User], target: str
) -> None:
    user = make_user()
    login_page = _html(client.get("/login", query_string={"next": target}))
    assert "evil.com" not in login_page

    response = client.post(
        "/login", data={"login": user.username, "password": DEFAULT_PASSWORD, "next": target}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/home"


def test_login_follows_a_same_site_next_with_query(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()
    response = client.post(
        "/login",
        data={"login": user.username, "password": DEFAULT_PASSWORD, "next": "/search?q=mug&page=2"},
    )
    assert response.headers["Location"] == "/search?q=mug&page=2"


def test_protected_page_sends_visitor_to_login_and_back(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()
    redirect = client.get("/support/tickets")
    assert redirect.headers["Location"] == "/login?next=/support/tickets"

    login_page = _html(client.get(redirect.headers["Location"]))
    assert 'value="/support/tickets"' in login_page
    response = client.post(
        "/login",
        data={"login": user.username, "password": DEFAULT_PASSWORD, "next": "/support/tickets"},
    )
    assert response.headers["Location"] == "/support/tickets"


def test_signed_in_visitor_opening_login_is_sent_on(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    login(client, make_user())
    assert client.get("/login").headers["Location"] == "/home"


# --- Cookies and sessions ----------------------------------------------------------------------


def _set_cookie(response: Any, name: str) -> str:
    cookies = [value for value in response.headers.getlist("Set-Cookie") if value.startswith(name)]
    assert cookies, f"no {name} cookie set"
    return cookies[-1]


def test_session_and_remember_cookies_are_httponly_and_samesite(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()
    response = client.post(
        "/login", data={"login": user.username, "password": DEFAULT_PASSWORD, "remember": "y"}
    )
    for name in ("onecart_session=", "onecart_remember="):
        cookie = _set_cookie(response, name)
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert "Secure" not in cookie


@pytest.mark.parametrize(
    "app_config_overrides",
    [{"SESSION_COOKIE_SECURE": True, "REMEMBER_COOKIE_SECURE": True}],
)
def test_cookies_are_secure_when_configured(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()
    response = client.post(
        "/login", data={"login": user.username, "password": DEFAULT_PASSWORD, "remember": "y"}
    )
    assert "Secure" in _set_cookie(response, "onecart_session=")
    assert "Secure" in _set_cookie(response, "onecart_remember=")


def test_secure_cookie_setting_comes_from_onecart_settings(
    monkeypatch: pytest.MonkeyPatch, storefront_db_url: str
) -> None:
    from onecart.settings import get_settings
    from storefront import create_app

    monkeypatch.setenv("ONECART_SECURE_COOKIES", "true")
    get_settings.cache_clear()
    try:
        app = create_app({"DATABASE_URL": storefront_db_url})
        assert app.config["SESSION_COOKIE_SECURE"] is True
        assert app.config["SESSION_COOKIE_HTTPONLY"] is True
        assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    finally:
        monkeypatch.delenv("ONECART_SECURE_COOKIES")
        get_settings.cache_clear()


def test_logout_is_post_only_and_ends_the_session(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    login(client, make_user())
    assert client.get("/logout").status_code == 405
    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/profile").status_code == 302


def test_changing_the_password_signs_out_other_sessions(
    app: Flask, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    user = make_user()
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, user)
    login(phone, user)

    response = laptop.post(
        "/profile/password",
        data={
            "current_password": DEFAULT_PASSWORD,
            "new_password": "Brand-new-pass-42",
            "confirm_new_password": "Brand-new-pass-42",
        },
    )
    assert response.status_code == 302
    assert laptop.get("/profile").status_code == 200
    assert phone.get("/profile").status_code == 302


# --- Guest cart merge ----------------------------------------------------------------------------


def test_login_merges_the_guest_cart_into_the_account(
    client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    make_product: Callable[..., Product],
) -> None:
    user = make_user()
    product = make_product(make_marketplace())
    db_session.add(
        CartItem(
            user_id=user.id,
            product_id=product.id,
            quantity=2,
            price_seen_minor=product.price_minor,
            currency_seen=product.currency,
        )
    )
    db_session.commit()
    with client.session_transaction() as session:
        session["guest_cart"] = [{"product_id": product.id, "quantity": 3}]

    response = client.post("/login", data={"login": user.username, "password": DEFAULT_PASSWORD})

    assert response.status_code == 302
    item = db_session.scalar(sa.select(CartItem).where(CartItem.user_id == user.id))
    db_session.refresh(item)
    assert item is not None and item.quantity == 5
    with client.session_transaction() as session:
        assert "guest_cart" not in session


# --- Rate limiting (real Redis) ------------------------------------------------------------------


@pytest.mark.parametrize("app_config_overrides", [{"LOGIN_LIMIT_PER_ACCOUNT": 3}])
def test_login_is_rate_limited_per_account_and_client(
    client: FlaskClient, app: Flask, make_user: Callable[..., User]
) -> None:
    """The account limit is keyed with the client (issue 12): the guesser waits, the owner
    signing in from elsewhere does not."""
    user = make_user()
    guesser = {"REMOTE_ADDR": "10.0.0.1"}
    for _attempt in range(3):
        response = client.post(
            "/login",
            data={"login": user.username, "password": "wrong-password-1"},
            environ_base=guesser,
        )
        assert response.status_code == 422

    # Even the right password, via the e-mail address, waits now from the guessing client.
    blocked = app.test_client().post(
        "/login",
        data={"login": user.email, "password": DEFAULT_PASSWORD},
        environ_base=guesser,
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many" in _html(blocked)

    # Failing logins elsewhere cannot lock the owner out.
    owner = app.test_client().post(
        "/login",
        data={"login": user.email, "password": DEFAULT_PASSWORD},
        environ_base={"REMOTE_ADDR": "10.0.0.99"},
    )
    assert owner.status_code == 302


@pytest.mark.parametrize("app_config_overrides", [{"LOGIN_LIMIT_PER_IP": 3}])
def test_login_is_rate_limited_per_ip(client: FlaskClient, make_user: Callable[..., User]) -> None:
    users = [make_user() for _ in range(4)]
    for user in users[:3]:
        response = client.post("/login", data={"login": user.username, "password": "nope-nope-1"})
        assert response.status_code == 422
    blocked = client.post("/login", data={"login": users[3].username, "password": DEFAULT_PASSWORD})
    assert blocked.status_code == 429

    elsewhere = client.post(
        "/login",
        data={"login": users[3].username, "password": DEFAULT_PASSWORD},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert elsewhere.status_code == 302


@pytest.mark.parametrize("app_config_overrides", [{"LOGIN_LIMIT_PER_ACCOUNT": 2}])
def test_a_successful_login_forgives_earlier_failures(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()
    client.post("/login", data={"login": user.username, "password": "wrong-password-1"})
    assert (
        client.post(
            "/login", data={"login": user.username, "password": DEFAULT_PASSWORD}
        ).status_code
        == 302
    )
    client.post("/logout")
    client.post("/login", data={"login": user.username, "password": "wrong-password-1"})
    assert (
        client.post(
            "/login", data={"login": user.username, "password": DEFAULT_PASSWORD}
        ).status_code
        == 302
    )


def test_rate_limit_429_answers_json_to_json_clients(
    app: Flask, make_user: Callable[..., User]
) -> None:
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = 1
    from storefront import init_login_limiter

    init_login_limiter(app)
    user = make_user()
    client = app.test_client()
    client.post("/login", data={"login": user.username, "password": "wrong-password-1"})
    response = client.post(
        "/login",
        data={"login": user.username, "password": "wrong-password-1"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 429
    assert response.get_json()["error"]["status"] == 429


def test_login_keeps_working_when_redis_is_down(
    app: Flask, make_user: Callable[..., User], caplog: pytest.LogCaptureFixture
) -> None:
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{processes.free_port()}/0"
    from storefront import init_login_limiter

    init_login_limiter(app)
    user = make_user()
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="commerce.rate_limit"):
        failed = client.post("/login", data={"login": user.username, "password": "wrong-pass-1"})
        ok = client.post("/login", data={"login": user.username, "password": DEFAULT_PASSWORD})
    assert failed.status_code == 422
    assert ok.status_code == 302
    assert "rate limiter unavailable" in caplog.text


def test_without_a_mail_server_the_reset_page_does_not_claim_a_link_was_sent(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    """The demo runs without SMTP_HOST: no reset link can leave, so the page must not say one
    did (the same answer for every address, so it reveals nobody's account either)."""
    app.config["SMTP_HOST"] = ""
    make_user(email="forgetful@example.com")

    page = client.get("/password/forgot").get_data(as_text=True)
    answer = client.post("/password/forgot", data={"email": "forgetful@example.com"})
    unknown = client.post("/password/forgot", data={"email": "nobody@example.com"})

    text = answer.get_data(as_text=True)
    assert "we have sent it a link" not in text
    assert "cannot e-mail" in page and "cannot e-mail" in text
    assert 'href="/support"' in text
    # CSRF tokens carry a timestamp: not page content.
    visible = re.compile(r"<[^>]*csrf[-_]token[^>]*>")
    assert visible.sub("", text) == visible.sub("", unknown.get_data(as_text=True))
