"""POST /checkout/payment-intent, which the storefront's checkout.js calls with fetch() (Accept
`*/*`, a JSON body): every answer is JSON in the site's error shape (storefront.errors), the CSRF
refusal and a lapsed sign-in included, with the status that says what went wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from commerce.models import User
from commerce.payments.gateway import PaymentDeclined, PaymentError, PaymentUnavailable
from storefront.checkout import routes as checkout_routes
from tests.storefront.conftest import DEFAULT_PASSWORD, csrf_token_from

# What fetch() sends by default: no Accept preference for JSON.
FETCH_HEADERS = {"Accept": "*/*"}
VALID_TOKEN = "a" * 43


def _assert_site_error(response: Any, status: int, message_part: str) -> None:
    assert response.status_code == status
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    error = response.get_json()["error"]
    assert error["status"] == status
    assert isinstance(error["title"], str) and error["title"]
    assert message_part in error["message"]


@pytest.fixture
def card_checkout_with_stripe_js(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The site as with real Stripe keys: checkout.js and this endpoint are in use."""
    monkeypatch.setattr(checkout_routes, "is_sandbox_mode", lambda settings: False)
    yield


def _signed_in_csrf_client(
    csrf_client: FlaskClient, make_user: Callable[..., User]
) -> tuple[FlaskClient, str]:
    user = make_user()
    token = csrf_token_from(csrf_client, "/login")
    response = csrf_client.post(
        "/login", data={"login": user.username, "password": DEFAULT_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    return csrf_client, csrf_token_from(csrf_client, "/profile")


def test_a_request_without_csrf_token_is_refused_in_json(
    csrf_client: FlaskClient, make_user: Callable[..., User]
) -> None:
    client, _token = _signed_in_csrf_client(csrf_client, make_user)

    response = client.post(
        "/checkout/payment-intent", json={"validation_token": VALID_TOKEN}, headers=FETCH_HEADERS
    )

    _assert_site_error(response, 400, "Reload the page")


def test_a_lapsed_sign_in_is_a_json_401_not_a_redirect(client: FlaskClient) -> None:
    response = client.post(
        "/checkout/payment-intent", json={"validation_token": VALID_TOKEN}, headers=FETCH_HEADERS
    )

    _assert_site_error(response, 401, "signed in")


def test_sandbox_mode_answers_a_json_404(
    csrf_client: FlaskClient, make_user: Callable[..., User]
) -> None:
    client, token = _signed_in_csrf_client(csrf_client, make_user)

    response = client.post(
        "/checkout/payment-intent",
        json={"validation_token": VALID_TOKEN},
        headers={**FETCH_HEADERS, "X-CSRFToken": token},
    )

    _assert_site_error(response, 404, "sandbox mode")


@pytest.mark.usefixtures("card_checkout_with_stripe_js")
@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ({"validation_token": "not a token"}, "reload the page"),
        (["not", "an", "object"], "reload the page"),
        ({"validation_token": VALID_TOKEN}, "nothing to pay for"),
    ],
)
def test_refusals_are_json_in_the_sites_error_shape(
    csrf_client: FlaskClient, make_user: Callable[..., User], body: Any, message_part: str
) -> None:
    client, token = _signed_in_csrf_client(csrf_client, make_user)

    response = client.post(
        "/checkout/payment-intent", json=body, headers={**FETCH_HEADERS, "X-CSRFToken": token}
    )

    _assert_site_error(response, 400, message_part)


@pytest.mark.usefixtures("card_checkout_with_stripe_js")
@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (PaymentUnavailable("The card service did not answer."), 502),
        (PaymentDeclined("The card payment could not be prepared: amount too small."), 422),
    ],
)
def test_stripe_failures_are_json_with_stripes_message(
    csrf_client: FlaskClient,
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
    failure: PaymentError,
    status: int,
) -> None:
    class FailingStripe:
        def prepare_intent(self, *args: object, **kwargs: object) -> tuple[str, str]:
            raise failure

    client, token = _signed_in_csrf_client(csrf_client, make_user)
    monkeypatch.setattr(checkout_routes, "_card_gateway", FailingStripe)
    monkeypatch.setattr(
        checkout_routes,
        "build_quote",
        lambda *args, **kwargs: type("Quote", (), {"can_pay": True, "total_minor": 1999})(),
    )

    response = client.post(
        "/checkout/payment-intent",
        json={"validation_token": VALID_TOKEN},
        headers={**FETCH_HEADERS, "X-CSRFToken": token},
    )

    _assert_site_error(response, status, failure.message)


@pytest.mark.parametrize(
    "headers",
    [{"X-Requested-With": "XMLHttpRequest"}, {"Content-Type": "application/json"}],
)
def test_a_scripts_request_to_a_page_url_gets_its_error_in_json(
    csrf_client: FlaskClient, headers: dict[str, str]
) -> None:
    """Any script (fetch sends Accept `*/*`) reads errors as JSON, as /api/ clients do."""
    response = csrf_client.post("/cart/add", data="{}", headers={**FETCH_HEADERS, **headers})

    _assert_site_error(response, 400, "Reload the page")


def test_a_form_post_still_gets_the_html_error_page(csrf_client: FlaskClient) -> None:
    response = csrf_client.post("/cart/add", data={"product_id": "1"}, headers=FETCH_HEADERS)

    assert response.status_code == 400
    assert response.mimetype == "text/html"


CHECKOUT_JS = Path(__file__).parents[2] / "storefront" / "checkout" / "static" / "checkout.js"
HARNESS = Path(__file__).with_name("checkout_js_harness.mjs")


def _run_checkout_js(reply_kind: str, reply_body: str = "") -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    completed = subprocess.run(
        [node, str(HARNESS), str(CHECKOUT_JS), reply_kind, reply_body],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


@pytest.mark.parametrize(
    ("reply_kind", "reply_body", "shown"),
    [
        (
            "error",
            '{"error": {"status": 400, "title": "Bad request", "message": "Reload the page."}}',
            "Reload the page.",
        ),
        ("error", "<!doctype html><title>Bad gateway</title>", "could not be prepared"),
        ("network-error", "", "could not be prepared"),
    ],
)
def test_checkout_js_shows_the_error_message_text(
    reply_kind: str, reply_body: str, shown: str
) -> None:
    result = _run_checkout_js(reply_kind, reply_body)

    assert result["submitted"] is False
    assert shown in result["shown"]
    assert "[object Object]" not in result["shown"]


def test_checkout_js_confirms_and_submits_the_intent_it_was_given() -> None:
    result = _run_checkout_js("ok", '{"payment_intent_id": "pi_1", "client_secret": "pi_1_s"}')

    assert result == {"shown": None, "submitted": True}
