"""What the Stripe gateway makes of replies that do not confirm what was asked: pure logic, with
Stripe's own client reading canned HTTP replies (localstripe always answers as asked, so it cannot
show these). A 2xx is a success only when its body says the capture or refund happened, for the
amount asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import stripe

from commerce.payments.gateway import (
    AuthorizationRequest,
    FoundRefund,
    FoundRefundStatus,
    PaymentDeclined,
    PaymentUnavailable,
    ProviderStatus,
)
from commerce.payments.stripe_gateway import StripeGateway
from onecart.money import Money


class CannedHttp(stripe.HTTPClient):
    """Answers every request with one canned status and body, and keeps what was sent."""

    name = "canned"

    def __init__(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.sent: list[tuple[str, str, str | None]] = []
        self.closed = False

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        self.sent.append((method, url, dict(headers).get("Idempotency-Key")))
        return self.body, self.status, {"request-id": "req_canned", **self.headers}

    def close(self) -> None:
        # The gateway never streams (HTTPClient.request_stream refuses as it should); closing
        # only marks the canned client as done: it holds no connection.
        self.closed = True


def _gateway(
    status: int,
    body: dict[str, Any] | str,
    http: list[CannedHttp] | None = None,
    headers: dict[str, str] | None = None,
) -> StripeGateway:
    text = body if isinstance(body, str) else json.dumps(body)
    canned = CannedHttp(status, text, headers)
    if http is not None:
        http.append(canned)
    client = stripe.StripeClient("sk_test_canned", http_client=canned, max_network_retries=0)
    return StripeGateway(client)


def _intent(status: str, amount: int = 1000, received: int | None = 1000) -> dict[str, Any]:
    return {
        "id": "pi_canned",
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "amount_received": received,
        "currency": "usd",
        "metadata": {},
    }


def _refund(status: str, amount: int = 500) -> dict[str, Any]:
    return {
        "id": "re_canned",
        "object": "refund",
        "status": status,
        "amount": amount,
        "currency": "usd",
        "payment_intent": "pi_canned",
        "metadata": {"onecart_refund_key": "refund-sub-1"},
    }


def test_a_succeeded_capture_for_the_amount_asked_is_a_success() -> None:
    _gateway(200, _intent("succeeded")).capture("pi_canned", Money(1000, "USD"), attempt=0)


@pytest.mark.parametrize(
    "reply",
    [_intent("requires_capture", received=0), _intent("succeeded", received=700)],
    ids=["still-authorized", "captured-less"],
)
def test_a_capture_reply_that_does_not_confirm_the_capture_is_unknown(
    reply: dict[str, Any],
) -> None:
    with pytest.raises(PaymentUnavailable):
        _gateway(200, reply).capture("pi_canned", Money(1000, "USD"), attempt=0)


def test_an_unreadable_200_capture_reply_is_unknown_not_refused() -> None:
    with pytest.raises(PaymentUnavailable):
        _gateway(200, "<html>gateway</html>").capture("pi_canned", Money(1000, "USD"), attempt=0)


@pytest.mark.parametrize("status", ["succeeded", "pending"])
def test_a_refund_that_succeeded_or_is_pending_returns_its_id(status: str) -> None:
    reference = _gateway(200, _refund(status)).refund(
        "pi_canned", Money(500, "USD"), idempotency_key="refund-sub-1", reference="refund-sub-1"
    )
    assert reference == "re_canned"


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_refund_stripe_reports_failed_is_refused_not_done(status: str) -> None:
    with pytest.raises(PaymentDeclined):
        _gateway(200, _refund(status)).refund(
            "pi_canned", Money(500, "USD"), idempotency_key="refund-sub-1", reference="refund-sub-1"
        )


def test_a_refund_waiting_for_action_is_unknown() -> None:
    with pytest.raises(PaymentUnavailable):
        _gateway(200, _refund("requires_action")).refund(
            "pi_canned", Money(500, "USD"), idempotency_key="refund-sub-1", reference="refund-sub-1"
        )


def test_a_refund_of_another_amount_is_not_the_refund_asked_for() -> None:
    with pytest.raises(PaymentDeclined):
        _gateway(200, _refund("succeeded", amount=50)).refund(
            "pi_canned", Money(500, "USD"), idempotency_key="refund-sub-1", reference="refund-sub-1"
        )


def _listing(*refunds: dict[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": list(refunds), "has_more": False, "url": "/v1/refunds"}


def test_a_refund_found_by_its_reference_is_done_failed_absent_or_still_in_doubt() -> None:
    found = _gateway(200, _listing(_refund("pending"))).find_refund("pi_canned", "refund-sub-1")
    assert found == FoundRefund("re_canned", FoundRefundStatus.DONE, "pending")
    # A failed one was made and refused by the bank: an answer (the operator's), not "none",
    # which would send it again.
    failed = _gateway(200, _listing(_refund("failed"))).find_refund("pi_canned", "refund-sub-1")
    assert failed == FoundRefund("re_canned", FoundRefundStatus.FAILED, "failed")
    assert _gateway(200, _listing()).find_refund("pi_canned", "refund-sub-1") is None
    # An unfinished one exists: it must not be sent again (after the key expires that would be
    # a second refund), so the lookup cannot answer yet.
    with pytest.raises(PaymentUnavailable):
        _gateway(200, _listing(_refund("requires_action"))).find_refund("pi_canned", "refund-sub-1")


def _refund_of(reference: str | None, key: str, status: str = "succeeded") -> dict[str, Any]:
    metadata = {"onecart_refund_key": key}
    if reference is not None:
        metadata["onecart_refund_reference"] = reference
    return {**_refund(status), "id": f"re_{key}", "metadata": metadata}


def test_a_refund_is_found_by_its_reference_whichever_attempt_made_it() -> None:
    listing = _listing(
        _refund_of("refund-sub-10", "refund-sub-10"),
        _refund_of("refund-sub-1", "refund-sub-1-attempt-2"),
    )
    found = _gateway(200, listing).find_refund("pi_canned", "refund-sub-1")
    assert found is not None and found.provider_reference == "re_refund-sub-1-attempt-2"
    # Made before refunds carried their reference: known by its attempt's key.
    legacy = _listing(_refund_of(None, "refund-sub-10"), _refund_of(None, "refund-sub-1-attempt-1"))
    found = _gateway(200, legacy).find_refund("pi_canned", "refund-sub-1")
    assert found is not None and found.provider_reference == "re_refund-sub-1-attempt-1"
    assert _gateway(200, legacy).find_refund("pi_canned", "refund-sub-2") is None


class PagedHttp(CannedHttp):
    """Answers each request with the next of its canned bodies."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        super().__init__(200, "")
        self.bodies = [json.dumps(body) for body in bodies]

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        self.sent.append((method, url, dict(headers).get("Idempotency-Key")))
        return self.bodies[len(self.sent) - 1], 200, {"request-id": "req_canned"}


def test_a_refund_on_a_later_page_is_found_not_taken_for_absent() -> None:
    first = {**_listing(_refund_of("refund-sub-9", "refund-sub-9")), "has_more": True}
    second = _listing(_refund_of("refund-sub-1", "refund-sub-1"))
    http = PagedHttp([first, second])
    client = stripe.StripeClient("sk_test_canned", http_client=http, max_network_retries=0)

    found = StripeGateway(client).find_refund("pi_canned", "refund-sub-1")

    assert found is not None and found.provider_reference == "re_refund-sub-1"
    assert "starting_after=re_refund-sub-9" in http.sent[1][1]


class KeepsBodies(CannedHttp):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(status, body)
        self.bodies: list[str] = []

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        self.bodies.append(post_data or "")
        return super().request(method, url, headers, post_data)


def test_a_refund_carries_its_attempts_key_and_its_own_reference() -> None:
    http = KeepsBodies(200, json.dumps(_refund("succeeded")))
    client = stripe.StripeClient("sk_test_canned", http_client=http, max_network_retries=0)

    StripeGateway(client).refund(
        "pi_canned",
        Money(500, "USD"),
        idempotency_key="refund-sub-1-attempt-1",
        reference="refund-sub-1",
    )

    [(_, _, key)] = http.sent
    assert key == "refund-sub-1-attempt-1"
    sent = parse_qs(http.bodies[0])
    assert sent["metadata[onecart_refund_key]"] == ["refund-sub-1-attempt-1"]
    assert sent["metadata[onecart_refund_reference]"] == ["refund-sub-1"]


def test_a_capture_retried_for_the_same_amount_reuses_its_key_another_amount_gets_another() -> None:
    # Stripe refuses a key reused with other parameters (IdempotencyError) for 24 hours: a
    # capture recomputed after a share was cancelled must not be stuck behind the first key.
    http: list[CannedHttp] = []
    gateway = _gateway(200, _intent("succeeded", received=1000), http)
    gateway.capture("pi_canned", Money(1000, "USD"), attempt=0)
    gateway.capture("pi_canned", Money(1000, "USD"), attempt=0)
    _gateway(200, _intent("succeeded", received=600), http).capture(
        "pi_canned", Money(600, "USD"), attempt=0
    )
    first, again, smaller = (key for sent in http for _method, _url, key in sent.sent)
    assert first == again and first != smaller


def test_an_authorization_is_found_by_its_key_in_the_intents_metadata() -> None:
    mine = {
        **_intent("requires_capture", received=0),
        "metadata": {"onecart_authorization_key": "k1"},
    }
    other = {**mine, "id": "pi_other", "metadata": {"onecart_authorization_key": "k2"}}
    http: list[CannedHttp] = []
    listing = {
        "object": "search_result",
        "data": [other, mine],
        "has_more": False,
        "url": "/v1/payment_intents/search",
    }
    [found] = _gateway(200, listing, http).find_authorizations("k1")
    assert (found.provider_reference, found.status) == ("pi_canned", ProviderStatus.AUTHORIZED)
    assert "/v1/payment_intents/search" in http[0].sent[0][1]


def test_an_unreadable_search_reply_is_unknown_not_absent() -> None:
    with pytest.raises(PaymentUnavailable):
        _gateway(200, "<html>gateway</html>").find_authorizations("k1")


def test_uncaptured_holds_are_searched_by_status_and_age_and_read_with_their_metadata() -> None:
    cutoff = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    before = int(cutoff.timestamp()) - 60
    held = {
        **_intent("requires_capture", amount=4250, received=0),
        "created": before,
        "metadata": {"onecart_validation_token": "t" * 30, "onecart_user_id": "7"},
    }
    # What a lagging search index may still return: captured since, or made after the cutoff.
    captured = {**held, "id": "pi_captured", "status": "succeeded"}
    young = {**held, "id": "pi_young", "created": before + 120}
    http: list[CannedHttp] = []
    listing = {
        "object": "search_result",
        "data": [held, captured, young],
        "has_more": False,
        "url": "/v1/payment_intents/search",
    }

    [hold] = _gateway(200, listing, http).find_uncaptured_authorizations(cutoff)

    assert (hold.provider_reference, hold.amount_minor, hold.currency) == ("pi_canned", 4250, "USD")
    assert hold.created_at == datetime.fromtimestamp(before, UTC)
    assert hold.metadata == {"onecart_validation_token": "t" * 30, "onecart_user_id": "7"}
    [(method, url, _key)] = http[0].sent
    query = parse_qs(urlsplit(url).query)["query"]
    assert (method, urlsplit(url).path) == ("get", "/v1/payment_intents/search")
    assert query == [f"status:'requires_capture' AND created<{int(cutoff.timestamp())}"]


def test_a_failed_listing_of_uncaptured_holds_is_an_error_not_an_empty_list() -> None:
    with pytest.raises(PaymentUnavailable):
        _gateway(200, "<html>gateway</html>").find_uncaptured_authorizations(datetime.now(UTC))


def test_a_card_authorization_still_processing_is_unknown_not_declined_and_not_cancelled() -> None:
    # Stripe: a confirmed PaymentIntent is `processing` until the method answers (briefly for a
    # card), then `requires_capture`. Declining it (and trying to cancel it) would tell the
    # shopper "declined" while Stripe goes on to hold the money.
    http: list[CannedHttp] = []
    gateway = _gateway(200, _intent("processing", received=0), http)
    with pytest.raises(PaymentUnavailable):
        gateway.authorize(
            AuthorizationRequest(
                amount=Money(1000, "USD"), idempotency_key="auth-1", payment_token="pm_card_visa"
            )
        )
    assert [url for _method, url, _key in http[0].sent] == [
        "https://api.stripe.com/v1/payment_intents"
    ]


def test_a_browser_confirmed_intent_still_processing_is_unknown_not_unconfirmed() -> None:
    intent = {**_intent("processing", received=0), "metadata": {"onecart_validation_token": "t1"}}
    handed_over = AuthorizationRequest(
        amount=Money(1000, "USD"),
        idempotency_key="auth-1",
        metadata={"onecart_validation_token": "t1"},
        intent_id="pi_canned",
    )
    with pytest.raises(PaymentUnavailable):
        _gateway(200, intent).authorize(handed_over)
    # An intent whose confirmation the shopper never finished (3-D Secure) holds nothing.
    waiting = {**intent, "status": "requires_action"}
    with pytest.raises(PaymentDeclined):
        _gateway(200, waiting).authorize(handed_over)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, ProviderStatus.FAILED),  # requires_payment_method, as made now
        ({"Idempotent-Replayed": "true"}, None),
        ({"idempotent-replayed": "true"}, None),
    ],
)
def test_a_prepared_intent_carries_its_status_unless_stripe_replayed_the_answer(
    headers: dict[str, str], status: ProviderStatus | None
) -> None:
    """Stripe marks a reply it replays for a reused idempotency key (Idempotent-Replayed:
    true): that answer is the key's first and may be stale, so it carries no status."""
    intent = {**_intent("requires_payment_method", received=0), "client_secret": "pi_canned_s"}
    prepared = _gateway(200, intent, headers=headers).prepare_intent(
        Money(1000, "USD"), idempotency_key="onecart-intent-t-1000-USD", metadata={}
    )
    assert (prepared.intent_id, prepared.client_secret) == ("pi_canned", "pi_canned_s")
    assert prepared.status == status


class RepliesInTurn(stripe.HTTPClient):
    """Answers each request with the next canned (status, body), and keeps what was asked."""

    name = "in-turn"

    def __init__(self, *replies: tuple[int, dict[str, Any]]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.sent: list[tuple[str, str]] = []

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        self.sent.append((method, url))
        status, body = self.replies.pop(0)
        return json.dumps(body), status, {"request-id": "req_canned"}

    def close(self) -> None:
        # Nothing is held open: the replies are in memory.
        self.replies.clear()


def _capture_in_turn(*replies: tuple[int, dict[str, Any]]) -> tuple[RepliesInTurn, StripeGateway]:
    http = RepliesInTurn(*replies)
    client = stripe.StripeClient("sk_test_canned", http_client=http, max_network_retries=0)
    return http, StripeGateway(client)


def _silent_capture_reply() -> dict[str, Any]:
    """A capture reply that says `succeeded` and not how much: no `amount_received` (as
    localstripe answers; Stripe's own replies carry it, a proxy or an older API version may not)."""
    reply = _intent("succeeded")
    del reply["amount_received"]
    return reply


def _charge(amount: int, *, captured: int | None, refunded: int = 0) -> dict[str, Any]:
    charge: dict[str, Any] = {
        "id": "ch_canned",
        "object": "charge",
        "amount": amount,
        "amount_refunded": refunded,
        "captured": True,
        "currency": "usd",
    }
    if captured is not None:
        charge["amount_captured"] = captured
    return charge


def test_a_capture_reply_silent_on_the_amount_is_checked_against_stripes_record() -> None:
    """Stripe's record of the intent, read back, says 700 were captured of the 1000 asked: the
    capture did not do what was asked (unknown: settlement reconciles and records Stripe's
    figure), even though its own reply said nothing against it."""
    read_back = {**_intent("succeeded", received=700), "latest_charge": _charge(1000, captured=700)}
    http, gateway = _capture_in_turn((200, _silent_capture_reply()), (200, read_back))
    with pytest.raises(PaymentUnavailable, match="700"):
        gateway.capture("pi_canned", Money(1000, "USD"), attempt=0)
    assert [method for method, _ in http.sent] == ["post", "get"]
    assert "expand" in http.sent[1][1]


def test_a_capture_reply_silent_on_the_amount_is_a_success_once_stripes_record_agrees() -> None:
    read_back = {
        **_intent("succeeded", received=1000),
        "latest_charge": _charge(1000, captured=1000),
    }
    _, gateway = _capture_in_turn((200, _silent_capture_reply()), (200, read_back))
    gateway.capture("pi_canned", Money(1000, "USD"), attempt=0)


@pytest.mark.parametrize(("asked", "confirmed"), [(700, True), (1000, False)])
def test_a_capture_read_back_from_a_charge_alone_counts_the_released_rest_out(
    asked: int, confirmed: bool
) -> None:
    """localstripe's record: no `amount_received` on the intent nor `amount_captured` on the
    charge; the released rest of a partial capture is a refund of the charge. Right after the
    capture that is all the charge refunded, so what it kept is what was captured."""
    read_back = {
        **_intent("succeeded", received=None),
        "latest_charge": _charge(1000, captured=None, refunded=300),
    }
    del read_back["amount_received"]
    _, gateway = _capture_in_turn((200, _silent_capture_reply()), (200, read_back))
    if confirmed:
        gateway.capture("pi_canned", Money(asked, "USD"), attempt=0)
    else:
        with pytest.raises(PaymentUnavailable):
            gateway.capture("pi_canned", Money(asked, "USD"), attempt=0)


def test_a_capture_reply_silent_on_the_amount_and_no_record_to_read_is_unknown() -> None:
    _, gateway = _capture_in_turn(
        (200, _silent_capture_reply()),
        (500, {"error": {"type": "api_error", "message": "try again"}}),
    )
    with pytest.raises(PaymentUnavailable):
        gateway.capture("pi_canned", Money(1000, "USD"), attempt=0)


def test_a_top_ups_refunds_are_read_from_every_page() -> None:
    from commerce.topup_refunds import topup_refunds

    first = {**_listing({**_refund("succeeded"), "id": "re_first", "created": 1}), "has_more": True}
    second = _listing({**_refund("succeeded"), "id": "re_second", "created": 2})
    http = PagedHttp([first, second])
    client = stripe.StripeClient("sk_test_canned", http_client=http, max_network_retries=0)

    assert [refund.id for refund in topup_refunds(client, "pi_canned")] == ["re_first", "re_second"]


def _captured_intent(
    *, received: int | None, charge: dict[str, Any] | str | None
) -> dict[str, Any]:
    intent = _intent("succeeded", received=received)
    if received is None:
        del intent["amount_received"]
    if charge is not None:
        intent["latest_charge"] = charge
    return intent


@pytest.mark.parametrize(
    ("reply", "on_record"),
    [
        (_captured_intent(received=600, charge=_charge(1000, captured=600, refunded=400)), 600),
        (_captured_intent(received=None, charge=_charge(1000, captured=600, refunded=400)), 600),
        # localstripe: the released rest of the partial capture is the charge's only refund.
        (_captured_intent(received=None, charge=_charge(1000, captured=None, refunded=400)), 600),
        (_captured_intent(received=None, charge="ch_canned"), None),
        (_captured_intent(received=None, charge=None), None),
    ],
    ids=["intent", "charge-amount-captured", "localstripe-charge", "charge-not-expanded", "none"],
)
def test_a_captured_intent_looked_up_says_what_its_record_shows_was_captured(
    reply: dict[str, Any], on_record: int | None
) -> None:
    """Reconciliation's look-up (settlement.reconcile_payment) reads the capture from the record
    the capture's own check reads: on localstripe the charge's amount less what it refunded
    (the released rest), never the amount merely asked for; None when the record says nothing."""
    http: list[CannedHttp] = []
    state = _gateway(200, reply, http).retrieve("pi_canned")

    assert state.status == ProviderStatus.CAPTURED
    assert state.captured_on_record_minor == on_record
    assert "expand" in http[0].sent[0][1]
