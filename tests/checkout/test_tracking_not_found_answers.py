"""A marketplace answering "no such order" (404) for one order has answered: its API is up.

That order keeps its own handling (asked again at the back of the line, never blamed for an
outage nor backed off), but for whose failure another order's is, and for the marketplace's
own failures, the 404 counts as an answer like any status: it tells that another order's 500
in the same pass is that order's, and it ends a run of the marketplace's failures. Real
database; the marketplaces' answers come from fake adapters (tests/checkout/tracking_fakes.py),
ShopWave's with no question about its order API as a whole, so only the answers can tell."""

from __future__ import annotations

from commerce.models import utc_now
from tests.checkout.shop import Shop
from tests.checkout.tracking_fakes import (
    MINUTE,
    WHOLE,
    FakeMarketplaces,
    backoff_over,
    marketplace_row,
    placed_orders,
    server_error,
    stored_sub_order,
    sub_orders,
)


def test_a_404_for_another_order_makes_a_500_that_orders_own_failure(shop: Shop) -> None:
    fake = FakeMarketplaces(no_check={"shopwave"})
    placed_orders(shop, 2)
    failing, unknown = sub_orders(shop, "shopwave")
    assert failing.marketplace_order_id is not None and unknown.marketplace_order_id is not None
    fake.failing[failing.marketplace_order_id] = server_error()
    fake.unknown.add(unknown.marketplace_order_id)

    asked = [id_ for id_ in fake.track(shop, WHOLE) if id_.startswith("shopwave")]

    assert asked == [failing.marketplace_order_id, unknown.marketplace_order_id]
    market = marketplace_row(shop, "shopwave")
    assert (market.tracking_failures, market.tracking_retry_at) == (0, None)
    assert (
        stored_sub_order(shop, failing.id).poll_failures == 1
    )  # its own, the 404 answered after it
    # The unknown order keeps its own handling: asked, no answer recorded, no backoff.
    after = stored_sub_order(shop, unknown.id)
    assert (after.poll_failures, after.last_polled_at) == (0, None)
    assert after.last_poll_attempt_at is not None


def test_a_404_to_a_backed_off_marketplaces_probe_ends_its_failures(shop: Shop) -> None:
    fake = FakeMarketplaces(down={"shopwave"}, no_check={"shopwave"})
    placed_orders(shop, 2)
    fake.track(shop, WHOLE)
    assert marketplace_row(shop, "shopwave").tracking_failures == 1
    fake.down.clear()
    for sub in sub_orders(shop, "shopwave"):
        assert sub.marketplace_order_id is not None
        fake.unknown.add(sub.marketplace_order_id)
    backoff_over(shop, "shopwave")

    fake.track(shop, WHOLE)  # one probe, answered "no such order"

    market = marketplace_row(shop, "shopwave")
    assert (market.tracking_failures, market.tracking_failing_since) == (0, None)
    assert market.tracking_retry_at is None or market.tracking_retry_at <= utc_now() + MINUTE
