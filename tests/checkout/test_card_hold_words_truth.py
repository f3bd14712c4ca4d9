"""A money statement about a card hold is read from the money's own record (the refund's kind:
released from the hold, or refunded), not from where the card payment stands when the words
are built: the payment moves on its own (the cancellation job settles it on a worker) between
the shopper's cancellation and the page that answers it. Real database, localstripe."""

from __future__ import annotations

from collections.abc import Callable

from commerce import settlement
from commerce.cancellation import cancellation_answer, request_cancellation
from commerce.order_models import PaymentStatus, RefundKind
from onecart.money import format_money
from tests.checkout.shop import Shop


def test_the_cancellation_answer_says_not_charged_after_the_hold_was_voided(shop: Shop) -> None:
    """Paid by card, nothing placed yet: the shopper's cancellation stops both parts and their
    shares are released from the hold (nothing captured). The web request commits, enqueues the
    cancellation job and then builds its answer; a worker that settled first (the hold voided)
    made the answer read "stopped, and refunded in full": a refund the shopper looks for on
    the statement and never finds. Driven by hand: the settlement runs between the two."""
    alice = shop.make_user()
    shop.fill_cart(alice, [("shopwave", 0, 1), ("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(alice), payment_method="stripe", test_card="pm_card_visa")
    with shop.session() as session:
        request_cancellation(session, alice.id, order.number)
        session.commit()
        # The cancellation job's worker, before the request builds its answer.
        settlement.process_refunds(shop.session_factory, order.id)
        settlement.settle_payment(shop.session_factory, order.id)
        fresh = shop.order(order.number)
        assert fresh.payment.status == PaymentStatus.VOIDED  # type: ignore[union-attr]
        assert {r.kind for r in fresh.payment.refunds} == {RefundKind.RELEASE}  # type: ignore[union-attr]
        session.expire_all()
        answer = cancellation_answer(shop.order(order.number))

    assert "stopped, and not charged to your card." in answer, answer
    assert "refunded" not in answer


def test_parts_cancelled_in_one_run_are_not_all_said_not_charged_when_one_was_captured(
    shop: Shop,
) -> None:
    """Paid by card; ShopWave's and Kiondo's parts placed, DummyMart's not yet (the card only
    held). The shopper cancels (DummyMart's part stopped at once). While the cancellation job's
    run X sends Kiondo's cancel, a second run Y (its outbox row dispatched twice) cancels
    ShopWave's part (released from the hold: nothing captured), gets no clear answer from
    Kiondo on its last attempt, and the card is captured for Kiondo's share, as it should be
    for a part that may ship. X's cancel then goes through: Kiondo's share was charged and is
    refunded to the card; the other two shares were never charged. The order's message said
    "we are refunding you in full to your card": a refund of the whole order the shopper looks
    for and never sees. It says what is refunded and what was never charged."""
    import sqlalchemy as sa

    from adapters.base import Capability, MarketplaceAdapter, MarketplaceError, OrderState
    from commerce.cancellation import carry_out_cancellation
    from commerce.marketplace_access import adapter_for_marketplace, marketplace_can
    from commerce.models import Marketplace
    from commerce.notification_models import Notification
    from commerce.placement import PlacementResult, place_sub_order

    alice = shop.make_user()
    shop.fill_cart(alice, [("shopwave", 0, 1), ("kiondo", 0, 1), ("dummymart", 6, 1)])
    order = shop.checkout(shop.client_for(alice), payment_method="stripe", test_card="pm_card_visa")
    for slug in ("shopwave", "kiondo"):
        part = shop.sub_order(order, slug)
        assert marketplace_can(part.marketplace, Capability.CANCEL)
        placed = place_sub_order(
            shop.session_factory, part.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
        assert placed == PlacementResult.PLACED
    fresh = shop.order(order.number)
    assert fresh.payment.status == PaymentStatus.AUTHORIZED, [  # type: ignore[union-attr]
        (s.marketplace.slug, s.status) for s in fresh.sub_orders
    ]
    with shop.session() as session, session.begin():
        request_cancellation(session, alice.id, order.number)

    second_run = [order.id]

    class Cancelling:
        """Kiondo's real adapter (cached per process, so wrapped, never changed) whose cancel
        call runs `before` first, or raises `error`."""

        def __init__(
            self,
            adapter: MarketplaceAdapter,
            *,
            before: Callable[[], object] | None = None,
            error: MarketplaceError | None = None,
        ) -> None:
            self._adapter, self._before, self._error = adapter, before, error

        def __getattr__(self, name: str) -> object:
            return getattr(self._adapter, name)

        def cancel_order(self, marketplace_order_id: str) -> OrderState:
            if self._error is not None:
                raise self._error
            if self._before is not None:
                self._before()
            return self._adapter.cancel_order(marketplace_order_id)

    def run_y_adapter_for(market: Marketplace) -> MarketplaceAdapter:
        adapter = adapter_for_marketplace(market)
        if market.slug != "kiondo":
            return adapter
        reset = MarketplaceError("connection reset after the request was sent")
        return Cancelling(adapter, error=reset)  # type: ignore[return-value]

    def run_y() -> None:
        if second_run:
            carry_out_cancellation(
                shop.session_factory,
                second_run.pop(),
                adapter_for=run_y_adapter_for,
                final_attempt=True,
            )

    def run_x_adapter_for(market: Marketplace) -> MarketplaceAdapter:
        adapter = adapter_for_marketplace(market)
        if market.slug != "kiondo":
            return adapter
        return Cancelling(adapter, before=run_y)  # type: ignore[return-value]

    carry_out_cancellation(
        shop.session_factory, order.id, adapter_for=run_x_adapter_for, final_attempt=True
    )

    assert not second_run
    fresh = shop.order(order.number)
    kinds = {r.sub_order_id: r.kind for r in fresh.payment.refunds}  # type: ignore[union-attr]
    shopwave, kiondo = shop.sub_order(order, "shopwave"), shop.sub_order(order, "kiondo")
    assert kinds[shopwave.id] == RefundKind.RELEASE
    assert kinds[kiondo.id] == RefundKind.CARD_REFUND  # captured, then refunded
    with shop.session() as session:
        messages = list(
            session.scalars(
                sa.select(Notification.message).where(Notification.order_id == order.id)
            )
        )
    [told] = [m for m in messages if m.startswith(f"Your order {order.number} was cancelled")]
    kiondo_share = format_money(kiondo.charge_minor, kiondo.charge_currency)
    released = format_money(fresh.total_minor - kiondo.charge_minor, fresh.currency)
    assert "in full" not in told, told
    assert kiondo_share in told and released in told and "not charged" in told, told


def test_the_cancel_preview_does_not_promise_a_placed_part_is_never_charged(shop: Shop) -> None:
    """Paid by card, the card only held (Kiondo's part not placed yet), ShopWave's part placed.
    The preview promised "we ask ShopWave to cancel; once it confirms, this part is not charged
    to your card". The capture waits for ShopWave's answer only until the cancellation job's
    last attempt: with no clear answer by then the part may ship and its share is captured, and
    a cancellation ShopWave confirms later is refunded to the card. The preview says so."""
    from commerce.marketplace_access import adapter_for_marketplace
    from commerce.placement import PlacementResult, place_sub_order
    from tests.storefront.conftest import text_of

    alice = shop.make_user()
    shop.fill_cart(alice, [("shopwave", 0, 1), ("kiondo", 0, 1)])
    client = shop.client_for(alice)
    order = shop.checkout(client, payment_method="stripe", test_card="pm_card_visa")
    placed = place_sub_order(
        shop.session_factory,
        shop.sub_order(order, "shopwave").id,
        adapter_for=adapter_for_marketplace,
        final_attempt=True,
    )
    assert placed == PlacementResult.PLACED
    assert shop.order(order.number).payment.status == PaymentStatus.AUTHORIZED  # type: ignore[union-attr]

    preview = text_of(client.get(f"/orders/{order.number}/cancel").get_data(as_text=True))
    line = preview[preview.index("ShopWave (") :]
    line = line[: line.index("Kiondo")] if "Kiondo" in line else line
    assert "we ask ShopWave to cancel" in line, line
    assert "once it confirms, this part is not charged to your card." not in line, line
    assert "refunded" in line, line
