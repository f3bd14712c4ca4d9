"""Answers that do not confirm what was asked: a cancel call that succeeds without the order being
cancelled, and a placement in doubt on a marketplace that ignores idempotency keys and cannot be
asked by reference. Neither may move money or send the order again: the first stays unknown (the
cancellation job and tracking follow it up), the second goes to an operator. In-process against
the sandbox, with an adapter wrapper where the sandbox cannot misbehave that way; every test ends
with the invariants (tests/faults/conftest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.base import (
    MarketplaceAdapter,
    OrderRequest,
    OrderState,
    OutcomeUnknown,
    PlacedOrder,
    Rejected,
    Transient,
)
from adapters.registry import build_adapter
from commerce.cancellation import CancelOutcome, cancel_on_marketplace
from commerce.marketplace_access import adapter_for_marketplace, marketplace_config
from commerce.models import Marketplace, utc_now
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    Refund,
    SubOrderStatus,
)
from commerce.placement import PlacementResult, place_sub_order
from tests.checkout.shop import Shop
from tests.faults.conftest import check_invariants, held_orders
from tests.loopback_http import loopback_http
from tests.storefront.conftest import text_of

pytestmark = pytest.mark.slow


def _refunds(shop: Shop, sub_order_id: int) -> list[Refund]:
    with shop.session() as session:
        return list(session.scalars(sa.select(Refund).where(Refund.sub_order_id == sub_order_id)))


class CancelNotConfirmed:
    """A marketplace that answers the cancel call with 2xx and the order as it was (a plugin
    refused the transition, or the cancel runs in the background and has not happened yet)."""

    def __init__(self, inner: MarketplaceAdapter) -> None:
        self.inner = inner

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        return self.inner.order_status(marketplace_order_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _placed_wallet_part(shop: Shop, slug: str) -> tuple[Order, MarketplaceOrder, MarketplaceOrder]:
    """A wallet-paid order of one item from `slug`, placed there: (order, its sub-order as
    charged, the sub-order as placed)."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [(slug, 3, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    place_sub_order(
        shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    placed = shop.sub_order(order, slug)
    assert placed.status in PLACED_SUB_ORDER_STATUSES
    return order, sub, placed


@pytest.mark.parametrize("slug", ["shopwave", "kiondo"])
def test_a_cancel_call_whose_reply_does_not_confirm_refunds_nothing(shop: Shop, slug: str) -> None:
    order, sub, placed = _placed_wallet_part(shop, slug)

    outcome = cancel_on_marketplace(
        shop.session_factory,
        sub.id,
        CancelNotConfirmed(adapter_for_marketplace(placed.marketplace)),  # type: ignore[arg-type]
        reason="test",
    )

    assert outcome == CancelOutcome.UNKNOWN
    assert shop.sub_order(order, slug).status in PLACED_SUB_ORDER_STATUSES
    assert _refunds(shop, sub.id) == []
    check_invariants(shop)


class IgnoresKeysLosesFirstReply:
    """A real cart adapter configured as for a marketplace that ignores Idempotency-Key
    (`retry_unknown_writes = false`), whose first order reply is lost after the cart was made."""

    def __init__(self, inner: MarketplaceAdapter) -> None:
        self.inner = inner
        self.placements = 0

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        self.placements += 1
        placed = self.inner.place_order(request)
        if self.placements == 1:
            raise OutcomeUnknown("reply lost after the cart was created", marketplace="test")
        return placed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("slug", ["dummymart", "fakestore"])
def test_an_unknown_placement_on_a_marketplace_that_ignores_keys_is_never_sent_again(
    shop: Shop, slug: str
) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [(slug, 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    adapters: dict[int, IgnoresKeysLosesFirstReply] = {}

    def adapter_for(marketplace: Marketplace) -> MarketplaceAdapter:
        if marketplace.id not in adapters:
            config = marketplace_config(marketplace, {"retry_unknown_writes": False})
            adapters[marketplace.id] = IgnoresKeysLosesFirstReply(build_adapter(config))
        return adapters[marketplace.id]  # type: ignore[return-value]

    first = place_sub_order(
        shop.session_factory, sub.id, adapter_for=adapter_for, final_attempt=False
    )
    second = place_sub_order(
        shop.session_factory, sub.id, adapter_for=adapter_for, final_attempt=False
    )

    assert first == PlacementResult.RETRY
    assert second == PlacementResult.NEEDS_ATTENTION
    [adapter] = adapters.values()
    assert adapter.placements == 1  # resending would make a second cart there
    sub = shop.sub_order(order, slug)
    assert sub.status == SubOrderStatus.NEEDS_ATTENTION
    assert len(held_orders(shop, slug, sub, order)) == 1
    assert _refunds(shop, sub.id) == []


@pytest.mark.parametrize(("hours_later", "resent"), [(0.5, True), (2, False)])
def test_an_unknown_placement_is_resent_with_its_key_only_while_the_marketplace_remembers_it(
    shop: Shop, hours_later: float, resent: bool
) -> None:
    """DummyJSON carts cannot be asked by reference; this one honours idempotency keys for an
    hour. The attempt after a lost reply resends with the same key within the hour (the
    marketplace answers with the cart it made), later it goes to an operator instead."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    adapters: dict[int, IgnoresKeysLosesFirstReply] = {}

    def adapter_for(marketplace: Marketplace) -> MarketplaceAdapter:
        if marketplace.id not in adapters:
            config = marketplace_config(marketplace, {"idempotency_key_retention_hours": 1})
            adapters[marketplace.id] = IgnoresKeysLosesFirstReply(build_adapter(config))
        return adapters[marketplace.id]  # type: ignore[return-value]

    first = place_sub_order(
        shop.session_factory, sub.id, adapter_for=adapter_for, final_attempt=False
    )
    later = utc_now() + timedelta(hours=hours_later)
    second = place_sub_order(
        shop.session_factory,
        sub.id,
        adapter_for=adapter_for,
        final_attempt=False,
        now=lambda: later,
    )

    assert first == PlacementResult.RETRY
    [adapter] = adapters.values()
    sub = shop.sub_order(order, "dummymart")
    assert len(held_orders(shop, "dummymart", sub, order)) == 1
    assert _refunds(shop, sub.id) == []
    if resent:
        assert second == PlacementResult.PLACED
        assert adapter.placements == 2
        assert sub.status in PLACED_SUB_ORDER_STATUSES
    else:
        assert second == PlacementResult.NEEDS_ATTENTION
        assert adapter.placements == 1
        assert sub.status == SubOrderStatus.NEEDS_ATTENTION
        assert "remembers idempotency keys" in (sub.last_error or "")


class LosesEveryReply:
    """The marketplace takes every order, and every reply is lost."""

    def __init__(self, inner: MarketplaceAdapter) -> None:
        self.inner = inner

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        self.inner.place_order(request)
        raise OutcomeUnknown("reply lost after the order was created", marketplace="test")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_order_found_by_reference_on_the_last_attempt_keeps_the_configured_tolerance(
    shop: Shop,
) -> None:
    """Found after its reply was lost, the order is judged by the same overcharge tolerance as
    one whose reply arrived (5% here, not the 1% default)."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 4, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.knobs("kiondo", order_price_change_pct=3)
    [sub] = order.charged_sub_orders

    result = place_sub_order(
        shop.session_factory,
        sub.id,
        adapter_for=lambda market: LosesEveryReply(adapter_for_marketplace(market)),  # type: ignore[arg-type,return-value]
        final_attempt=True,
        overcharge_tolerance_bps=500,
    )

    sub = shop.sub_order(order, "kiondo")
    assert result in (PlacementResult.PLACED, PlacementResult.RECONCILED)
    assert sub.status in PLACED_SUB_ORDER_STATUSES
    assert sub.accepted_amount_minor is not None and sub.accepted_amount_minor > sub.amount_minor
    assert _refunds(shop, sub.id) == []
    check_invariants(shop)


@pytest.mark.parametrize("slug", ["shopwave", "kiondo"])
def test_an_order_found_cancelled_by_reference_is_not_taken_for_a_placement(
    shop: Shop, slug: str
) -> None:
    """The marketplace took the order, the reply was lost, and it cancelled the order before we
    asked: what the reconciliation finds holds nothing to ship, so the share is refunded, not
    captured."""
    user = shop.make_user()
    shop.fill_cart(user, [(slug, 5, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    [sub] = order.charged_sub_orders
    lost = LosesEveryReply(adapter_for_marketplace(shop.sub_order(order, slug).marketplace))

    first = place_sub_order(
        shop.session_factory, sub.id, adapter_for=lambda market: lost, final_attempt=False
    )
    [held] = held_orders(shop, slug, shop.sub_order(order, slug), order)
    cancelled = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/{slug}/{held['number']}/cancel",
        timeout=10,
    )
    assert cancelled.status_code == 200, cancelled.text
    second = place_sub_order(
        shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=False
    )

    assert first == PlacementResult.RETRY
    assert second == PlacementResult.CANCELLED
    sub = shop.sub_order(order, slug)
    assert sub.status == SubOrderStatus.CANCELLED
    assert [r.amount_minor for r in _refunds(shop, sub.id)] == [sub.charge_minor]
    payment = shop.order(order.number).payment
    assert payment is not None and payment.captured_minor == 0  # voided, never captured
    # Why, in the shopper's words on the order page, not our status value ("… holds the order
    # as cancelled").
    market = sub.marketplace.name
    assert sub.last_error == f"{market} had already cancelled the order, so nothing will ship."
    page = text_of(shop.client_for(user).get(f"/orders/{order.number}").get_data(as_text=True))
    assert f"{market} had already cancelled the order" in page
    assert "holds the order as" not in page
    check_invariants(shop)


class RecordsFindOrder:
    """The real adapter, remembering the `sent_since` each find_order was given."""

    def __init__(self, inner: MarketplaceAdapter) -> None:
        self.inner = inner
        self.placements = 0
        self.sent_since: list[datetime | None] = []

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        self.placements += 1
        self.inner.place_order(request)
        raise OutcomeUnknown("reply lost after the order was created", marketplace="test")

    def find_order(
        self, reference: str, *, sent_since: datetime | None = None
    ) -> PlacedOrder | None:
        self.sent_since.append(sent_since)
        return self.inner.find_order(reference, sent_since=sent_since)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_placement_in_doubt_older_than_the_woocommerce_lookback_goes_to_an_operator(
    shop: Shop,
) -> None:
    """WooCommerce's find_order lists only the last `order_lookback_hours`: for an attempt whose
    first send may be older, an empty listing proves nothing, so it is never taken for "no such
    order" (that would place the order twice)."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    adapters: dict[int, RecordsFindOrder] = {}

    def adapter_for(marketplace: Marketplace) -> MarketplaceAdapter:
        if marketplace.id not in adapters:
            options = {"retry_unknown_writes": False, "order_lookback_hours": 72}
            adapters[marketplace.id] = RecordsFindOrder(
                build_adapter(marketplace_config(marketplace, options))
            )
        return adapters[marketplace.id]  # type: ignore[return-value]

    first = place_sub_order(
        shop.session_factory, sub.id, adapter_for=adapter_for, final_attempt=False
    )
    assert first == PlacementResult.RETRY
    # The reconciliation runs four days after the first send; the store's search does not see
    # the order (core WooCommerce search ignores meta), so only the listing could tell.
    created = utc_now() - timedelta(hours=96)
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub.id)
            .values(created_at=created)
        )
    shop.knobs("kiondo", search_lag_ms=60_000)
    try:
        second = place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for, final_attempt=False
        )
    finally:
        shop.knobs("kiondo", search_lag_ms=0)

    assert second == PlacementResult.NEEDS_ATTENTION
    [adapter] = adapters.values()
    assert adapter.placements == 1
    [asked_since] = adapter.sent_since
    assert asked_since is not None
    assert abs(asked_since.replace(tzinfo=None) - created.replace(tzinfo=None)) < timedelta(
        seconds=1
    )
    sub = shop.sub_order(order, "kiondo")
    assert sub.status == SubOrderStatus.NEEDS_ATTENTION
    assert len(held_orders(shop, "kiondo", sub, order)) == 1
    assert _refunds(shop, sub.id) == []


class CancelsThenLosesTheReply:
    """A marketplace that cancels the order, loses the reply, and cannot be asked just then."""

    def __init__(self, inner: MarketplaceAdapter) -> None:
        self.inner = inner

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        self.inner.cancel_order(marketplace_order_id)
        raise OutcomeUnknown("read timeout after the cancel was sent")

    def order_status(self, marketplace_order_id: str) -> OrderState:
        raise Transient("connection refused")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RefusesAlreadyCancelled:
    """A marketplace that refuses to cancel an order it has cancelled already (Shopify's
    orderCancel userError; a store's 4xx)."""

    def __init__(self, inner: MarketplaceAdapter) -> None:
        self.inner = inner

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        raise Rejected("the order is already cancelled")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("slug", ["shopwave", "kiondo"])
def test_a_cancel_refused_because_an_earlier_unanswered_one_took_effect_refunds_the_share(
    shop: Shop, slug: str
) -> None:
    """The first cancel call cancelled the order but its reply was lost (and the marketplace
    could not be asked); the retry is refused because the order is cancelled already. That is a
    cancellation, not a refusal: the share is refunded and the shopper is not told it ships."""
    order, sub, placed = _placed_wallet_part(shop, slug)
    adapter = adapter_for_marketplace(placed.marketplace)

    first = cancel_on_marketplace(
        shop.session_factory, sub.id, CancelsThenLosesTheReply(adapter), reason="test"
    )
    second = cancel_on_marketplace(
        shop.session_factory, sub.id, RefusesAlreadyCancelled(adapter), reason="test"
    )

    assert (first, second) == (CancelOutcome.UNKNOWN, CancelOutcome.CANCELLED)
    assert shop.sub_order(order, slug).status == SubOrderStatus.CANCELLED
    assert [r.amount_minor for r in _refunds(shop, sub.id)] == [placed.charge_minor]
    check_invariants(shop)


class RefusesAndCannotBeAsked(RefusesAlreadyCancelled):
    """Refuses the cancel (the order is cancelled already), and cannot be asked just then."""

    def order_status(self, marketplace_order_id: str) -> OrderState:
        raise Transient("connection refused")


@pytest.mark.parametrize("slug", ["shopwave", "kiondo"])
def test_a_cancel_refused_while_the_order_cannot_be_read_is_unknown_not_refused(
    shop: Shop, slug: str
) -> None:
    """A refusal may be about the order being cancelled already (an earlier cancel whose reply
    was lost): only the order's status there tells. When it cannot be read, the outcome is
    unknown, not refused: a refusal would capture the share and tell the shopper it ships,
    although the marketplace may have cancelled it. Asked again once it can be read, the
    cancellation is found and the share refunded."""
    order, sub, placed = _placed_wallet_part(shop, slug)
    adapter = adapter_for_marketplace(placed.marketplace)

    first = cancel_on_marketplace(
        shop.session_factory, sub.id, CancelsThenLosesTheReply(adapter), reason="test"
    )
    unreadable = cancel_on_marketplace(
        shop.session_factory, sub.id, RefusesAndCannotBeAsked(adapter), reason="test"
    )

    assert (first, unreadable) == (CancelOutcome.UNKNOWN, CancelOutcome.UNKNOWN)
    assert shop.sub_order(order, slug).status in PLACED_SUB_ORDER_STATUSES
    assert _refunds(shop, sub.id) == []

    readable = cancel_on_marketplace(
        shop.session_factory, sub.id, RefusesAlreadyCancelled(adapter), reason="test"
    )
    assert readable == CancelOutcome.CANCELLED
    assert [r.amount_minor for r in _refunds(shop, sub.id)] == [placed.charge_minor]
    check_invariants(shop)
