"""One sub-order whose status poll always fails (a 500 for that order alone) while its marketplace
answers the others backs off on its own: the marketplace keeps being tracked at every pass, the
order is asked again after one pass, then twice as long after each failure up to the cap, its
first answer ends it, and once it has failed for longer than a day its order is put on the
operator's list, once; nothing is refunded because a poll fails. A marketplace-wide outage
(a fresh order failing before any answer, a connection error, failures in a row) still backs
off the marketplace, and then no order is blamed. Real database; the marketplaces' answers come
from fake adapters (tests/checkout/tracking_fakes.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.base import BadPayload, Transient
from commerce import tracking
from commerce.models import Marketplace, utc_now
from commerce.order_models import Order, Refund, SubOrderStatus
from commerce.tracking_health import ORDER_FAILURE_ALERT_AFTER
from tests.checkout.shop import Shop
from tests.checkout.tracking_fakes import (
    MINUTE,
    POLICY,
    WHOLE,
    FakeMarketplaces,
    ids,
    marketplace_row,
    placed_orders,
    server_error,
    set_columns,
    stored_sub_order,
    sub_orders,
)


def _order_backoff_over(shop: Shop, sub_order_id: int) -> None:
    """Time passes: the sub-order's own backoff is over."""
    set_columns(shop, sub_order_id, poll_retry_at=utc_now() - MINUTE)


def _within(started: datetime, retry_at: datetime | None, wait: timedelta) -> bool:
    assert retry_at is not None
    return timedelta(0) <= retry_at - started - wait < timedelta(seconds=5)


def test_an_order_failing_alone_backs_off_and_its_marketplace_keeps_being_tracked(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    placed_orders(shop, 3)
    shopwave = sub_orders(shop, "shopwave")
    poisoned, healthy = shopwave[0], ids(shopwave[1:])
    assert poisoned.marketplace_order_id is not None
    fake.failing[poisoned.marketplace_order_id] = server_error()
    # It failed before (as when it was first found failing): at the back of the line.
    set_columns(shop, poisoned.id, last_poll_attempt_at=utc_now() - MINUTE)

    waits = []
    for number in range(4):
        started = utc_now()
        asked = fake.track(shop, WHOLE)
        # Every ShopWave order is asked, the failing one after the ones that answer.
        assert [id_ for id_ in asked if id_.startswith("shopwave")] == [
            *healthy,
            poisoned.marketplace_order_id,
        ]
        failing = stored_sub_order(shop, poisoned.id)
        assert failing.poll_failures == number + 1
        assert failing.poll_last_error == "Transient: 500 Internal Server Error"
        assert failing.poll_failing_since is not None and failing.last_polled_at is None
        waits.append((started, failing.poll_retry_at))
        # ShopWave itself is not backed off: the next pass asks its other orders, not this one.
        assert marketplace_row(shop, "shopwave").tracking_failures == 0
        next_pass = fake.track(shop, WHOLE)
        assert [id_ for id_ in next_pass if id_.startswith("shopwave")] == healthy
        _order_backoff_over(shop, poisoned.id)
    expected = [MINUTE, 2 * MINUTE, 4 * MINUTE, 4 * MINUTE]
    assert all(
        _within(started, at, wait) for (started, at), wait in zip(waits, expected, strict=True)
    )

    # Alone in a pass (it is the least recently asked), it is still the order's failure.
    assert fake.track(shop, replace(POLICY, batch_size=1)) == [poisoned.marketplace_order_id]
    assert stored_sub_order(shop, poisoned.id).poll_failures == 5
    assert marketplace_row(shop, "shopwave").tracking_failures == 0

    # It answers again: its failures are over, and it is asked at every pass.
    del fake.failing[poisoned.marketplace_order_id]
    _order_backoff_over(shop, poisoned.id)
    assert poisoned.marketplace_order_id in fake.track(shop, WHOLE)
    answered = stored_sub_order(shop, poisoned.id)
    assert (answered.poll_failures, answered.poll_failing_since) == (0, None)
    assert (answered.poll_retry_at, answered.poll_last_error) == (None, None)
    assert answered.last_polled_at is not None
    assert poisoned.marketplace_order_id in fake.track(shop, WHOLE)
    assert all(sub.status == SubOrderStatus.PLACED for sub in sub_orders(shop, "shopwave"))


def test_an_order_failing_alone_for_over_a_day_is_flagged_once_and_nothing_is_refunded(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    order_subs = placed_orders(shop, 2)
    poisoned = order_subs[0]["shopwave"]
    assert poisoned.marketplace_order_id is not None
    fake.failing[poisoned.marketplace_order_id] = server_error()
    set_columns(
        shop,
        poisoned.id,
        last_poll_attempt_at=utc_now() - MINUTE,
        poll_failures=3,
        poll_failing_since=utc_now() - ORDER_FAILURE_ALERT_AFTER + 10 * MINUTE,
        poll_retry_at=utc_now() - MINUTE,
    )

    # Failing, but not yet for a day: not flagged.
    fake.track(shop, WHOLE)
    with shop.session() as session:
        order = session.get(Order, poisoned.order_id)
        assert order is not None and order.attention_reason is None
    set_columns(
        shop, poisoned.id, poll_failing_since=utc_now() - ORDER_FAILURE_ALERT_AFTER - MINUTE
    )
    _order_backoff_over(shop, poisoned.id)
    fake.track(shop, WHOLE)
    with shop.session() as session:
        order = session.get(Order, poisoned.order_id)
        assert order is not None
        reason = order.attention_reason
        assert reason is not None
        assert f"ShopWave sub-order {poisoned.id}" in reason
        assert "nothing was refunded" in reason
        assert "500 Internal Server Error" in reason
        assert session.scalar(sa.select(sa.func.count()).select_from(Refund)) == 0
    assert marketplace_row(shop, "shopwave").tracking_failures == 0
    failing = stored_sub_order(shop, poisoned.id)
    assert failing.poll_flagged_at is not None and failing.status == SubOrderStatus.PLACED
    # The other order, answered every time, is not flagged.
    with shop.session() as session:
        other = session.get(Order, order_subs[1]["shopwave"].order_id)
        assert other is not None and other.attention_reason is None

    admin = shop.client_for(shop.make_user(is_admin=True))
    page = admin.get("/admin/attention").get_data(as_text=True)
    assert f"ShopWave sub-order {poisoned.id}" in page

    # An operator clears the flag (asks ShopWave); still failing, it is not flagged again.
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(Order).where(Order.id == poisoned.order_id).values(attention_reason=None)
        )
    _order_backoff_over(shop, poisoned.id)
    fake.track(shop, WHOLE)
    with shop.session() as session:
        order = session.get(Order, poisoned.order_id)
        assert order is not None and order.attention_reason is None
    assert stored_sub_order(shop, poisoned.id).poll_failures == 6


def test_a_marketplace_wide_outage_backs_off_the_marketplace_and_blames_no_order(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    placed_orders(shop, 5)
    shopwave = sub_orders(shop, "shopwave")
    known = shopwave[0]
    # One ShopWave order is known to fail on its own; then ShopWave goes down altogether.
    set_columns(
        shop, known.id, poll_failures=1, poll_failing_since=utc_now() - MINUTE, poll_retry_at=None
    )
    fake.down.add("shopwave")
    asked = [id_ for id_ in fake.track(shop, WHOLE) if id_.startswith("shopwave")]
    # The first order without failures of its own fails before any answer: ShopWave is down.
    assert asked == [shopwave[1].marketplace_order_id]
    assert marketplace_row(shop, "shopwave").tracking_failures == 1
    assert [sub.poll_failures for sub in sub_orders(shop, "shopwave")] == [1, 0, 0, 0, 0]


def test_failures_in_a_row_after_an_answer_back_off_the_marketplace_not_its_orders(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    placed_orders(shop, 5)
    shopwave = ids(sub_orders(shop, "shopwave"))
    # ShopWave answers its first order, then fails every next one with a 500.
    for id_ in shopwave[1:]:
        fake.failing[id_] = server_error()
    asked = [id_ for id_ in fake.track(shop, WHOLE) if id_.startswith("shopwave")]
    assert asked == shopwave[:4]
    assert marketplace_row(shop, "shopwave").tracking_failures == 1
    assert all(sub.poll_failures == 0 for sub in sub_orders(shop, "shopwave"))


def test_a_connection_error_after_an_answer_backs_off_the_marketplace(shop: Shop) -> None:
    fake = FakeMarketplaces()
    placed_orders(shop, 3)
    shopwave = ids(sub_orders(shop, "shopwave"))
    fake.failing[shopwave[1]] = Transient(
        "GET /orders: ConnectError: connection refused", marketplace="shopwave"
    )
    asked = [id_ for id_ in fake.track(shop, WHOLE) if id_.startswith("shopwave")]
    assert asked == shopwave[:2]
    market = marketplace_row(shop, "shopwave")
    assert market.tracking_failures == 1
    assert market.tracking_last_error == "Transient: GET /orders: ConnectError: connection refused"
    assert all(sub.poll_failures == 0 for sub in sub_orders(shop, "shopwave"))


def test_an_unreadable_reply_for_one_order_is_that_orders_failure(shop: Shop) -> None:
    fake = FakeMarketplaces()
    placed_orders(shop, 3)
    shopwave = sub_orders(shop, "shopwave")
    unreadable = shopwave[2]
    assert unreadable.marketplace_order_id is not None
    fake.failing[unreadable.marketplace_order_id] = BadPayload(
        "order without a status", marketplace="shopwave"
    )
    asked = [id_ for id_ in fake.track(shop, WHOLE) if id_.startswith("shopwave")]
    assert asked == ids(shopwave)
    assert marketplace_row(shop, "shopwave").tracking_failures == 0
    failing = stored_sub_order(shop, unreadable.id)
    assert failing.poll_failures == 1
    assert failing.poll_last_error == "BadPayload: order without a status"


def test_a_fresh_order_failing_first_in_a_pass_is_its_own_failure_when_the_next_answer(
    shop: Shop,
) -> None:
    """Never asked before, it is first in line; ShopWave answers the orders after it in the
    same pass, so the failure is the order's and ShopWave is not backed off even once."""
    fake = FakeMarketplaces()
    placed_orders(shop, 3)
    shopwave = sub_orders(shop, "shopwave")
    poisoned = shopwave[0]
    assert poisoned.marketplace_order_id is not None
    fake.failing[poisoned.marketplace_order_id] = server_error()

    asked = [id_ for id_ in fake.track(shop, WHOLE) if id_.startswith("shopwave")]

    assert asked == ids(shopwave)  # the poisoned one first: never asked, oldest
    assert marketplace_row(shop, "shopwave").tracking_failures == 0
    assert [sub.poll_failures for sub in sub_orders(shop, "shopwave")] == [1, 0, 0]
    assert fake.checked == []  # the other orders' answers told; no extra question
    # The next pass asks ShopWave's other orders as usual; the failing one waits its backoff.
    assert [id_ for id_ in fake.track(shop, WHOLE) if id_.startswith("shopwave")] == ids(
        shopwave[1:]
    )


def test_the_only_open_order_failing_is_its_own_failure_when_the_order_api_answers(
    shop: Shop,
) -> None:
    """No other open order to ask: ShopWave's order API is asked one question not about any
    order (check_orders_api), it answers, so the failure is the order's."""
    fake = FakeMarketplaces()
    [subs] = placed_orders(shop, 1)
    only = subs["shopwave"]
    assert only.marketplace_order_id is not None
    fake.failing[only.marketplace_order_id] = server_error()

    for failures in (1, 2):
        assert only.marketplace_order_id in fake.track(shop, WHOLE)
        assert fake.checked == ["shopwave"]
        assert marketplace_row(shop, "shopwave").tracking_failures == 0
        failing = stored_sub_order(shop, only.id)
        assert failing.poll_failures == failures
        assert failing.poll_last_error == "Transient: 500 Internal Server Error"
        _order_backoff_over(shop, only.id)
    # Kiondo's order answered each time and was never checked.
    assert stored_sub_order(shop, subs["kiondo"].id).last_polled_at is not None


def test_the_only_open_order_failing_while_the_order_api_fails_backs_off_the_marketplace(
    shop: Shop,
) -> None:
    fake = FakeMarketplaces()
    [subs] = placed_orders(shop, 1)
    only = subs["shopwave"]
    assert only.marketplace_order_id is not None
    fake.failing[only.marketplace_order_id] = server_error()
    fake.check_failing["shopwave"] = Transient(
        "502 Bad Gateway", marketplace="shopwave", status=502
    )

    fake.track(shop, WHOLE)

    assert fake.checked == ["shopwave"]
    market = marketplace_row(shop, "shopwave")
    assert market.tracking_failures == 1
    assert market.tracking_last_error == "Transient: 502 Bad Gateway"
    assert stored_sub_order(shop, only.id).poll_failures == 0  # an outage blames no order


def test_without_a_question_about_its_order_api_the_only_failing_order_backs_off_its_marketplace(
    shop: Shop,
) -> None:
    """A format with no cheap question about its order API as a whole (Unsupported) leaves
    nothing to tell the two apart: a fresh order failing with no other answer is taken for an
    outage, as before (an outage must not be blamed on orders)."""
    fake = FakeMarketplaces(no_check={"shopwave"})
    [subs] = placed_orders(shop, 1)
    only = subs["shopwave"]
    assert only.marketplace_order_id is not None
    fake.failing[only.marketplace_order_id] = server_error()

    fake.track(shop, WHOLE)

    assert marketplace_row(shop, "shopwave").tracking_failures == 1
    assert stored_sub_order(shop, only.id).poll_failures == 0


def test_a_503_is_the_marketplaces_failure_without_asking_further(shop: Shop) -> None:
    """Service Unavailable speaks for the whole service (overload, maintenance), after an
    answer too: ShopWave is backed off at once, no order is blamed and nothing more is asked."""
    fake = FakeMarketplaces()
    placed_orders(shop, 4)
    shopwave = ids(sub_orders(shop, "shopwave"))
    fake.failing[shopwave[1]] = Transient(
        "503 Service Unavailable", marketplace="shopwave", status=503
    )

    asked = [id_ for id_ in fake.track(shop, WHOLE) if id_.startswith("shopwave")]

    assert asked == shopwave[:2]
    assert marketplace_row(shop, "shopwave").tracking_failures == 1
    assert all(sub.poll_failures == 0 for sub in sub_orders(shop, "shopwave"))
    assert fake.checked == []


def test_without_a_question_about_its_order_api_an_order_failing_alone_is_no_answer(
    shop: Shop,
) -> None:
    """A backed-off marketplace's probe can only be its one order already failing on its own:
    without the order API check, that failure stays the order's, and the marketplace's own
    failures are not cleared (it answered nothing)."""
    fake = FakeMarketplaces(no_check={"shopwave"})
    [subs] = placed_orders(shop, 1)
    only = subs["shopwave"]
    assert only.marketplace_order_id is not None
    fake.failing[only.marketplace_order_id] = server_error()
    set_columns(
        shop, only.id, poll_failures=1, poll_failing_since=utc_now() - MINUTE, poll_retry_at=None
    )
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(Marketplace)
            .where(Marketplace.slug == "shopwave")
            .values(
                tracking_failures=2,
                tracking_failing_since=utc_now() - 5 * MINUTE,
                tracking_retry_at=utc_now() - MINUTE,
            )
        )

    assert only.marketplace_order_id in fake.track(shop, WHOLE)

    assert stored_sub_order(shop, only.id).poll_failures == 2
    assert marketplace_row(shop, "shopwave").tracking_failures == 2


def test_an_answer_the_database_cannot_apply_skips_that_order_not_the_marketplace(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Applying one order's answer fails in our own database (a write PostgreSQL refuses, a
    deadlock): the poll thread raised, the whole pass with it, and the order, rolled back, stayed
    first in line, so every pass died on it and the marketplace's other orders, their
    cancellations (and the refunds those bring) with them, were never applied again. That order
    is now counted as a failed poll of its own and the marketplace's others are applied."""
    fake = FakeMarketplaces()
    placed_orders(shop, 3)
    shopwave = sub_orders(shop, "shopwave")
    poisoned = shopwave[0]
    healthy = [sub.id for sub in shopwave[1:]]

    def apply_or_fail(session_factory: Any, sub_order_id: int, state: Any, **kwargs: Any) -> bool:
        if sub_order_id == poisoned.id:
            raise sa.exc.OperationalError("UPDATE marketplace_orders", {}, Exception("refused"))
        return real_apply(session_factory, sub_order_id, state, **kwargs)

    real_apply = tracking.apply_marketplace_state
    monkeypatch.setattr(tracking, "apply_marketplace_state", apply_or_fail)

    asked = fake.track(shop, WHOLE)

    assert poisoned.marketplace_order_id in asked
    assert all(stored_sub_order(shop, sub_id).last_polled_at is not None for sub_id in healthy)
    failed = stored_sub_order(shop, poisoned.id)
    assert failed.last_polled_at is None and failed.last_poll_attempt_at is not None
    assert failed.poll_failures == 1 and "OperationalError" in str(failed.poll_last_error)
    assert marketplace_row(shop, "shopwave").tracking_failures == 0
