"""Every form re-rendered with its errors, as GOV.UK's design system does it: an error summary
that is an alert and takes focus on load (so keyboard and screen-reader users start at what
went wrong, not at the top of the page), linking to each invalid field, and each invalid field
marked aria-invalid with aria-describedby naming its message."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from commerce.models import User
from commerce.password_reset import make_reset_token
from tests.storefront.conftest import DEFAULT_PASSWORD

SUMMARY = re.compile(
    r'(?P<tag><div class="alert alert-error error-summary"[^>]*>)(?P<body>.*?)</div>', re.S
)
INVALID_CONTROL = re.compile(r"<(?:input|select|textarea)\b[^>]*\baria-invalid=\"true\"[^>]*>")


def _attribute(tag: str, name: str) -> str:
    match = re.search(rf'\b{name}="([^"]*)"', tag)
    assert match, f"{name} missing from {tag}"
    return unescape(match.group(1))


def _rejected_forms(app: Flask, user: User) -> dict[str, tuple[bool, str, dict[str, str]]]:
    """name -> (signed in?, path, an invalid answer)."""
    token = make_reset_token(user, app.config["SECRET_KEY"])
    return {
        "sign-up": (
            False,
            "/signup",
            {
                "username": "newshopper",
                "email": "not-an-email",
                "password": DEFAULT_PASSWORD,
                "confirm_password": DEFAULT_PASSWORD,
            },
        ),
        "sign-in": (False, "/login", {"login": "ama", "password": "wrong-password-9"}),
        "forgotten password": (False, "/password/forgot", {"email": ""}),
        "password reset": (
            False,
            f"/password/reset/{token}",
            {"new_password": "short", "confirm_new_password": "short"},
        ),
        "profile": (
            True,
            "/profile",
            {"first_name": "Ama", "email": "nope", "display_currency": "USD"},
        ),
        "password change": (
            True,
            "/profile/password",
            {
                "current_password": "",
                "new_password": "Another-strong-9-pass",
                "confirm_new_password": "Another-strong-9-pass",
            },
        ),
        "top-up": (True, "/profile/wallet/top-up", {"amount": "1.234"}),
    }


def assert_errors_are_announced_and_focused(html: str, *, blames_fields: bool = True) -> None:
    """The summary is the page's only autofocus; each invalid field is described by its
    message and linked from the summary. A refusal that `blames_fields=False` (a wrong
    sign-in: which of the two was wrong is not said) marks no field invalid at all."""
    summaries = list(SUMMARY.finditer(html))
    assert len(summaries) == 1, "no error summary"
    summary = summaries[0]
    for attribute in ('role="alert"', 'tabindex="-1"', " autofocus"):
        assert attribute in summary.group("tag")
    assert html.count(" autofocus") == 1
    controls = INVALID_CONTROL.findall(html)
    if not blames_fields:
        assert controls == [], "a field is marked invalid"
        return
    assert controls, "no field marked aria-invalid"
    linked = set(re.findall(r'<a href="#([^"]+)">', summary.group("body")))
    linked_fields = set()
    for control in controls:
        # A radio group is one field: the summary links to its first button.
        if _attribute(control, "id") in linked:
            linked_fields.add(_attribute(control, "name"))
        for described_by in _attribute(control, "aria-describedby").split():
            message = re.search(
                rf'<(ul|p)[^>]*\bid="{re.escape(described_by)}"[^>]*>(.*?)</\1>', html, re.S
            )
            assert message and message.group(2).strip(), f"{described_by} names no message"
    assert linked_fields == {_attribute(control, "name") for control in controls}


ALL_FORMS = [
    "sign-up",
    "sign-in",
    "forgotten password",
    "password reset",
    "profile",
    "password change",
    "top-up",
]


def _submit_rejected(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    form: str,
) -> Any:
    app.config["SMTP_HOST"] = "127.0.0.1"  # the reset form shows only where mail can leave
    user = make_user(username="ama", email="ama@example.com")
    signed_in, path, data = _rejected_forms(app, user)[form]
    if signed_in:
        login(client, user)
    if form == "top-up":
        page = client.get("/profile").get_data(as_text=True)
        reference = re.search(r'name="reference" type="hidden" value="([^"]+)"', page)
        assert reference
        data = {**data, "reference": reference.group(1)}
    return client.post(path, data=data)


@pytest.mark.parametrize("form", ALL_FORMS)
def test_a_rejected_form_focuses_its_error_summary_and_describes_each_invalid_field(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    form: str,
) -> None:
    response = _submit_rejected(app, client, make_user, login, form)

    assert_errors_are_announced_and_focused(
        response.get_data(as_text=True), blames_fields=form != "sign-in"
    )


@pytest.mark.parametrize("form", ALL_FORMS)
def test_every_rejected_form_answers_422_with_the_page_and_its_messages(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    form: str,
) -> None:
    # The checkout always answered 422 Unprocessable Content; sign-up, top-up and the profile
    # answered 200 for the same kind of refusal.
    response = _submit_rejected(app, client, make_user, login, form)

    assert response.status_code == 422
    assert SUMMARY.search(response.get_data(as_text=True))


def test_a_blank_form_has_no_error_summary(client: FlaskClient) -> None:
    html = client.get("/signup").get_data(as_text=True)

    assert "error-summary" not in html and "aria-invalid" not in html
