"""A marketplace whose status API is down does not hold up the others' tracking, and is not
hammered: a failed poll is an attempt (the sub-order goes to the back of the line, its last
answer stays what it was), the marketplace backs off from one pass doubling to a cap, is then
retried with a single probe, and its first answer puts it back in the batches; none of its
sub-orders is ever dropped. Real database; the marketplaces' answers come from fake adapters
(ShopWave can be taken down)."""

from __future__ import annotations

from datetime import timedelta

from adapters.base import Capability, MarketplaceAdapter, OrderState, RateLimited
from commerce.models import Marketplace, utc_now
from commerce.order_models import SubOrderStatus
from commerce.tracking import track_open_sub_orders
from commerce.tracking_health import backoff_after
from commerce.tracking_schedule import TrackingPolicy
from storefront.jobs import JobPolicy
from tests.checkout.shop import Shop
from tests.checkout.tracking_fakes import (
    DAY,
    MINUTE,
    POLICY,
    FakeMarketplaces,
    backoff_over,
    deliver,
    ids,
    marketplace_row,
    placed_orders,
    set_columns,
    sub_orders,
)


def test_a_down_marketplace_does_not_starve_another_marketplaces_open_sub_orders(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    orders = placed_orders(shop, 3)
    # ShopWave's three open sub-orders were never answered; Kiondo's were, a minute ago, so
    # they come after ShopWave's in line and a batch of two holds only ShopWave's.
    for subs in orders:
        set_columns(shop, subs["kiondo"].id, last_polled_at=utc_now() - MINUTE)
        set_columns(shop, subs["kiondo"].id, last_poll_attempt_at=utc_now() - MINUTE)
    kiondo = ids([subs["kiondo"] for subs in orders])
    fake.down.add("shopwave")

    asked = [fake.track(shop) for _ in range(4)]
    # ShopWave is asked once, fails, and is left alone; Kiondo's are asked from the next pass.
    assert asked[0] == [orders[0]["shopwave"].marketplace_order_id]
    assert set(asked[1]) <= set(kiondo) and len(asked[1]) == 2
    assert kiondo[2] in asked[1] + asked[2]
    assert not any(id_.startswith("shopwave") for pass_ in asked[1:] for id_ in pass_)


def test_a_down_marketplace_does_not_starve_another_marketplaces_delivered_sub_orders(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    orders = placed_orders(shop, 2)
    # Every sub-order delivered and due for its daily refund check; ShopWave's are older.
    for subs in orders:
        deliver(shop, subs["shopwave"], answered=utc_now() - 3 * DAY)
        deliver(shop, subs["kiondo"], answered=utc_now() - 2 * DAY)
    fake.down.add("shopwave")

    asked = [fake.track(shop) for _ in range(3)]
    assert asked[0] == [orders[0]["shopwave"].marketplace_order_id]
    assert asked[1] == [orders[0]["kiondo"].marketplace_order_id]
    assert asked[2] == [orders[1]["kiondo"].marketplace_order_id]

    # Retried at every pass (its backoff over each time), ShopWave gets one probe and the
    # failed check goes to the back of the line, so its probes take turns; Kiondo's batch is
    # its own. A failed check then waits a day like an answered one.
    for subs in orders:
        deliver(shop, subs["shopwave"], answered=utc_now() - 3 * DAY)
        deliver(shop, subs["kiondo"], answered=utc_now() - 2 * DAY)
    seen: list[str] = []
    for _ in range(2):
        backoff_over(shop, "shopwave")
        asked = fake.track(shop)
        assert len([id_ for id_ in asked if id_.startswith("shopwave")]) == 1
        seen += asked
    assert set(ids([subs["shopwave"] for subs in orders])) <= set(seen)
    assert set(ids([subs["kiondo"] for subs in orders])) <= set(seen)
    backoff_over(shop, "shopwave")
    assert fake.track(shop) == []


def test_the_backoff_doubles_from_one_pass_to_its_cap_and_ends_at_the_first_answer(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    placed_orders(shop, 3)
    shopwave = sub_orders(shop, "shopwave")
    fake.down.add("shopwave")

    waits = []
    for _ in range(5):
        started = utc_now()
        asked = fake.track(shop)
        assert len([id_ for id_ in asked if id_.startswith("shopwave")]) == 1  # one probe
        # Backing off: the next pass does not ask ShopWave at all.
        assert not any(id_.startswith("shopwave") for id_ in fake.track(shop))
        market = marketplace_row(shop, "shopwave")
        assert market.tracking_retry_at is not None
        waits.append(market.tracking_retry_at - started)
        backoff_over(shop, "shopwave")
    expected = [MINUTE, 2 * MINUTE, 4 * MINUTE, 4 * MINUTE, 4 * MINUTE]
    assert all(timedelta(0) <= waits[n] - expected[n] < timedelta(seconds=5) for n in range(5))
    market = marketplace_row(shop, "shopwave")
    assert market.tracking_failures == 5
    assert market.tracking_failing_since is not None
    assert market.tracking_last_error == "Transient: 503 Service Unavailable"
    # Each probe was a different sub-order (the failed ones went to the back of the line), and
    # none of them has an answer recorded: last_polled_at stays the last answer.
    for sub in sub_orders(shop, "shopwave"):
        assert sub.last_poll_attempt_at is not None
        assert sub.last_polled_at is None
        assert sub.status == SubOrderStatus.PLACED

    # ShopWave answers again: the probe clears its failures, and the next pass asks all of its
    # sub-orders; none was dropped.
    fake.down.clear()
    assert len([id_ for id_ in fake.track(shop) if id_.startswith("shopwave")]) == 1
    market = marketplace_row(shop, "shopwave")
    assert (market.tracking_failures, market.tracking_failing_since) == (0, None)
    assert (market.tracking_retry_at, market.tracking_last_error) == (None, None)
    fake.track(shop, TrackingPolicy(batch_size=10))
    for sub in sub_orders(shop, "shopwave"):
        assert sub.last_polled_at is not None and sub.status == SubOrderStatus.PLACED
    assert len(sub_orders(shop, "shopwave")) == len(shopwave) == 3


def test_a_rate_limited_marketplace_waits_as_long_as_it_asks_within_the_cap(shop: Shop) -> None:
    fake = FakeMarketplaces()
    placed_orders(shop, 1)

    def limited(marketplace: Marketplace) -> MarketplaceAdapter:
        adapter = fake.adapter_for(marketplace)
        if marketplace.slug == "shopwave":

            class Limited:
                slug = "shopwave"
                capabilities = frozenset({Capability.TRACK})

                def order_status(self, marketplace_order_id: str) -> OrderState:
                    raise RateLimited("429", retry_after=150, marketplace="shopwave", status=429)

            return Limited()  # type: ignore[return-value]
        return adapter

    started = utc_now()
    track_open_sub_orders(shop.session_factory, adapter_for=limited, policy=POLICY)
    retry_at = marketplace_row(shop, "shopwave").tracking_retry_at
    assert retry_at is not None
    assert timedelta(seconds=150) <= retry_at - started < timedelta(seconds=155)


def test_an_order_the_marketplace_does_not_know_goes_to_the_back_without_a_backoff(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    orders = placed_orders(shop, 3)
    shopwave = ids([subs["shopwave"] for subs in orders])
    fake.unknown.add(shopwave[0])

    kiondo = ids([subs["kiondo"] for subs in orders])
    fake.unknown.add(shopwave[0])

    # Batches of two, never-asked sub-orders first: each pass one of each marketplace.
    assert sorted(fake.track(shop)) == [kiondo[0], shopwave[0]]
    # The unknown order was asked (no answer recorded): the next ones come first, and ShopWave
    # is not backed off for an answer about one order.
    assert sorted(fake.track(shop)) == [kiondo[1], shopwave[1]]
    assert sorted(fake.track(shop)) == [kiondo[2], shopwave[2]]
    market = marketplace_row(shop, "shopwave")
    assert (market.tracking_failures, market.tracking_retry_at) == (0, None)
    unknown = sub_orders(shop, "shopwave")[0]
    assert unknown.last_polled_at is None and unknown.last_poll_attempt_at is not None


def test_the_job_policy_sets_the_backoff_from_the_tracking_interval() -> None:
    tracking = JobPolicy.from_dict(
        {"track_interval_seconds": 30, "track_backoff_cap_seconds": 600}
    ).tracking_policy
    assert tracking.failure_backoff_first == timedelta(seconds=30)
    assert tracking.failure_backoff_cap == timedelta(minutes=10)
    defaults = JobPolicy().tracking_policy
    assert defaults.failure_backoff_cap == timedelta(hours=1)
    steps = [backoff_after(n, defaults) for n in (1, 2, 3, 6, 7, 1000)]
    minute = timedelta(minutes=1)
    assert steps == [minute, 2 * minute, 4 * minute, 32 * minute, 60 * minute, 60 * minute]
