"""Pure rules of checkout and orders (no services): order status derivation, status mapping,
job policy, form tokens, shipping checks, and the books check itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from adapters.base import OrderStatus as MarketplaceStatus
from commerce.checkout import (
    CheckoutSubmission,
    ShippingDetails,
    card_idempotency_key,
    is_valid_validation_token,
)
from commerce.models import Marketplace
from commerce.notifications import SUBJECT_HEADLINE_LIMIT, email_subject
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
    new_order_number,
    new_validation_token,
)
from commerce.orders import order_books_problems
from commerce.tracking import derive_order_status, sub_order_status_for
from onecart.money import Money
from storefront.jobs import JobPolicy

S = SubOrderStatus


@pytest.mark.parametrize(
    ("statuses", "cancel_requested", "expected"),
    [
        ([S.PENDING, S.PLACED], False, OrderStatus.PROCESSING),
        ([S.SHIPPED, S.PLACED], False, OrderStatus.PARTIALLY_SHIPPED),
        ([S.SHIPPED, S.SHIPPED, S.HANDOFF], False, OrderStatus.SHIPPED),
        ([S.DELIVERED, S.SHIPPED], False, OrderStatus.PARTIALLY_DELIVERED),
        ([S.DELIVERED, S.DELIVERED], False, OrderStatus.DELIVERED),
        ([S.DELIVERED, S.FAILED], False, OrderStatus.DELIVERED),
        ([S.FAILED, S.FAILED], False, OrderStatus.FAILED),
        ([S.CANCELLED, S.FAILED], True, OrderStatus.CANCELLED),
        ([S.CANCELLED, S.CANCELLED], False, OrderStatus.REFUNDED),
        ([S.HANDOFF], False, OrderStatus.PROCESSING),
    ],
)
def test_order_status_follows_its_sub_orders(
    statuses: list[SubOrderStatus], cancel_requested: bool, expected: OrderStatus
) -> None:
    assert derive_order_status(statuses, cancel_requested=cancel_requested) == expected


def test_every_marketplace_status_maps_to_a_sub_order_status() -> None:
    mapped = {status: sub_order_status_for(status) for status in MarketplaceStatus}
    assert mapped[MarketplaceStatus.PENDING] == S.PLACED
    assert mapped[MarketplaceStatus.DELIVERED] == S.DELIVERED
    assert mapped[MarketplaceStatus.REFUNDED] == S.CANCELLED
    assert mapped[MarketplaceStatus.FAILED] == S.CANCELLED


def test_job_policy_travels_as_a_plain_dict() -> None:
    policy = JobPolicy(queue_name="q1", placement_retry_intervals=(1, 2), stuck_after_seconds=9)
    assert JobPolicy.from_dict(policy.as_dict()) == policy
    assert JobPolicy.from_dict({"queue_name": "q2", "unknown": 1}).queue_name == "q2"
    assert JobPolicy.from_dict(None) == JobPolicy()


def test_tokens_and_numbers_have_their_shapes() -> None:
    token = new_validation_token()
    assert is_valid_validation_token(token)
    assert not is_valid_validation_token("short")
    assert not is_valid_validation_token("x' OR 1=1 --" * 3)
    assert not is_valid_validation_token(None)
    assert re.fullmatch(r"OC-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", new_order_number())


def test_card_idempotency_key_is_stable_per_form_card_and_amount() -> None:
    shipping = ShippingDetails("A", "1 Road", "City", "KE")
    base = CheckoutSubmission(
        1, "t" * 30, PaymentMethod.STRIPE, "USD", 100, shipping, "pm_card_visa"
    )
    same = card_idempotency_key(base, Money(100, "USD"))
    assert same == card_idempotency_key(base, Money(100, "USD"))
    assert same != card_idempotency_key(base, Money(101, "USD"))
    other_card = CheckoutSubmission(
        1, "t" * 30, PaymentMethod.STRIPE, "USD", 100, shipping, "pm_card_chargeCustomerFail"
    )
    assert same != card_idempotency_key(other_card, Money(100, "USD"))


def test_shipping_address_problems_are_named_per_field() -> None:
    assert ShippingDetails("Ada", "1 Road", "Nairobi", "ke").errors() == {}
    problems = ShippingDetails("", "", "x" * 121, "Kenya").errors()
    assert set(problems) == {"name", "line1", "city", "country"}


def _card_order(*, placed: int, failed: int, released: bool, captured: int) -> Order:
    def sub(index: int, status: SubOrderStatus, charge: int) -> MarketplaceOrder:
        return MarketplaceOrder(
            id=index,
            status=status,
            amount_minor=charge,
            currency="USD",
            charge_minor=charge,
            charge_currency="USD",
            items=[OrderItem(charge_minor=charge, quantity=1, unit_price_minor=charge)],
        )

    subs = [sub(1, S.PLACED, placed), sub(2, S.FAILED, failed)]
    refunds = (
        [
            Refund(
                sub_order_id=2,
                kind=RefundKind.RELEASE,
                status=RefundStatus.SUCCEEDED,
                amount_minor=failed,
                currency="USD",
            )
        ]
        if released
        else []
    )
    payment = Payment(
        method=PaymentMethod.STRIPE,
        status=PaymentStatus.CAPTURED,
        currency="USD",
        amount_minor=placed + failed,
        captured_minor=captured,
        provider_reference="pi_test",
        refunds=refunds,
    )
    return Order(
        number="OC-TEST-0001",
        total_minor=placed + failed,
        currency="USD",
        sub_orders=subs,
        payment=payment,
    )


def test_balanced_books_have_no_problems() -> None:
    order = _card_order(placed=700, failed=300, released=True, captured=700)
    assert order_books_problems(None, order) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("released", "captured", "problem"),
    [
        (False, 700, "taken 1000 − refunds 0 != live shares 700"),
        (True, 1000, "captured 1000 != taken − released"),
    ],
)
def test_unbalanced_books_are_reported(released: bool, captured: int, problem: str) -> None:
    order = _card_order(placed=700, failed=300, released=released, captured=captured)
    problems = order_books_problems(None, order)  # type: ignore[arg-type]
    assert any(problem in text for text in problems), problems


@pytest.mark.parametrize(("answer", "problems"), [(None, 0), ("refused", 1)])
def test_an_uncaptured_card_waiting_for_a_cancellation_answer_is_not_yet_a_problem(
    answer: str | None, problems: int
) -> None:
    """The capture waits while the shopper's cancellation waits for the marketplace's answer on a
    placed part (commerce.settlement): the card still authorized is not unbalanced books then;
    once the answer is in, it is."""
    order = _card_order(placed=700, failed=300, released=True, captured=0)
    assert order.payment is not None
    order.payment.status = PaymentStatus.AUTHORIZED
    order.cancel_requested_at = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
    placed = order.sub_orders[0]
    placed.cancel_outcome = answer
    placed.marketplace = Marketplace(slug="kiondo", name="Kiondo", capabilities=["cancel"])
    found = order_books_problems(None, order)  # type: ignore[arg-type]
    assert len([text for text in found if "card payment still authorized" in text]) == problems


@pytest.mark.parametrize(
    ("message", "order_number", "subject"),
    [
        (
            "DummyMart accepted your order (their order #51).",
            "OC-1234-ABCD",
            "OneCart order OC-1234-ABCD: DummyMart accepted your order (their order #51).",
        ),
        (
            "Your ShopWave items (order #1001) have shipped. They are with FedEx, tracking "
            "number 389.",
            "OC-1234-ABCD",
            "OneCart order OC-1234-ABCD: Your ShopWave items (order #1001) have shipped.",
        ),
        (
            "Your order OC-1234-ABCD has been delivered.",
            "OC-1234-ABCD",
            "OneCart: Your order OC-1234-ABCD has been delivered.",
        ),
        (
            "Price drop: Headphones is now $270.00 at ShopWave, $30.00 (10%) less than $300.00.",
            None,
            "OneCart: Price drop: Headphones is now $270.00 at ShopWave, $30.00 (10%) less "
            "than $300.00.",
        ),
    ],
)
def test_a_notification_e_mail_is_titled_with_its_news(
    message: str, order_number: str | None, subject: str
) -> None:
    """The subject is the notification's first sentence, not its internal kind: shoppers got
    "OneCart order OC-…: sub order placed" and "…: refund covered by bank"."""
    assert email_subject(message, order_number) == subject


def test_a_long_notification_is_cut_at_a_word_for_its_subject() -> None:
    subject = email_subject("We have " + "very " * 60 + "long news.", None)
    headline = subject.removeprefix("OneCart: ")
    assert len(headline) <= SUBJECT_HEADLINE_LIMIT and headline.endswith("very…")
