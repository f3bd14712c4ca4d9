"""CSRF protection, with the app configured as in production: every POST without a token is 400."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Marketplace, User
from storefront.extensions import csrf
from storefront.request_log import JsonLogFormatter
from tests.storefront.conftest import DEFAULT_PASSWORD, csrf_token_from

_CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
# Only server-to-server webhooks, verified by their sender's signature, may skip CSRF.
BLUEPRINTS_ALLOWED_TO_SKIP_CSRF = {"webhooks"}


def _csrf_exempt(app: Flask, endpoint: str) -> bool:
    """Whether Flask-WTF skips this endpoint (csrf.exempt on the view or its blueprint)."""
    blueprint = app.blueprints.get(endpoint.rpartition(".")[0])
    if blueprint is not None and blueprint in csrf._exempt_blueprints:
        return True
    view = app.view_functions[endpoint]
    return f"{view.__module__}.{view.__name__}" in csrf._exempt_views


def _post_urls(app: Flask) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or set()) or _csrf_exempt(app, rule.endpoint):
            continue
        values = {name: "1" for name in rule.arguments}
        urls.append(
            rule.rule if not values else app.url_map.bind("localhost").build(rule.endpoint, values)
        )
    return sorted(set(urls))


def test_only_signed_webhooks_skip_csrf(csrf_app: Flask) -> None:
    exempt = {
        rule.endpoint.rpartition(".")[0]
        for rule in csrf_app.url_map.iter_rules()
        if _csrf_exempt(csrf_app, rule.endpoint)
    }
    assert exempt <= BLUEPRINTS_ALLOWED_TO_SKIP_CSRF


def test_every_post_route_without_a_token_is_refused_with_400(
    csrf_app: Flask, csrf_client: FlaskClient
) -> None:
    urls = _post_urls(csrf_app)
    assert {"/login", "/signup", "/logout", "/support", "/profile"} <= set(urls)
    for url in urls:
        response = csrf_client.post(url, data={"anything": "x"})
        assert response.status_code == 400, url
        assert "expired or was not sent by OneCart" in response.get_data(as_text=True)


def test_a_signed_in_shopper_without_a_token_changes_nothing(
    csrf_client: FlaskClient, make_user: Callable[..., User], db_session: Session
) -> None:
    user = make_user()
    token = csrf_token_from(csrf_client, "/login")
    assert (
        csrf_client.post(
            "/login",
            data={"login": user.username, "password": DEFAULT_PASSWORD, "csrf_token": token},
        ).status_code
        == 302
    )
    for url, data in [
        ("/profile", {"email": "attacker@example.com", "display_currency": "USD"}),
        ("/profile/wallet/top-up", {"amount": "10", "reference": "sandbox-topup-abcdefgh"}),
        ("/profile/password", {"current_password": DEFAULT_PASSWORD, "new_password": "x"}),
    ]:
        assert csrf_client.post(url, data=data).status_code == 400
    db_session.refresh(user)
    assert user.email != "attacker@example.com"
    assert csrf_client.get("/profile").status_code == 200


def test_forms_carry_their_token_and_accept_it(
    csrf_client: FlaskClient, db_session: Session
) -> None:
    for path in ("/login", "/signup", "/support"):
        assert 'name="csrf_token"' in csrf_client.get(path).get_data(as_text=True), path
    token = csrf_token_from(csrf_client, "/signup")
    response = csrf_client.post(
        "/signup",
        data={
            "username": "withtoken",
            "email": "withtoken@example.com",
            "password": DEFAULT_PASSWORD,
            "confirm_password": DEFAULT_PASSWORD,
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    # The layout's logout form carries a token too.
    html = csrf_client.get("/profile").get_data(as_text=True)
    logout_form = html[html.index('action="/logout"') :]
    assert 'name="csrf_token"' in logout_form[: logout_form.index("</form>")]


def test_admin_forms_need_tokens(
    csrf_client: FlaskClient,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    db_session: Session,
) -> None:
    admin = make_user(is_admin=True)
    marketplace = make_marketplace()
    token = csrf_token_from(csrf_client, "/login")
    csrf_client.post(
        "/login", data={"login": admin.username, "password": DEFAULT_PASSWORD, "csrf_token": token}
    )
    assert csrf_client.post(f"/admin/marketplaces/{marketplace.id}/disable").status_code == 400
    db_session.refresh(marketplace)
    assert marketplace.active is True

    token = csrf_token_from(csrf_client, "/admin/marketplaces")
    response = csrf_client.post(
        f"/admin/marketplaces/{marketplace.id}/disable", data={"csrf_token": token}
    )
    assert response.status_code == 302
    db_session.refresh(marketplace)
    assert marketplace.active is False


@pytest.mark.parametrize("header", ["X-CSRFToken", "X-CSRF-Token"])
def test_token_in_a_header_works_for_scripts(
    csrf_client: FlaskClient, header: str, make_user: Callable[..., User]
) -> None:
    user = make_user()
    token = csrf_token_from(csrf_client, "/login")
    response: Any = csrf_client.post(
        "/login",
        data={"login": user.username, "password": DEFAULT_PASSWORD},
        headers={header: token},
    )
    assert response.status_code == 302


def test_a_refused_form_still_carries_its_request_id(
    csrf_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The CSRF check runs before any view: the error, its header and its log line must name
    the same request id a shopper can quote to support."""
    with caplog.at_level(logging.INFO, logger="onecart.requests"):
        response = csrf_client.post(
            "/cart/add", data={"product_id": "1"}, headers={"Accept": "application/json"}
        )
        response.close()  # the log line is written when the answer is closed

    assert response.status_code == 400
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert response.get_json()["request_id"] == request_id
    logged = [r for r in caplog.records if r.name == "onecart.requests"]
    line = json.loads(JsonLogFormatter().format(logged[-1]))
    assert line["request_id"] == request_id and isinstance(line["duration_ms"], float)


HTTPS = "https://localhost"


def test_a_form_on_a_no_referrer_page_submits_over_https(
    csrf_app: Flask, make_user: Callable[..., User]
) -> None:
    """Security review, fifth pass: Flask-WTF's HTTPS "strict referrer" check refused every POST
    served over HTTPS without a same-host Referer, and the reset-password, sign-up and e-mail
    confirmation pages send `Referrer-Policy: no-referrer` (their URL is a credential), so on a
    real HTTPS deployment their forms failed with "The referrer header is missing." (so did any
    form from a browser or extension that strips the Referer). The token is the proof."""
    from commerce.password_reset import make_reset_token

    user = make_user(email="over.https@example.com")
    path = f"/password/reset/{make_reset_token(user, csrf_app.config['SECRET_KEY'])}"
    browser = csrf_app.test_client()
    page = browser.get(path, base_url=HTTPS)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    token = _CSRF_FIELD.search(page.get_data(as_text=True))
    assert token
    new_password = "A-new-strong-pass-42"
    answer = browser.post(
        path,
        base_url=HTTPS,
        data={
            "new_password": new_password,
            "confirm_new_password": new_password,
            "csrf_token": token.group(1),
        },
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "null"},  # what a browser sends
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)[:400]


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ],
)
def test_a_cross_site_post_is_refused_even_with_a_token(
    csrf_client: FlaskClient, headers: dict[str, str]
) -> None:
    """What the Referer check stood for, asked of the headers every current browser sends and
    no page can forge (Fetch Metadata, else Origin): a form another site submits is refused even
    when it carries a token (a session planted by a network attacker, say)."""
    token = csrf_token_from(csrf_client, "/support")
    answer = csrf_client.post(
        "/support",
        base_url=HTTPS,
        data={"csrf_token": token, "email": "a@example.com", "message": "hello"},
        headers=headers,
    )
    assert answer.status_code == 400
