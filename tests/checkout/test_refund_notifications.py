"""What the shopper is told when part of an order is refunded: a wallet credit is made at once,
so it is said done; a card refund is said to be on its way, then confirmed when Stripe made it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from commerce import settlement
from commerce.cancellation import (
    carry_out_cancellation,
    request_cancellation,
    tell_parts_cancelled,
)
from commerce.marketplace_access import adapter_for_marketplace
from commerce.notification_models import Notification
from commerce.notifications import _claim_email, email_subject
from commerce.order_locks import lock_order
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    Payment,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.payments.gateway import PaymentUnavailable
from commerce.payments.providers import gateway_for_payment
from commerce.placement import place_sub_order
from commerce.sub_order_compensation import compensate_sub_order
from commerce.sweeper import SweepPolicy, sweep
from onecart.money import format_money
from onecart.settings import get_settings
from tests.checkout.shop import Shop


def _placed_order(shop: Shop, **payment: str) -> Order:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), **payment)
    for sub in order.charged_sub_orders:
        place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
    return shop.order(order.number)


def _cancel(shop: Shop, sub_order: MarketplaceOrder) -> None:
    with shop.session_factory() as session, session.begin():
        sub = session.get(MarketplaceOrder, sub_order.id)
        assert sub is not None
        lock_order(session, sub.order_id)
        compensate_sub_order(
            session, sub, status=SubOrderStatus.CANCELLED, reason="cancelled by the marketplace"
        )


def _messages(shop: Shop, order: Order) -> dict[str, str]:
    with shop.session() as session:
        rows = session.execute(
            sa.select(Notification.kind, Notification.message)
            .where(Notification.order_id == order.id)
            .order_by(Notification.id)
        )
        return {kind: message for kind, message in rows}


def test_a_wallet_refund_is_told_as_done_in_the_wallet(shop: Shop) -> None:
    order = _placed_order(shop, payment_method="wallet")
    kiondo = shop.sub_order(order, "kiondo")
    share = format_money(kiondo.charge_minor, kiondo.charge_currency)

    _cancel(shop, kiondo)

    [refund] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.SUCCEEDED
    message = _messages(shop, order)["sub_order_cancelled"]
    assert f"we refunded their {share} to your OneCart wallet" in message
    assert "we are refunding" not in message


def test_a_card_refund_is_on_its_way_then_confirmed(shop: Shop) -> None:
    order = _placed_order(shop, payment_method="stripe", test_card="pm_card_visa")
    kiondo = shop.sub_order(order, "kiondo")
    share = format_money(kiondo.charge_minor, kiondo.charge_currency)

    _cancel(shop, kiondo)
    told_first = _messages(shop, order)
    settlement.process_refunds(shop.session_factory, order.id)

    assert f"we are refunding their {share}" in told_first["sub_order_cancelled"]
    assert "refund_made" not in told_first
    assert "to your card" in _messages(shop, order)["refund_made"]


def _fail(shop: Shop, sub_order: MarketplaceOrder, reason: str) -> None:
    with shop.session_factory() as session, session.begin():
        sub = session.get(MarketplaceOrder, sub_order.id)
        assert sub is not None
        lock_order(session, sub.order_id)
        compensate_sub_order(session, sub, status=SubOrderStatus.FAILED, reason=reason)


def _unplaced_order(shop: Shop, lines: list[tuple[str, int, int]], **payment: str) -> Order:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, lines)
    return shop.checkout(shop.client_for(user), **payment)


def test_an_order_whose_only_part_failed_names_its_marketplace(shop: Shop) -> None:
    """The part's own sentence is left out when its failure fails the whole order (the order's
    says the same failure and refund); the order's sentence then has to say where: "We could not
    place order …; refunded in full." left the shopper, and the e-mail's subject, guessing which
    marketplace had their items."""
    order = _unplaced_order(shop, [("shopwave", 2, 1)], payment_method="wallet")

    _fail(shop, shop.sub_order(order, "shopwave"), "ShopWave refused the order.")

    told = _messages(shop, order)
    assert "sub_order_failed" not in told
    # And why, in the words of the order page's "Why" (shopper QA: it named only where).
    assert told["order_failed"] == (
        f"We could not place order {order.number} at ShopWave; you have been refunded in full. "
        "ShopWave refused the order."
    )
    assert email_subject(told["order_failed"], order.number) == (
        f"OneCart: We could not place order {order.number} at ShopWave; "
        "you have been refunded in full."
    )


def test_a_card_order_whose_parts_all_failed_names_each_marketplace(shop: Shop) -> None:
    order = _unplaced_order(
        shop,
        [("shopwave", 2, 1), ("kiondo", 2, 1)],
        payment_method="stripe",
        test_card="pm_card_visa",
    )

    _fail(shop, shop.sub_order(order, "kiondo"), "Kiondo Market could not be reached.")
    _fail(shop, shop.sub_order(order, "shopwave"), "ShopWave refused the order.")
    told = _messages(shop, order)
    # Nothing was placed: the card hold is released.
    settlement.process_refunds(shop.session_factory, order.id)
    settlement.settle_payment(shop.session_factory, order.id)

    assert "The rest of your order goes ahead." in told["sub_order_failed"]
    # Nothing was ever charged, so nothing is refunded either (shop15: "we are refunding you in
    # full" was followed by no refund at all, as none was made).
    kiondo = shop.sub_order(order, "kiondo")
    share = format_money(kiondo.charge_minor, kiondo.charge_currency)
    assert told["sub_order_failed"].startswith(
        f"We could not place your Kiondo Market items, so their {share} is not charged to your "
        "card."
    )
    assert told["order_failed"] == (
        f"We could not place order {order.number} at Kiondo Market and ShopWave; "
        "nothing is charged to your card. Kiondo Market could not be reached. "
        "ShopWave refused the order."
    )
    assert all("refund" not in message.lower() for message in _messages(shop, order).values())
    assert shop.order(order.number).payment.status == PaymentStatus.VOIDED  # type: ignore[union-attr]


def _cancel_as_shopper(shop: Shop, order: Order) -> None:
    with shop.session_factory() as session, session.begin():
        request_cancellation(session, order.user_id, order.number)
    carry_out_cancellation(
        shop.session_factory, order.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )


def test_cancelling_an_order_of_one_part_says_it_once_and_where_the_money_goes(
    shop: Shop,
) -> None:
    """Shopper QA: an order of one part, cancelled, was told twice: "Your ShopWave items were
    cancelled; we are refunding their €39.74. Your order … was cancelled; we are refunding you in
    full." The part is the whole order: the order's sentence alone, naming where the money goes."""
    wallet_order = _unplaced_order(shop, [("shopwave", 2, 1)], payment_method="wallet")
    card_order = _unplaced_order(
        shop, [("shopwave", 2, 1)], payment_method="stripe", test_card="pm_card_visa"
    )
    place_sub_order(
        shop.session_factory,
        shop.sub_order(card_order, "shopwave").id,
        adapter_for=adapter_for_marketplace,
        final_attempt=True,
    )

    _cancel_as_shopper(shop, wallet_order)  # not placed yet: cancelled at once
    _cancel_as_shopper(shop, card_order)  # placed: cancelled on ShopWave

    wallet_told = _messages(shop, wallet_order)
    card_told = _messages(shop, card_order)
    assert shop.sub_order(card_order, "shopwave").status == SubOrderStatus.CANCELLED
    # Cancelled whole at once: "We are cancelling order …" before it said it twice.
    assert wallet_told["order_cancelled"] == (
        f"Your order {wallet_order.number} was cancelled and refunded to your OneCart wallet."
    )
    assert card_told["order_cancelled"] == (
        f"Your order {card_order.number} was cancelled; we are refunding you in full to your card."
    )
    assert "sub_order_cancelled" not in wallet_told and "sub_order_cancelled" not in card_told


def test_cancelling_one_part_of_two_still_names_its_share(shop: Shop) -> None:
    order = _placed_order(shop, payment_method="wallet")
    kiondo = shop.sub_order(order, "kiondo")

    _cancel(shop, kiondo)

    told = _messages(shop, order)
    assert told["sub_order_cancelled"].startswith("Your Kiondo Market items were cancelled;")
    assert "order_cancelled" not in told


def _told_since_placed(shop: Shop, order: Order) -> list[str]:
    """Every message about the order after its parts were placed, oldest first."""
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(Notification.message)
                .where(
                    Notification.order_id == order.id,
                    Notification.kind.not_in(("order_received", "sub_order_placed")),
                )
                .order_by(Notification.id)
            )
        )


def test_cancelling_several_placed_parts_in_one_go_says_it_once(shop: Shop) -> None:
    """Shopper QA: cancelling an order of two placed parts told "Your Kiondo Market items were
    cancelled; we refunded their $33.58 …", then "Your ShopWave items were cancelled; we
    refunded their $113.99 … Your order … was cancelled and refunded …": one cancellation, told
    as three. The request is acknowledged, then the outcome is one message."""
    wallet_order = _placed_order(shop, payment_method="wallet")
    card_order = _placed_order(shop, payment_method="stripe", test_card="pm_card_visa")

    _cancel_as_shopper(shop, wallet_order)
    _cancel_as_shopper(shop, card_order)

    assert _told_since_placed(shop, wallet_order) == [
        f"We are cancelling order {wallet_order.number}.",
        f"Your order {wallet_order.number} was cancelled and refunded to your OneCart wallet.",
    ]
    card_told = [m for m in _told_since_placed(shop, card_order) if not m.startswith("We refunded")]
    assert card_told == [
        f"We are cancelling order {card_order.number}.",
        f"Your order {card_order.number} was cancelled; we are refunding you in full to your card.",
    ]


def test_cancelling_several_unplaced_parts_says_it_once(shop: Shop) -> None:
    order = _unplaced_order(shop, [("shopwave", 2, 1), ("kiondo", 2, 1)], payment_method="wallet")

    _cancel_as_shopper(shop, order)

    assert _told_since_placed(shop, order) == [
        f"Your order {order.number} was cancelled and refunded to your OneCart wallet."
    ]


def test_an_order_of_one_part_its_marketplace_cancelled_says_it_once(shop: Shop) -> None:
    """Shopper QA: "Your ShopWave items were cancelled; we refunded their $113.99 to your OneCart
    wallet. Your order … has been refunded in full." The part is the whole order: one sentence,
    saying who cancelled it and where the money goes."""
    wallet_order = _unplaced_order(shop, [("shopwave", 2, 1)], payment_method="wallet")
    card_order = _unplaced_order(
        shop, [("shopwave", 2, 1)], payment_method="stripe", test_card="pm_card_visa"
    )
    for order in (wallet_order, card_order):
        place_sub_order(
            shop.session_factory,
            shop.sub_order(order, "shopwave").id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
        )

        _cancel(shop, shop.sub_order(order, "shopwave"))
    settlement.process_refunds(shop.session_factory, card_order.id)
    settlement.settle_payment(shop.session_factory, card_order.id)

    assert _told_since_placed(shop, wallet_order) == [
        f"Your order {wallet_order.number} was cancelled at ShopWave (cancelled by the "
        "marketplace); you have been refunded in full to your OneCart wallet."
    ]
    assert _told_since_placed(shop, card_order)[0] == (
        f"Your order {card_order.number} was cancelled at ShopWave (cancelled by the "
        "marketplace); we are refunding you in full to your card."
    )


def test_an_order_onecart_cancelled_because_it_was_billed_more_says_so(shop: Shop) -> None:
    """Shopper QA: an order OneCart cancelled itself, the marketplace having billed more than
    allowed, read "ShopWave cancelled your order": it was cancelled at ShopWave, by us, and the
    sentence says why, in money as people read it (not "billed 16099")."""
    order = _unplaced_order(shop, [("shopwave", 2, 1)], payment_method="wallet")
    shop.knobs("shopwave", order_price_change_pct=40)
    try:
        place_sub_order(
            shop.session_factory,
            shop.sub_order(order, "shopwave").id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
        )
    finally:
        shop.knobs("shopwave", order_price_change_pct=0)
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED

    [told] = _told_since_placed(shop, order)
    assert told.startswith(
        f"Your order {order.number} was cancelled at ShopWave (we cancelled it: ShopWave billed $"
    )
    assert "more than the $" in told
    assert told.endswith(" paid); you have been refunded in full to your OneCart wallet.")
    assert "ShopWave cancelled your order" not in told


def test_a_card_cancellation_of_several_parts_tells_its_refunds_once(shop: Shop) -> None:
    """Shopper QA: cancelling a card order of two parts sent "We refunded …" once per part. One
    cancellation, one message, which still names each part's exact share."""
    order = _placed_order(shop, payment_method="stripe", test_card="pm_card_visa")
    shares = {
        name: shop.sub_order(order, slug)
        for name, slug in (("ShopWave", "shopwave"), ("Kiondo Market", "kiondo"))
    }

    _cancel_as_shopper(shop, order)
    settlement.process_refunds(shop.session_factory, order.id)

    with shop.session() as session:
        made = list(
            session.scalars(
                sa.select(Notification.message).where(
                    Notification.order_id == order.id, Notification.kind == "refund_made"
                )
            )
        )
    [message] = made
    total = sum(sub.charge_minor for sub in shares.values())
    currency = shares["ShopWave"].charge_currency
    assert message.startswith(
        f"We refunded {format_money(total, currency)} of order {order.number} to your card ("
    )
    for name, sub in shares.items():
        assert f"{name} {format_money(sub.charge_minor, currency)}" in message
    assert message.endswith("); your bank shows it within a few days.")


class LosesRefundAnswers:
    """The real gateway whose refunds are made at Stripe and whose answers are lost, and whose
    look-up of a refund cannot be made yet: the refunds stay `processing` for the sweeper."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def refund(self, *args: Any, **kwargs: Any) -> str:
        self.inner.refund(*args, **kwargs)
        raise PaymentUnavailable("The card payment service is unreachable (refunded).")

    def find_refund(self, *args: Any, **kwargs: Any) -> Any:
        raise PaymentUnavailable("The card payment service is unreachable (looked up).")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_refunds_the_sweeper_confirms_later_are_told_once(shop: Shop) -> None:
    """The same rule when the refunds' answers were lost and the sweeper's look-up confirms
    them: its follow-up sent "We refunded …" once per part."""
    order = _placed_order(shop, payment_method="stripe", test_card="pm_card_visa")
    with shop.session_factory() as session, session.begin():
        request_cancellation(session, order.user_id, order.number)
    carry_out_cancellation(
        shop.session_factory,
        order.id,
        adapter_for=adapter_for_marketplace,
        gateway_for=lambda session, payment: LosesRefundAnswers(  # type: ignore[arg-type,return-value]
            gateway_for_payment(session, payment)
        ),
        final_attempt=True,
    )
    with shop.session() as session:
        statuses = set(
            session.scalars(
                sa.select(Refund.status)
                .join(Payment, Refund.payment_id == Payment.id)
                .where(Payment.order_id == order.id)
            )
        )
    assert statuses == {RefundStatus.PROCESSING}

    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    report = sweep(
        shop.session_factory,
        no_queue,  # type: ignore[arg-type]
        policy=SweepPolicy(refund_processing_after=timedelta(0)),
    )

    assert report.refunds_reconciled == 2
    with shop.session() as session:
        made = list(
            session.scalars(
                sa.select(Notification.message).where(
                    Notification.order_id == order.id, Notification.kind == "refund_made"
                )
            )
        )
    [message] = made
    for name, slug in (("ShopWave", "shopwave"), ("Kiondo Market", "kiondo")):
        sub = shop.sub_order(order, slug)
        assert f"{name} {format_money(sub.charge_minor, sub.charge_currency)}" in message


def test_a_refund_made_after_the_runs_message_was_taken_for_e_mail_is_still_e_mailed(
    shop: Shop,
) -> None:
    """The run's one "We refunded …" grows with each refund while it is not e-mailed. A worker
    e-mailing notifications (any job sends them) can take it between two refunds: the message
    was then rewritten behind the e-mail already being sent, and marked sent, so the second
    refund reached the shopper's mailbox nowhere. It is told in a message of its own then."""
    order = _placed_order(shop, payment_method="stripe", test_card="pm_card_visa")
    settings = get_settings()
    emailed: list[str] = []
    claimed: list[int] = []
    refunds_sent: list[int] = []

    def claim_the_mail() -> None:
        """What send_notification_emails does first: claim each message and build its e-mail
        (sent, then marked sent, after this run)."""
        with shop.session() as session:
            ids = list(
                session.scalars(
                    sa.select(Notification.id).where(
                        Notification.order_id == order.id, Notification.kind == "refund_made"
                    )
                )
            )
        for notification_id in ids:
            email = _claim_email(shop.session_factory, notification_id, settings)
            assert email is not None
            emailed.append(str(email.get_content()))
            claimed.append(notification_id)

    class MailTakenBetweenRefunds:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def refund(self, *args: Any, **kwargs: Any) -> str:
            if refunds_sent:
                claim_the_mail()
            refunds_sent.append(1)
            return str(self.inner.refund(*args, **kwargs))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    with shop.session_factory() as session, session.begin():
        request_cancellation(session, order.user_id, order.number)
    carry_out_cancellation(
        shop.session_factory,
        order.id,
        adapter_for=adapter_for_marketplace,
        gateway_for=lambda session, payment: MailTakenBetweenRefunds(  # type: ignore[arg-type,return-value]
            gateway_for_payment(session, payment)
        ),
        final_attempt=True,
    )
    assert len(refunds_sent) == 2 and claimed
    with shop.session_factory() as session, session.begin():
        session.execute(
            sa.update(Notification)
            .where(Notification.id.in_(claimed))
            .values(emailed_at=sa.func.now())
        )
        still_to_send = list(
            session.scalars(
                sa.select(Notification.message).where(
                    Notification.order_id == order.id,
                    Notification.kind == "refund_made",
                    Notification.emailed_at.is_(None),
                )
            )
        )

    mailbox = " ".join(emailed + still_to_send)
    for slug in ("shopwave", "kiondo"):
        sub = shop.sub_order(order, slug)
        assert format_money(sub.charge_minor, sub.charge_currency) in mailbox


def test_a_card_order_its_marketplaces_cancelled_before_the_capture_is_not_said_refunded(
    shop: Shop,
) -> None:
    """Shopper QA (shop15): both marketplaces cancelled a card order while the card was only
    held (ShopWave's part placed, Kiondo's not yet): nothing was captured, the hold is released,
    and no refund is ever made. The shopper was told "we are refunding you in full"."""
    order = _unplaced_order(
        shop,
        [("shopwave", 2, 1), ("kiondo", 2, 1)],
        payment_method="stripe",
        test_card="pm_card_visa",
    )
    place_sub_order(
        shop.session_factory,
        shop.sub_order(order, "shopwave").id,
        adapter_for=adapter_for_marketplace,
        final_attempt=True,
    )
    assert shop.order(order.number).payment.status == PaymentStatus.AUTHORIZED  # type: ignore[union-attr]

    _cancel(shop, shop.sub_order(order, "shopwave"))
    _cancel(shop, shop.sub_order(order, "kiondo"))
    settlement.process_refunds(shop.session_factory, order.id)
    settlement.settle_payment(shop.session_factory, order.id)

    shopwave = shop.sub_order(order, "shopwave")
    kiondo = shop.sub_order(order, "kiondo")
    told = _told_since_placed(shop, order)
    assert told == [
        f"Your ShopWave items were cancelled; their "
        f"{format_money(shopwave.charge_minor, shopwave.charge_currency)} is not charged to your "
        "card.",
        f"Your Kiondo Market items were cancelled; their "
        f"{format_money(kiondo.charge_minor, kiondo.charge_currency)} is not charged to your "
        f"card. Your order {order.number} was cancelled at Kiondo Market and ShopWave "
        "(cancelled by the marketplace); nothing is charged to your card.",
    ]
    assert all("refund" not in message.lower() for message in _messages(shop, order).values())
    assert shop.order(order.number).payment.status == PaymentStatus.VOIDED  # type: ignore[union-attr]


def test_a_cancellation_of_parts_whose_money_goes_back_two_ways_says_each_truly(
    shop: Shop,
) -> None:
    """Two parts cancelled in one go whose shares go back two ways: ShopWave's left out of the
    card hold (a release, never charged), Kiondo Market's refunded to the card (its share was
    captured before its marketplace confirmed: a retry's cancel after another worker captured).
    The one sentence worded the sum by the first refund's kind ("their $X is not charged to your
    card"): false for Kiondo Market's money, which was charged and is on its way back."""
    order = _unplaced_order(
        shop,
        [("shopwave", 2, 1), ("kiondo", 2, 1), ("dummymart", 2, 1)],
        payment_method="stripe",
        test_card="pm_card_visa",
    )
    shopwave, kiondo = shop.sub_order(order, "shopwave"), shop.sub_order(order, "kiondo")
    with shop.session_factory() as session, session.begin():
        lock_order(session, order.id)
        for part in (shopwave, kiondo):
            sub = session.get(MarketplaceOrder, part.id)
            assert sub is not None
            compensate_sub_order(
                session,
                sub,
                status=SubOrderStatus.CANCELLED,
                reason="Cancelled at your request.",
                tell_shopper=False,
            )
        refunds = {
            refund.sub_order_id: refund
            for refund in session.scalars(
                sa.select(Refund).where(Refund.sub_order_id.in_([shopwave.id, kiondo.id]))
            )
        }
        assert {refund.kind for refund in refunds.values()} == {RefundKind.RELEASE}
        # The state the race leaves: Kiondo Market's share was captured, so it is a card refund.
        refunds[kiondo.id].kind = RefundKind.CARD_REFUND
        refunds[kiondo.id].status = RefundStatus.PENDING
        session.flush()
        shares = {sub_id: refund.amount_minor for sub_id, refund in refunds.items()}
        locked_order = session.get(Order, order.id)
        assert locked_order is not None
        tell_parts_cancelled(session, locked_order, [shopwave.id, kiondo.id])

    told = _messages(shop, order)["sub_order_cancelled"]
    shopwave_share = format_money(shares[shopwave.id], shopwave.charge_currency)
    kiondo_share = format_money(shares[kiondo.id], kiondo.charge_currency)
    assert told == (
        "Your Kiondo Market and ShopWave items were cancelled; "
        f"we are refunding the {kiondo_share} for Kiondo Market, and "
        f"the {shopwave_share} for ShopWave is not charged to your card."
    ), told
