"""A card authorization whose outcome is unknown at checkout is not a refusal: Stripe is asked for
the PaymentIntent before the shopper is told anything, and a hold that cannot be told is recorded
and later used or released by the sweeper (commerce.card_holds), which also finds at Stripe the
holds the database could not record at all. Real localstripe; the gateway loses the reply of a
create that did happen at Stripe, and plays Stripe's search (which localstripe lacks) over
localstripe's own list of PaymentIntents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from commerce.card_holds import (
    CHECKOUT_TOKEN_METADATA,
    CHECKOUT_USER_METADATA,
    checkout_intent_metadata,
)
from commerce.checkout import OutcomeKind, submit_checkout
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.fx import FxTable
from commerce.marketplace_access import lookup_adapter_for_marketplace
from commerce.models import User
from commerce.order_models import Order
from commerce.payments.gateway import (
    Authorization,
    AuthorizationRequest,
    PaymentGateway,
    PaymentUnavailable,
    ProviderPaymentState,
)
from commerce.payments.stripe_gateway import AUTHORIZATION_KEY_METADATA, StripeGateway
from commerce.sweeper import SweepPolicy, sweep
from onecart.money import Money
from onecart.settings import get_settings
from storefront.checkout import routes as checkout_routes
from tests.checkout.shop import Shop, stripe_client


class LosesAuthorizeReply:
    """The real gateway whose authorization happens at Stripe and then loses its reply."""

    def __init__(self, *, lose_reply: bool = True, lookup_down: bool = False) -> None:
        self.inner = StripeGateway.from_settings(get_settings())
        self.method = self.inner.method
        self.lose_reply = lose_reply
        self.lookup_down = lookup_down

    def authorize(self, request: AuthorizationRequest) -> Authorization:
        authorization = self.inner.authorize(request)
        if self.lose_reply:
            raise PaymentUnavailable("The card payment service is unreachable (authorized).")
        return authorization

    def find_authorizations(self, idempotency_key: str) -> list[ProviderPaymentState]:
        if self.lookup_down:
            raise PaymentUnavailable("The card payment service is unreachable (looked up).")
        return [self.inner.retrieve(intent.id) for intent in _intents_with_key(idempotency_key)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _intents_with_key(idempotency_key: str) -> list[Any]:
    listing = stripe_client().v1.payment_intents.list(params={"limit": 100})
    return [
        intent
        for intent in listing.auto_paging_iter()
        if (intent.metadata.to_dict() if intent.metadata else {}).get(AUTHORIZATION_KEY_METADATA)
        == idempotency_key
    ]


def _hold_rows(shop: Shop) -> list[CardHoldInDoubt]:
    with shop.session() as session:
        rows = list(session.scalars(sa.select(CardHoldInDoubt).order_by(CardHoldInDoubt.id)))
        session.expunge_all()
        return rows


def _sweep(shop: Shop, gateway: PaymentGateway) -> None:
    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    sweep(
        shop.session_factory,
        no_queue,
        policy=SweepPolicy(hold_in_doubt_after=timedelta(0)),
        card_gateway=lambda: gateway,
    )


def _use_gateway(monkeypatch: pytest.MonkeyPatch, gateway: LosesAuthorizeReply) -> None:
    monkeypatch.setattr(checkout_routes, "_card_gateway", lambda: gateway)


def test_authorization_whose_reply_is_lost_is_found_at_stripe_and_the_order_goes_ahead(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_gateway(monkeypatch, LosesAuthorizeReply())
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 1, 1)])

    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")

    assert order.payment is not None
    intent = stripe_client().v1.payment_intents.retrieve(order.payment.provider_reference)
    # The hold the lost reply made is the one the order uses: no second one was made.
    assert [
        found.id for found in _intents_with_key(intent.metadata[AUTHORIZATION_KEY_METADATA])
    ] == [intent.id]
    assert intent.status == "requires_capture"
    assert _hold_rows(shop) == []


def test_authorization_that_cannot_be_told_is_being_checked_and_the_sweeper_releases_it(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = LosesAuthorizeReply(lookup_down=True)
    _use_gateway(monkeypatch, gateway)
    user = shop.make_user()
    shop.fill_cart(user, [("kiondo", 1, 1)])
    client = shop.client_for(user)

    response = shop.submit(
        client, shop.checkout_form(client), payment_method="stripe", test_card="pm_card_visa"
    )

    page = response.get_data(as_text=True)
    alert = page[page.index('id="checkout-problem"') :].split("</div>", 1)[0]
    assert response.status_code == 202
    assert "checking your payment" in alert and "declined" not in alert.lower()
    assert shop.orders() == []
    [row] = _hold_rows(shop)
    assert row.resolved_at is None
    [intent] = _intents_with_key(row.idempotency_key)
    assert intent.status == "requires_capture"  # Stripe holds money: it must not be forgotten

    _sweep(shop, gateway)  # Stripe still cannot be asked: the row waits, on the operator's list
    [row] = _hold_rows(shop)
    assert row.resolved_at is None and row.last_error
    admin = shop.make_user(is_admin=True)
    listing = shop.client_for(admin).get("/admin/attention").get_data(as_text=True)
    main = listing[listing.index("<main") : listing.index("</main>")]
    assert f'id="card-hold-{row.id}"' in main and row.idempotency_key in main
    assert "<title>Admin · Needs attention · OneCart</title>" in listing
    assert stripe_client().v1.payment_intents.retrieve(intent.id).status == "requires_capture"

    gateway.lookup_down = False
    _sweep(shop, gateway)
    [row] = _hold_rows(shop)
    assert row.resolved_at is not None and "released" in str(row.resolution)
    assert stripe_client().v1.payment_intents.retrieve(intent.id).status == "canceled"


def test_a_retried_submit_uses_a_hold_and_the_sweeper_releases_only_the_unused_one(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = LosesAuthorizeReply(lookup_down=True)
    _use_gateway(monkeypatch, gateway)
    user = shop.make_user()
    shop.fill_cart(user, [("kiondo", 1, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    first = shop.submit(client, form, payment_method="stripe", test_card="pm_card_visa")
    assert first.status_code == 202

    # Stripe answers again; the shopper submits the same page. (localstripe keeps no idempotency
    # keys, so the retry makes a second hold, as Stripe does once it forgot the key.)
    gateway.lose_reply = gateway.lookup_down = False
    second = shop.submit(client, form, payment_method="stripe", test_card="pm_card_visa")
    assert second.status_code == 303
    [order] = shop.orders()
    assert order.payment is not None

    _sweep(shop, gateway)
    [row] = _hold_rows(shop)
    assert row.resolved_at is not None
    statuses = {intent.id: intent.status for intent in _intents_with_key(row.idempotency_key)}
    used = order.payment.provider_reference
    assert statuses.pop(used) == "requires_capture"
    assert list(statuses.values()) == ["canceled"]
    assert f"used by order {order.number}" in str(row.resolution)
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Order)) == 1


class CannotVoid:
    """The real gateway whose release of a hold does not get through."""

    def __init__(self) -> None:
        self.inner = StripeGateway.from_settings(get_settings())
        self.method = self.inner.method

    def void(self, provider_reference: str, *, attempt: int | None = 0) -> None:
        raise PaymentUnavailable("The card payment service is unreachable (released).")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _submit_while_commits_fail(
    shop: Shop, user: User, form: dict[str, str], fail: Callable[[Session], None]
) -> None:
    """Submit a card checkout while `fail` may refuse commits, with a gateway that cannot void
    the hold: the submit raises the database's error."""
    event.listen(shop.session_factory, "before_commit", fail)
    try:
        with pytest.raises(sa.exc.OperationalError):
            submit_checkout(
                shop.session_factory,
                shop.card_submission(user, form),
                fx=FxTable(per_usd={}),
                adapter_for=lookup_adapter_for_marketplace,
                card_gateway=CannotVoid(),  # type: ignore[arg-type]
            )
    finally:
        event.remove(shop.session_factory, "before_commit", fail)


def test_a_hold_whose_order_failed_and_cannot_be_released_is_left_to_the_sweeper(
    shop: Shop,
) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    form = shop.checkout_form(shop.client_for(user))

    def fail_the_order_commit(session: Session) -> None:
        if any(isinstance(obj, Order) for obj in session.identity_map.values()):
            raise sa.exc.OperationalError("COMMIT", {}, Exception("database went away"))

    _submit_while_commits_fail(shop, user, form, fail_the_order_commit)

    assert shop.orders() == []
    [row] = _hold_rows(shop)
    assert row.intent_id and row.resolved_at is None
    assert stripe_client().v1.payment_intents.retrieve(row.intent_id).status == "requires_capture"

    _sweep(shop, LosesAuthorizeReply(lose_reply=False))
    [row] = _hold_rows(shop)
    assert row.resolved_at is not None and "released" in str(row.resolution)
    assert stripe_client().v1.payment_intents.retrieve(row.intent_id).status == "canceled"


class HoldsOfOneForm:
    """The real Stripe gateway, listing only the uncaptured holds of one checkout form: the
    suite's localstripe also keeps other tests' holds, and with the grace period at zero one
    made in the same second as this test's account, under a user id reused since, would count
    as this shopper's."""

    def __init__(self, gateway: StripeGateway, validation_token: str) -> None:
        self.gateway = gateway
        self.validation_token = validation_token

    def find_uncaptured_authorizations(self, created_before: datetime) -> list[Any]:
        return [
            hold
            for hold in self.gateway.find_uncaptured_authorizations(created_before)
            if hold.metadata.get(CHECKOUT_TOKEN_METADATA) == self.validation_token
        ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.gateway, name)


def test_a_hold_whose_order_and_record_the_database_both_lost_is_found_at_stripe_and_released(
    shop: Shop,
) -> None:
    """The database went down after the authorization: the order is not written, the hold cannot
    be released (Stripe unreachable too) nor recorded for the sweeper. The sweeper finds it in
    Stripe's list of uncaptured holds by the shopper its metadata names."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    form = shop.checkout_form(shop.client_for(user))

    def database_down(session: Session) -> None:
        written = [*session.identity_map.values(), *session.new]
        if any(isinstance(obj, Order | CardHoldInDoubt) for obj in written):
            raise sa.exc.OperationalError("COMMIT", {}, Exception("database went away"))

    _submit_while_commits_fail(shop, user, form, database_down)
    assert shop.orders() == [] and _hold_rows(shop) == []
    [intent] = [
        intent
        for intent in stripe_client().v1.payment_intents.list(params={"limit": 100})
        if intent.metadata.to_dict().get(CHECKOUT_TOKEN_METADATA) == form["validation_token"]
    ]
    assert intent.status == "requires_capture"
    assert intent.metadata[CHECKOUT_USER_METADATA] == str(user.id)

    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    report = sweep(
        shop.session_factory,
        no_queue,
        # localstripe counts whole seconds and the test cannot wait for the grace period: every
        # hold made up to a second from now counts as old enough.
        policy=SweepPolicy(
            hold_in_doubt_after=timedelta(0), unrecorded_hold_after=-timedelta(seconds=1)
        ),
        card_gateway=lambda: HoldsOfOneForm(
            StripeGateway.from_settings(get_settings()), form["validation_token"]
        ),
    )

    assert report.unrecorded_holds == 1
    [row] = _hold_rows(shop)
    assert (row.intent_id, row.user_id) == (intent.id, user.id)
    assert row.resolved_at is not None and "released" in str(row.resolution)
    assert stripe_client().v1.payment_intents.retrieve(intent.id).status == "canceled"


def test_a_hold_captured_without_an_order_is_listed_once_for_an_operator_until_refunded(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone captured the hold outside checkout (no order uses it): the sweeper records it
    once for an operator (one error in the log, not one per sweep), lists it at
    /admin/attention, and lets it go once Stripe reports it refunded."""
    gateway = LosesAuthorizeReply(lookup_down=True)
    _use_gateway(monkeypatch, gateway)
    user = shop.make_user()
    shop.fill_cart(user, [("kiondo", 1, 1)])
    client = shop.client_for(user)
    assert (
        shop.submit(
            client, shop.checkout_form(client), payment_method="stripe", test_card="pm_card_visa"
        ).status_code
        == 202
    )
    [row] = _hold_rows(shop)
    [intent] = _intents_with_key(row.idempotency_key)
    stripe_client().v1.payment_intents.capture(intent.id)
    gateway.lookup_down = False

    with caplog.at_level("ERROR", logger="commerce.card_holds"):
        for _ in range(3):
            _sweep(shop, gateway)

    captured_logs = [r for r in caplog.records if "captured without an order" in r.getMessage()]
    assert len(captured_logs) == 1
    [row] = _hold_rows(shop)
    assert row.resolved_at is None and row.captured_without_order_at is not None
    assert intent.id in str(row.last_error)
    admin = shop.client_for(shop.make_user(is_admin=True))
    page = admin.get("/admin/attention").get_data(as_text=True)
    assert f'id="captured-hold-{row.id}"' in page
    assert f'id="card-hold-{row.id}"' not in page

    stripe_client().v1.refunds.create(params={"payment_intent": intent.id})
    _sweep(shop, gateway)

    [row] = _hold_rows(shop)
    assert row.resolved_at is not None and "refunded in Stripe" in str(row.resolution)
    page = admin.get("/admin/attention").get_data(as_text=True)
    assert f'id="captured-hold-{row.id}"' not in page


class AdoptionUnreachable:
    """The real gateway that cannot reach Stripe to read a browser-confirmed intent."""

    def __init__(self) -> None:
        self.inner = StripeGateway.from_settings(get_settings())
        self.method = self.inner.method

    def authorize(self, request: AuthorizationRequest) -> Authorization:
        if request.intent_id:
            raise PaymentUnavailable("The card payment service is unreachable (checked).")
        return self.inner.authorize(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_hold_in_doubt_naming_another_checkouts_intent_leaves_that_intent_alone(
    shop: Shop,
) -> None:
    """The form names a PaymentIntent (Stripe.js) that Stripe cannot be asked about at submit,
    so the submit records a hold in doubt by that id, unchecked. The intent is another
    checkout's: another form of the shopper's not submitted yet, or an id typed into the form.
    The sweeper finds it authorized and used by no order, and released it: the other checkout's
    hold, which its own submit then finds cancelled. Its metadata names the other checkout, so
    it is none of this row's business."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 4, 1)])
    form = shop.checkout_form(shop.client_for(user))
    other_token = "another-form-of-the-shop-000000"
    stripe = StripeGateway.from_settings(get_settings())
    other = stripe.authorize(
        AuthorizationRequest(
            amount=Money(int(form["total_seen"]), "USD"),
            idempotency_key=f"onecart-checkout-test-{other_token}-{user.id}",
            description="another checkout",
            metadata=checkout_intent_metadata(user.id, other_token),
            payment_token="pm_card_visa",
        )
    )
    submission = replace(
        shop.card_submission(user, form),
        card_payment_method=None,
        payment_intent_id=other.provider_reference,
    )

    outcome = submit_checkout(
        shop.session_factory,
        submission,
        fx=FxTable(per_usd={}),
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=AdoptionUnreachable(),  # type: ignore[arg-type]
    )

    assert outcome.kind == OutcomeKind.IN_DOUBT
    [row] = _hold_rows(shop)
    assert row.intent_id == other.provider_reference
    _sweep(shop, stripe)
    [row] = _hold_rows(shop)
    assert row.resolved_at is not None and "not this checkout's" in str(row.resolution)
    intent = stripe_client().v1.payment_intents.retrieve(other.provider_reference)
    assert intent.status == "requires_capture"
    stripe.void(other.provider_reference, attempt=0)  # the other checkout's, released by the test


def test_an_abandoned_checkouts_hold_another_row_left_alone_is_still_released(
    shop: Shop,
) -> None:
    """The hold in doubt of one submit names another form's PaymentIntent and is resolved as
    "not this checkout's" (left alone, as above). That other form is never submitted: its hold
    has no order and no row of its own, so the sweeper's look at Stripe's uncaptured holds must
    record and release it. It took the other checkout's row for one accounting for the intent
    (any row naming it counted), so the hold stayed on the card until Stripe let it lapse,
    about 7 days."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 4, 1)])
    form = shop.checkout_form(shop.client_for(user))
    other_token = f"abandoned-form-{user.id}-{form['validation_token'][:12]}"
    stripe = StripeGateway.from_settings(get_settings())
    other = stripe.authorize(
        AuthorizationRequest(
            amount=Money(int(form["total_seen"]), "USD"),
            idempotency_key=f"onecart-checkout-test-{other_token}",
            description="a checkout abandoned after Stripe.js confirmed its hold",
            metadata=checkout_intent_metadata(user.id, other_token),
            payment_token="pm_card_visa",
        )
    )
    submission = replace(
        shop.card_submission(user, form),
        card_payment_method=None,
        payment_intent_id=other.provider_reference,
    )
    outcome = submit_checkout(
        shop.session_factory,
        submission,
        fx=FxTable(per_usd={}),
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=AdoptionUnreachable(),  # type: ignore[arg-type]
    )
    assert outcome.kind == OutcomeKind.IN_DOUBT
    _sweep(shop, stripe)
    [row] = _hold_rows(shop)
    assert "not this checkout's" in str(row.resolution)

    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    report = sweep(
        shop.session_factory,
        no_queue,
        # localstripe counts whole seconds: every hold made up to a second from now is old.
        policy=SweepPolicy(
            hold_in_doubt_after=timedelta(0), unrecorded_hold_after=-timedelta(seconds=1)
        ),
        card_gateway=lambda: HoldsOfOneForm(stripe, other_token),
    )

    assert report.unrecorded_holds == 1
    left_alone, own = _hold_rows(shop)
    assert left_alone.id == row.id and left_alone.resolution == row.resolution
    assert (own.intent_id, own.validation_token) == (other.provider_reference, other_token)
    assert own.resolved_at is not None and "released" in str(own.resolution)
    intent = stripe_client().v1.payment_intents.retrieve(other.provider_reference)
    assert intent.status == "canceled"
