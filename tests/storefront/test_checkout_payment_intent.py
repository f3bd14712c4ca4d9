"""POST /checkout/payment-intent, which the storefront's checkout.js calls with fetch() (Accept
`*/*`, a JSON body): every answer is JSON in the site's error shape (storefront.errors), the CSRF
refusal and a lapsed sign-in included, with the status that says what went wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from commerce.checkout_intents import MAX_INTENT_GENERATIONS
from commerce.models import User
from commerce.payments.gateway import (
    PaymentDeclined,
    PaymentError,
    PaymentUnavailable,
    PreparedIntent,
    ProviderPaymentState,
    ProviderStatus,
)
from onecart.money import Money
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
    # `make install` requires npm, which brings node: its absence is a broken install.
    assert node is not None, "node is not installed (the install needs npm and node)"
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


class ReplayingStripe:
    """Stripe's idempotency as it is (localstripe has none): a key replays its first intent for
    24 hours whatever became of it, and says so (Idempotent-Replayed: the answer has no current
    status); `statuses` is Stripe's current record of each intent. Every read is counted."""

    def __init__(self) -> None:
        self.intent_by_key: dict[str, str] = {}
        self.statuses: dict[str, ProviderStatus] = {}
        self.amounts: dict[str, Money] = {}
        self.retrieved: list[str] = []

    def __call__(self) -> ReplayingStripe:  # stands in for routes._card_gateway
        return self

    def prepare_intent(
        self, amount: Money, *, idempotency_key: str, metadata: Mapping[str, str]
    ) -> PreparedIntent:
        assert metadata["onecart_validation_token"] == VALID_TOKEN
        replayed = idempotency_key in self.intent_by_key
        if not replayed:
            intent_id = f"pi_{len(self.intent_by_key) + 1}"
            self.intent_by_key[idempotency_key] = intent_id
            self.statuses[intent_id] = ProviderStatus.FAILED  # requires_payment_method
            self.amounts[intent_id] = amount
        intent_id = self.intent_by_key[idempotency_key]
        return PreparedIntent(
            intent_id, f"{intent_id}_secret", None if replayed else self.statuses[intent_id]
        )

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        self.retrieved.append(provider_reference)
        amount = self.amounts[provider_reference]
        return ProviderPaymentState(
            provider_reference=provider_reference,
            status=self.statuses[provider_reference],
            amount_minor=amount.minor,
            captured_minor=0,
            refunded_minor=0,
            currency=amount.currency,
        )


@pytest.fixture
def replaying_stripe(monkeypatch: pytest.MonkeyPatch) -> ReplayingStripe:
    stripe_fake = ReplayingStripe()
    totals = iter([1999, 2499, 1999])
    monkeypatch.setattr(checkout_routes, "is_sandbox_mode", lambda settings: False)
    monkeypatch.setattr(checkout_routes, "_card_gateway", stripe_fake)
    monkeypatch.setattr(
        checkout_routes,
        "build_quote",
        lambda *args, **kwargs: type(
            "Quote", (), {"can_pay": True, "total_minor": next(totals, 1999)}
        )(),
    )
    return stripe_fake


def _ask_intent(client: FlaskClient, csrf: str) -> str:
    response = client.post(
        "/checkout/payment-intent",
        json={"validation_token": VALID_TOKEN},
        headers={**FETCH_HEADERS, "X-CSRFToken": csrf},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    intent_id: str = response.get_json()["payment_intent_id"]
    return intent_id


def test_a_total_back_to_a_released_amount_gets_a_fresh_intent(
    csrf_client: FlaskClient, make_user: Callable[..., User], replaying_stripe: ReplayingStripe
) -> None:
    """19.99, then 24.99 (the submit released the 19.99 intent), then 19.99 again: Stripe
    replays the first key's cancelled intent, which Stripe.js could not confirm."""
    client, csrf = _signed_in_csrf_client(csrf_client, make_user)
    first = _ask_intent(client, csrf)
    replaying_stripe.statuses[first] = ProviderStatus.CANCELED
    second = _ask_intent(client, csrf)
    replaying_stripe.statuses[second] = ProviderStatus.CANCELED

    third = _ask_intent(client, csrf)
    again = _ask_intent(client, csrf)

    assert third not in (first, second)
    assert replaying_stripe.statuses[third] != ProviderStatus.CANCELED
    assert again == third  # the walk over the keys is itself idempotent: one intent, one hold


def test_an_intent_still_holding_for_the_total_is_handed_back_not_doubled(
    csrf_client: FlaskClient, make_user: Callable[..., User], replaying_stripe: ReplayingStripe
) -> None:
    client, csrf = _signed_in_csrf_client(csrf_client, make_user)
    first = _ask_intent(client, csrf)
    replaying_stripe.statuses[first] = ProviderStatus.AUTHORIZED  # requires_capture
    _ask_intent(client, csrf)  # 24.99

    assert _ask_intent(client, csrf) == first
    assert len(replaying_stripe.intent_by_key) == 2


def test_a_form_whose_every_intent_was_released_is_asked_to_reload(
    csrf_client: FlaskClient, make_user: Callable[..., User], replaying_stripe: ReplayingStripe
) -> None:
    client, csrf = _signed_in_csrf_client(csrf_client, make_user)
    replaying_stripe.statuses = _AlwaysCancelled()

    response = client.post(
        "/checkout/payment-intent",
        json={"validation_token": VALID_TOKEN},
        headers={**FETCH_HEADERS, "X-CSRFToken": csrf},
    )

    _assert_site_error(response, 409, "reload the page")
    assert len(replaying_stripe.intent_by_key) == MAX_INTENT_GENERATIONS


class _AlwaysCancelled(dict[str, ProviderStatus]):
    def __getitem__(self, key: str) -> ProviderStatus:
        return ProviderStatus.CANCELED


def test_a_freshly_made_intent_is_handed_out_without_another_stripe_read(
    csrf_client: FlaskClient, make_user: Callable[..., User], replaying_stripe: ReplayingStripe
) -> None:
    """Stripe's reply to the create is the intent as it is now unless Stripe says it replayed
    an older answer: only a replay is read again (it may have been released since)."""
    client, csrf = _signed_in_csrf_client(csrf_client, make_user)
    first = _ask_intent(client, csrf)
    assert replaying_stripe.retrieved == []  # made now: its reply says everything

    replaying_stripe.statuses[first] = ProviderStatus.AUTHORIZED
    _ask_intent(client, csrf)  # 24.99: a new key, made now
    assert replaying_stripe.retrieved == []
    assert _ask_intent(client, csrf) == first  # 19.99 again: a replay, read once
    assert replaying_stripe.retrieved == [first]
