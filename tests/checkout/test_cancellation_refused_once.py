"""A shopper is told once that a part of their cancelled order goes ahead, whichever paths answer.

test_tracking_and_cancel's shopper cancellation (a ShopWave part the marketplace cancels, a
DummyMart part it cannot) once ended with two `cancellation_refused` notices under load. The
job's notice says, in one message, the parts cancelled and the parts going ahead: the
cancelled part's sentence, merged into it, also gave it that part's id. The notice is written
`once` per order, kind and part, and the job asks for the order-level one (no part), so a
second run of the job did not find it and told the shopper again; the abandoned-cancellation
sweep, which looks for the job's notice (no part) or its own (that part), did not find it
either. The job runs twice when its outbox row is dispatched by the web request and by a sweep
at once (one RQ job id, enqueued twice), or when RQ retries it after a failure past its
notice (settlement, mail). Each path is driven here by hand, in-process, against the sandbox
(wallet payments, no queue)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from adapters.base import MarketplaceAdapter, OrderState, Rejected
from commerce.cancellation import carry_out_cancellation, refusal_notice, request_cancellation
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.marketplace_access import adapter_for_marketplace
from commerce.models import Marketplace, utc_now
from commerce.notification_models import Notification
from commerce.order_models import MarketplaceOrder, Order, Refund, SubOrderStatus
from commerce.placement import PlacementResult, place_sub_order
from commerce.sweeper import SweepPolicy, sweep
from tests.checkout.shop import Shop


def _cancelled_with_one_part_going_ahead(shop: Shop) -> Order:
    """ShopWave's and DummyMart's parts placed on the sandbox, the shopper's cancellation
    requested (DummyMart carts cannot be cancelled)."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 1, 1), ("dummymart", 6, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    for sub in order.charged_sub_orders:
        placed = place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
        assert placed == PlacementResult.PLACED
    with shop.session() as session, session.begin():
        request_cancellation(session, user.id, order.number)
    return order


def _run_cancellation_job(shop: Shop, order: Order) -> None:
    carry_out_cancellation(
        shop.session_factory, order.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )


def _refusals(shop: Shop, order: Order) -> list[str]:
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(Notification.message)
                .where(
                    Notification.order_id == order.id, Notification.kind == "cancellation_refused"
                )
                .order_by(Notification.id)
            )
        )


def _job_ended_long_ago(shop: Shop, order: Order) -> None:
    long_ago = utc_now() - timedelta(hours=2)
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(OutboxMessage)
            .where(
                OutboxMessage.order_id == order.id,
                OutboxMessage.topic == OutboxTopic.CANCEL_ORDER,
            )
            .values(created_at=long_ago, dispatched_at=long_ago, job_id="onecart-cancel-done")
        )


def test_the_cancellation_job_run_twice_tells_the_refusal_once(shop: Shop) -> None:
    order = _cancelled_with_one_part_going_ahead(shop)

    _run_cancellation_job(shop, order)
    _run_cancellation_job(shop, order)  # the same job again: enqueued twice, or retried

    [told] = _refusals(shop, order)
    assert told.startswith("Your ShopWave items were cancelled")
    assert told.endswith(" DummyMart could not cancel its part of your order, so it goes ahead.")
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED
    assert shop.sub_order(order, "dummymart").status == SubOrderStatus.PLACED


def test_the_sweep_after_the_job_does_not_tell_the_refusal_again(shop: Shop) -> None:
    """The job told the shopper and ended; the abandoned-cancellation sweep, looking for
    refusals never told, must find that one told."""
    order = _cancelled_with_one_part_going_ahead(shop)
    _run_cancellation_job(shop, order)
    _job_ended_long_ago(shop, order)

    for _ in range(2):
        sweep(
            shop.session_factory,
            lambda message: f"job-{message.id}",
            policy=SweepPolicy(cancel_job_ended_after=timedelta(hours=1)),
            adapter_for=adapter_for_marketplace,
        )

    assert len(_refusals(shop, order)) == 1
    assert shop.sub_order(order, "dummymart").cancel_outcome == "refused"


def test_two_runs_of_the_cancellation_job_at_once_tell_each_answer_once(shop: Shop) -> None:
    """The job enqueued twice runs on two workers at once: the second run does all its work
    while the first is sending ShopWave's cancel (driven here by running it inside that call).
    ShopWave is cancelled and refunded once, and the shopper is told once that it was
    cancelled and once that DummyMart's part goes ahead."""
    order = _cancelled_with_one_part_going_ahead(shop)
    second_run: list[Order] = [order]

    def adapter_for(market: Marketplace) -> MarketplaceAdapter:
        adapter = adapter_for_marketplace(market)
        if market.slug != "shopwave":
            return adapter
        real_cancel = adapter.cancel_order

        def cancel_order(marketplace_order_id: str) -> OrderState:
            if second_run:
                _run_cancellation_job(shop, second_run.pop())
            return real_cancel(marketplace_order_id)

        adapter.cancel_order = cancel_order  # type: ignore[method-assign]
        return adapter

    carry_out_cancellation(
        shop.session_factory, order.id, adapter_for=adapter_for, final_attempt=True
    )

    assert not second_run  # the second run did run inside the first's cancel
    shopwave = shop.sub_order(order, "shopwave")
    assert shopwave.status == SubOrderStatus.CANCELLED
    with shop.session() as session:
        refunds = list(
            session.scalars(
                sa.select(Refund.amount_minor).where(Refund.sub_order_id == shopwave.id)
            )
        )
        messages = list(
            session.scalars(
                sa.select(Notification.message).where(Notification.order_id == order.id)
            )
        )
    assert refunds == [shopwave.charge_minor]
    assert len([m for m in messages if "ShopWave items were cancelled" in m]) == 1
    assert len(_refusals(shop, order)) == 1


def test_a_later_run_of_the_job_does_not_repeat_a_refusal_the_sweep_told(shop: Shop) -> None:
    """The job recorded DummyMart's refusal and was killed before telling it; the sweep told
    the shopper (a notice for that part). A later run of the job (queued again when a part in
    doubt is found placed) must not tell it again as the order's."""
    order = _cancelled_with_one_part_going_ahead(shop)
    dummymart = shop.sub_order(order, "dummymart")
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == dummymart.id)
            .values(cancel_outcome="refused")
        )
    _job_ended_long_ago(shop, order)
    sweep(
        shop.session_factory,
        lambda message: f"job-{message.id}",
        policy=SweepPolicy(cancel_job_ended_after=timedelta(hours=1)),
        adapter_for=adapter_for_marketplace,
    )
    assert len(_refusals(shop, order)) == 1

    _run_cancellation_job(shop, order)

    [told] = _refusals(shop, order)
    assert told == "DummyMart could not cancel its part of your order, so it goes ahead."


def _one_part_answered_after_the_notice(shop: Shop) -> tuple[Order, MarketplaceOrder]:
    """The job's notice told DummyMart's part goes ahead while ShopWave's part was not among the
    parts that run asked (stood in for here by taking it out of the run's view: it was failed,
    and an operator found it placed afterwards). ShopWave's part is placed again, its
    cancellation still to be answered, and ShopWave will refuse it."""
    order = _cancelled_with_one_part_going_ahead(shop)
    shopwave = shop.sub_order(order, "shopwave")
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == shopwave.id)
            .values(status=SubOrderStatus.FAILED)
        )
    _run_cancellation_job(shop, order)
    [told] = _refusals(shop, order)
    assert told.endswith("DummyMart could not cancel its part of your order, so it goes ahead.")
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == shopwave.id)
            .values(status=SubOrderStatus.PLACED)
        )
    return order, shopwave


class _RefusingCancels:
    """A marketplace's real adapter (the sandbox over HTTP) whose cancel is refused. A wrapper:
    the real adapter is cached per process, and a changed one would refuse every later test's
    cancels too."""

    def __init__(self, adapter: MarketplaceAdapter) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> object:
        return getattr(self._adapter, name)

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        raise Rejected("the order is being packed")


def _refusing(market: Marketplace) -> MarketplaceAdapter:
    """ShopWave refuses the cancel and shows the order not cancelled (it is processing)."""
    adapter = adapter_for_marketplace(market)
    if market.slug == "shopwave":
        return _RefusingCancels(adapter)  # type: ignore[return-value]
    return adapter


def test_a_part_refused_after_the_orders_notice_is_told_once_by_a_later_run(shop: Shop) -> None:
    """A later run of the job finds ShopWave's part refused: the order's notice (DummyMart's)
    exists already, and `notify(once=True)` for the order returned it, so ShopWave's refusal
    was never told. It is told once (DummyMart's is not repeated), whatever runs follow."""
    order, shopwave = _one_part_answered_after_the_notice(shop)

    for _ in range(2):
        carry_out_cancellation(
            shop.session_factory, order.id, adapter_for=_refusing, final_attempt=True
        )
    _job_ended_long_ago(shop, order)
    sweep(
        shop.session_factory,
        lambda message: f"job-{message.id}",
        policy=SweepPolicy(cancel_job_ended_after=timedelta(hours=1)),
        adapter_for=_refusing,
    )

    told = _refusals(shop, order)
    assert len(told) == 2, told
    assert told[0].endswith("DummyMart could not cancel its part of your order, so it goes ahead.")
    assert "ShopWave" in told[1] and "DummyMart" not in told[1]
    assert shop.sub_order(order, "shopwave").cancel_outcome == "refused"
    assert shop.sub_order(order, "shopwave").id == shopwave.id


def test_the_sweep_tells_a_recorded_refusal_the_orders_notice_did_not_name(shop: Shop) -> None:
    """A later run recorded ShopWave's refusal and was killed before telling it. The sweep took
    the order's notice (which names DummyMart only) for a notice about every part, and never
    told ShopWave's. It tells it once; DummyMart's is not repeated."""
    order, shopwave = _one_part_answered_after_the_notice(shop)
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == shopwave.id)
            .values(cancel_outcome="refused")
        )
    _job_ended_long_ago(shop, order)

    for _ in range(2):
        sweep(
            shop.session_factory,
            lambda message: f"job-{message.id}",
            policy=SweepPolicy(cancel_job_ended_after=timedelta(hours=1)),
            adapter_for=_refusing,
        )
    _run_cancellation_job(shop, order)

    told = _refusals(shop, order)
    assert told[1:] == ["ShopWave could not cancel its part of your order, so it goes ahead."]
    assert len(told) == 2


@pytest.mark.parametrize(
    ("names", "said"),
    [
        (["DummyMart"], "DummyMart could not cancel its part of your order, so it goes ahead."),
        (
            ["DummyMart", "Fake Store Berlin"],
            "DummyMart and Fake Store Berlin could not cancel their parts of your order, so "
            "they go ahead.",
        ),
        (
            ["A", "B", "C"],
            "A, B and C could not cancel their parts of your order, so they go ahead.",
        ),
    ],
)
def test_the_refusal_notice_names_one_marketplace_as_one_and_several_as_several(
    names: list[str], said: str
) -> None:
    """ "These marketplaces could not cancel their part of your order, so it goes ahead:
    DummyMart." named one marketplace as several, and several parts as one (shop20)."""
    assert refusal_notice(names) == said
