"""OneCart's own stock holds at marketplaces whose orders take no stock (DummyMart's DummyJSON
carts, Fake Store), on the real sandbox, the real checkout form and the test database (SQLite,
or PostgreSQL with DATABASE_URL): two checkouts of the last unit sell it once, a checkout that
loses the race between its re-check and its order is told so with nothing charged, units come
back when a sub-order is cancelled or refused, the cart says how many are left, a catalog
refresh counts nothing twice, and ShopWave (whose orders take its stock) is not held here.
(`shop` checks every order's books at teardown.)"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient

from commerce.attention import cancelled_by_operator
from commerce.cancellation import request_cancellation
from commerce.catalog_sync import sync_catalog
from commerce.checkout import OutcomeKind, submit_checkout
from commerce.fx import FxTable
from commerce.marketplace_access import adapter_for_marketplace, lookup_adapter_for_marketplace
from commerce.models import CartItem, OfferStockHold, Product, User
from commerce.offer_stock import order_takes_stock, release_stock, stock_left
from commerce.order_models import MarketplaceOrder, Order, RefundStatus, SubOrderStatus
from commerce.payments.gateway import Authorization, AuthorizationRequest
from commerce.payments.stripe_gateway import StripeGateway, stripe_client_from_settings
from commerce.placement import place_sub_order
from commerce.wallet import wallet_balance
from onecart.settings import get_settings
from tests.checkout.shop import Shop, stripe_client


def _held(shop: Shop, product: Product) -> int:
    with shop.session() as session:
        return int(
            session.scalar(
                sa.select(OfferStockHold.held_units).where(OfferStockHold.product_id == product.id)
            )
            or 0
        )


def _left(shop: Shop, product: Product) -> int | None:
    with shop.session() as session:
        return stock_left(session.get(Product, product.id))


def _dummymart_offer(shop: Shop, *, at_least: int) -> tuple[int, int]:
    """(index in the shop's DummyMart offers, published stock) of the least-stocked offer with
    `at_least`..99 units (a cart line holds at most 99), its stock put in the catalog."""
    found = [
        (offer.stock, index)
        for index, offer in enumerate(shop.catalog.offers["dummymart"])
        if offer.stock is not None and at_least <= offer.stock <= 99
    ]
    assert found, f"no DummyMart offer with {at_least}..99 units among the shop's offers"
    stock, index = min(found)
    # The catalog holds the figure DummyJSON publishes, as the ingest writes it (the shop's
    # seed leaves it to checkout's live re-check).
    with shop.session() as session, session.begin():
        session.get(Product, shop.product("dummymart", index).id).stock = stock
    return index, stock


def _buy(shop: Shop, index: int, quantity: int) -> None:
    """Another shopper's order of `quantity` units of the offer, through the checkout."""
    buyer = shop.make_user()
    shop.fill_cart(buyer, [("dummymart", index, quantity)])
    shop.checkout(shop.client_for(buyer), payment_method="stripe", test_card="pm_card_visa")


def _sell_all_but(shop: Shop, index: int, stock: int, left: int) -> None:
    """Other shoppers' orders take all but `left` of the offer's `stock` units."""
    if stock > left:
        _buy(shop, index, stock - left)


def _buyer_ready(shop: Shop, index: int, quantity: int) -> tuple[User, FlaskClient, dict[str, str]]:
    """A shopper with `quantity` of the offer in the cart and the checkout form they were shown."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", index, quantity)])
    client = shop.client_for(user)
    return user, client, shop.checkout_form(client)


def _orders_of(shop: Shop, user: User) -> list[Order]:
    return [order for order in shop.orders() if order.user_id == user.id]


def test_adapters_say_whose_orders_take_stock() -> None:
    assert order_takes_stock("shopify") and order_takes_stock("woocommerce")
    assert not order_takes_stock("dummyjson") and not order_takes_stock("fakestore")
    assert not order_takes_stock("no-such-format")


def test_two_checkouts_for_the_last_unit_sell_it_once(shop: Shop) -> None:
    index, stock = _dummymart_offer(shop, at_least=1)
    product = shop.product("dummymart", index)
    _sell_all_but(shop, index, stock, 1)
    assert (_held(shop, product), _left(shop, product)) == (stock - 1, 1)
    buyers = [_buyer_ready(shop, index, 1) for _ in range(2)]
    barrier = threading.Barrier(len(buyers))

    def post(buyer: tuple[User, FlaskClient, dict[str, str]]) -> tuple[int, str]:
        _user, client, form = buyer
        barrier.wait()
        response = shop.submit(client, form, payment_method="wallet")
        return response.status_code, response.get_data(as_text=True)

    with ThreadPoolExecutor(max_workers=len(buyers)) as executor:
        answers = list(executor.map(post, buyers))

    assert sorted(status for status, _ in answers) == [303, 409]
    [(loser_html, (loser, _, _))] = [
        (html, buyer)
        for (status, html), buyer in zip(answers, buyers, strict=True)
        if status == 409
    ]
    # Lost at the re-check (the other order was in) or at the hold itself: out of stock, either way.
    assert "out of stock" in loser_html.lower()
    assert _orders_of(shop, loser) == []
    with shop.session() as session:
        assert wallet_balance(session, session.get(User, loser.id)).minor == 500_000
    assert (_held(shop, product), _left(shop, product)) == (stock, 0)
    [winner] = [buyer for buyer in buyers if buyer[0].id != loser.id]
    [order] = _orders_of(shop, winner[0])
    [sub_order] = order.sub_orders
    assert sub_order.stock_held and [item.quantity for item in sub_order.items] == [1]


class TakesTheUnitsFirst:
    """The real Stripe gateway (localstripe); before it authorizes, another shopper's checkout
    completes: the race lost between this checkout's live re-check and its order."""

    def __init__(self, inner: StripeGateway, other_checkout: Callable[[], None]) -> None:
        self.inner = inner
        self.method = inner.method
        self.other_checkout = other_checkout
        self.voided: list[str] = []

    def authorize(self, request: AuthorizationRequest) -> Authorization:
        self.other_checkout()
        return self.inner.authorize(request)

    def void(self, provider_reference: str, *, attempt: int | None = 0) -> None:
        self.voided.append(provider_reference)
        self.inner.void(provider_reference, attempt=attempt)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_checkout_whose_units_went_meanwhile_is_told_and_nothing_is_charged(shop: Shop) -> None:
    index, stock = _dummymart_offer(shop, at_least=3)
    product = shop.product("dummymart", index)
    _sell_all_but(shop, index, stock, 3)
    late, late_client, late_form = _buyer_ready(shop, index, 3)
    quick, quick_client, quick_form = _buyer_ready(shop, index, 2)

    def quick_buys_two() -> None:
        answer = shop.submit(quick_client, quick_form, payment_method="wallet")
        assert answer.status_code == 303, answer.get_data(as_text=True)[:2000]

    gateway = TakesTheUnitsFirst(
        StripeGateway(stripe_client_from_settings(get_settings())), quick_buys_two
    )

    outcome = submit_checkout(
        shop.session_factory,
        shop.card_submission(late, late_form),
        fx=FxTable(per_usd={}),
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=gateway,
    )

    assert outcome.kind == OutcomeKind.CHANGED
    assert "Only 1 of “" in (outcome.message or "")
    assert "left at DummyMart" in (outcome.message or "")
    assert "Nothing was charged" in (outcome.message or "")
    [change] = outcome.changes
    assert (change.product_id, change.old_quantity, change.new_quantity) == (product.id, 3, 1)
    [voided] = gateway.voided
    assert stripe_client().v1.payment_intents.retrieve(voided).status == "canceled"
    assert _orders_of(shop, late) == []
    assert len(_orders_of(shop, quick)) == 1
    assert (_held(shop, product), _left(shop, product)) == (stock - 1, 1)
    with shop.session() as session:
        [line] = session.scalars(sa.select(CartItem).where(CartItem.user_id == late.id))
        assert line.quantity == 1

    # The re-rendered checkout shows the lowered line; confirmed, the last unit is sold.
    page = late_client.get("/checkout").get_data(as_text=True)
    again = shop.submit(
        late_client,
        {**shop.checkout_form(late_client), "payment_method": "wallet"},
    )
    assert "DummyMart" in page
    assert again.status_code == 303, again.get_data(as_text=True)[:2000]
    assert (_held(shop, product), _left(shop, product)) == (stock, 0)


def test_the_cart_says_how_many_are_left_after_our_own_orders(shop: Shop) -> None:
    index, stock = _dummymart_offer(shop, at_least=2)
    product = shop.product("dummymart", index)
    _sell_all_but(shop, index, stock, 1)
    user = shop.make_user(wallet=Decimal("5000"))
    client = shop.client_for(user)

    added = client.post(
        "/cart/add", data={"product_id": str(product.id), "quantity": "5"}, follow_redirects=True
    )

    assert "Only 1 left at DummyMart; your cart has 1." in added.get_data(as_text=True)
    with shop.session() as session:
        [line] = session.scalars(sa.select(CartItem).where(CartItem.user_id == user.id))
        assert line.quantity == 1
        # A line put in the cart before the others bought (the cart holds no stock).
        line.quantity = 3
        session.commit()
    cart = client.get("/cart").get_data(as_text=True)
    assert "Only 1 left at DummyMart: checkout will lower this line to 1." in cart
    product_page = client.get(f"/product/{product.relation_token}").get_data(as_text=True)
    assert "(1 left)" in product_page

    _buy(shop, index, 1)
    refused = client.post(
        "/cart/add", data={"product_id": str(product.id), "quantity": "1"}, follow_redirects=True
    )
    assert "is out of stock at DummyMart, so your cart was not changed." in refused.get_data(
        as_text=True
    )
    assert "Out of stock." in client.get("/cart").get_data(as_text=True)


def test_cancelling_before_placement_gives_the_units_back_once(shop: Shop) -> None:
    index, stock = _dummymart_offer(shop, at_least=2)
    product = shop.product("dummymart", index)
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", index, 2)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    assert (_held(shop, product), _left(shop, product)) == (2, stock - 2)

    with shop.session() as session, session.begin():
        request_cancellation(session, user.id, order.number)

    sub_order = shop.sub_order(order, "dummymart")
    assert sub_order.status == SubOrderStatus.CANCELLED and not sub_order.stock_held
    assert (_held(shop, product), _left(shop, product)) == (0, stock)
    with shop.session() as session, session.begin():
        again = session.get(MarketplaceOrder, sub_order.id)
        assert release_stock(session, again) is False  # given back once, not twice
    assert _held(shop, product) == 0


def test_a_refused_placement_is_refunded_and_gives_the_units_back(shop: Shop) -> None:
    index, stock = _dummymart_offer(shop, at_least=2)
    product = shop.product("dummymart", index)
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", index, 2), ("fakestore", 0, 3)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    fakestore = shop.product("fakestore", 0)
    # Fake Store publishes no stock: its units are counted, without a limit.
    assert (_held(shop, product), _held(shop, fakestore)) == (2, 3)
    assert _left(shop, fakestore) is None
    shop.knobs("dummymart", refuse_next_orders=1)

    place_sub_order(
        shop.session_factory,
        shop.sub_order(order, "dummymart").id,
        adapter_for=adapter_for_marketplace,
        final_attempt=True,
    )

    refused = shop.sub_order(order, "dummymart")
    assert refused.status == SubOrderStatus.FAILED and not refused.stock_held
    assert (_held(shop, product), _left(shop, product)) == (0, stock)
    assert _held(shop, fakestore) == 3  # the other part goes ahead, its units still held
    fresh = shop.order(order.number)
    assert fresh.payment is not None
    [refund] = [r for r in fresh.payment.refunds if r.sub_order_id == refused.id]
    assert (refund.amount_minor, refund.status) == (refused.charge_minor, RefundStatus.SUCCEEDED)


def test_a_catalog_refresh_of_the_published_stock_counts_nothing_twice(shop: Shop) -> None:
    index, stock = _dummymart_offer(shop, at_least=2)
    product = shop.product("dummymart", index)
    _sell_all_but(shop, index, stock, 1)
    row = {
        "marketplace": "dummymart",
        "external_id": product.external_id,
        "title": product.title,
        "price_minor": product.price_minor,
        "currency": product.currency,
        "product_url": product.product_url,
        "image_url": product.image_url,
        "available": True,
        # DummyJSON's figure after our orders: unchanged, it never counts them.
        "stock": stock,
    }
    group = (product.relation_token, "gtin", Decimal("1.00")) if product.relation_token else None
    for _ in range(2):
        with shop.session() as session, session.begin():
            report = sync_catalog(
                session,
                marketplaces=[c for c in shop.catalog.configs if c.slug == "dummymart"],
                offers=[row],
                groups={("dummymart", product.external_id): group} if group else {},
                complete_marketplaces=(),
            )
            assert report.skipped == []

    with shop.session() as session:
        assert session.get(Product, product.id).stock == stock
    assert (_held(shop, product), _left(shop, product)) == (stock - 1, 1)


def test_shopwave_orders_take_its_own_stock_and_are_not_held_again(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 2)])
    product = shop.product("shopwave", 0)
    stock_before = _left(shop, product)

    order = shop.checkout(shop.client_for(user), payment_method="wallet")

    assert not shop.sub_order(order, "shopwave").stock_held
    assert _held(shop, product) == 0
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(OfferStockHold)) == 0
        assert (
            stock_left(session.get(Product, product.id)) == session.get(Product, product.id).stock
        )
    assert stock_before is None or stock_before >= 2


def test_a_form_for_units_others_bought_since_says_which_item_is_out_of_stock(shop: Shop) -> None:
    """The other order was in before this submit's first look at the cart: nothing in it can be
    paid any more, and the page says which item and why (not only that nothing can be paid)."""
    index, stock = _dummymart_offer(shop, at_least=1)
    product = shop.product("dummymart", index)
    _sell_all_but(shop, index, stock, 1)
    user, client, form = _buyer_ready(shop, index, 1)
    _buy(shop, index, 1)

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is nothing in your cart that can be paid through OneCart." in html
    assert f"“\u2068{product.title}\u2069” (DummyMart): Out of stock. Nothing was charged." in html
    assert "Nothing in your cart can be bought right now:" in html
    assert "Your cart is empty" not in html
    assert _orders_of(shop, user) == []
    with shop.session() as session:
        assert wallet_balance(session, session.get(User, user.id)).minor == 500_000


def _two_dummymart_offers(shop: Shop) -> tuple[int, int]:
    """Two DummyMart offers with 2..99 units each, their stock put in the catalog."""
    found = [
        index
        for index, offer in enumerate(shop.catalog.offers["dummymart"])
        if offer.stock is not None and 2 <= offer.stock <= 99
    ]
    assert len(found) >= 2, "fewer than two DummyMart offers with 2..99 units"
    with shop.session() as session, session.begin():
        for index in found[:2]:
            offer = shop.catalog.offers["dummymart"][index]
            session.get(Product, shop.product("dummymart", index).id).stock = offer.stock
    return found[0], found[1]


def test_a_placement_that_leaves_a_line_out_gives_back_only_that_lines_units(shop: Shop) -> None:
    kept_index, left_out_index = _two_dummymart_offers(shop)
    kept, left_out = (
        shop.product("dummymart", kept_index),
        shop.product("dummymart", left_out_index),
    )
    # Another shopper's order holds one unit of the offer that will be left out: a give-back
    # beyond this order's own units would take that one too.
    _buy(shop, left_out_index, 1)
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", kept_index, 2), ("dummymart", left_out_index, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    assert (_held(shop, kept), _held(shop, left_out)) == (2, 2)
    # DummyJSON drops an id it does not know and still answers 201: a partial placement.
    shop.knobs("dummymart", delisted_products=[left_out.external_id], drop_unknown_lines=True)
    try:
        place_sub_order(
            shop.session_factory,
            shop.sub_order(order, "dummymart").id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
        )
    finally:
        shop.knobs("dummymart", delisted_products=[], drop_unknown_lines=False)

    placed = shop.sub_order(order, "dummymart")
    assert placed.status == SubOrderStatus.PLACED and placed.stock_held
    assert "left out" in (placed.last_error or "") or placed.accepted_charge_minor < (
        placed.charge_minor
    )
    # The left-out unit will never ship: it is for sale again; the other shopper's is not.
    assert (_held(shop, kept), _held(shop, left_out)) == (2, 1)

    # Cancelled later: what it still holds (the kept line) is given back, and only that.
    with shop.session() as session, session.begin():
        assert release_stock(session, session.get(MarketplaceOrder, placed.id)) is True
    assert (_held(shop, kept), _held(shop, left_out)) == (0, 1)


def test_a_placement_that_accepts_nothing_gives_every_unit_back(shop: Shop) -> None:
    index, stock = _dummymart_offer(shop, at_least=2)
    product = shop.product("dummymart", index)
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", index, 2)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    assert _held(shop, product) == 2
    # DummyJSON answers 201 with an empty cart; it cannot cancel it, so the share is refunded
    # (nothing of it ships) and an operator told.
    shop.knobs("dummymart", delisted_products=[product.external_id], drop_unknown_lines=True)
    try:
        place_sub_order(
            shop.session_factory,
            shop.sub_order(order, "dummymart").id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
        )
    finally:
        shop.knobs("dummymart", delisted_products=[], drop_unknown_lines=False)

    empty = shop.sub_order(order, "dummymart")
    assert empty.accepted_charge_minor == 0
    # Nothing of it ships: its units are for sale again, whatever became of the cancel.
    assert (_held(shop, product), _left(shop, product)) == (0, stock)


def _overcharged_dummymart_order(shop: Shop, index: int, quantity: int) -> Order:
    """A wallet order of `quantity` units that DummyMart bills 20% above what was paid: the
    placement cancels it, DummyMart cannot cancel (no cancel API), so it stays placed and its
    order is flagged for an operator."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", index, quantity)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.knobs("dummymart", order_price_change_pct=20)
    try:
        place_sub_order(
            shop.session_factory,
            shop.sub_order(order, "dummymart").id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
        )
    finally:
        shop.knobs("dummymart", order_price_change_pct=0)
    return shop.order(order.number)


def test_an_unconfirmed_overcharge_cancel_keeps_the_units_until_an_operator_confirms_it(
    shop: Shop,
) -> None:
    """While nobody knows whether DummyMart cancelled the overcharged order, it may ship: its
    units stay held. Once an operator confirms with DummyMart that it is cancelled, the part
    ends cancelled, its share is refunded, and its units come back, exactly once (a second
    confirmation, or one racing it, gives nothing back twice; another shopper's unit stays)."""
    index, stock = _dummymart_offer(shop, at_least=4)
    product = shop.product("dummymart", index)
    _buy(shop, index, 1)  # another shopper's unit, which must stay held throughout
    order = _overcharged_dummymart_order(shop, index, 2)
    sub = shop.sub_order(order, "dummymart")
    assert sub.status == SubOrderStatus.PLACED and sub.stock_held
    assert order.attention_reason is not None and "refused" in order.attention_reason
    assert _held(shop, product) == 3  # unknown whether it ships: not given back

    with ThreadPoolExecutor(max_workers=2) as pool:
        confirmed = list(
            pool.map(
                lambda _: cancelled_by_operator(shop.session_factory, sub.id, operator="ops"),
                range(2),
            )
        )

    assert sorted(confirmed) == [False, True]
    ended = shop.sub_order(shop.order(order.number), "dummymart")
    assert ended.status == SubOrderStatus.CANCELLED and not ended.stock_held
    assert (_held(shop, product), _left(shop, product)) == (1, stock - 1)
    refunds = [refund for refund in shop.order(order.number).payment.refunds]
    assert sum(refund.amount_minor for refund in refunds) == ended.charge_minor
    assert all(refund.status == RefundStatus.SUCCEEDED for refund in refunds)

    assert cancelled_by_operator(shop.session_factory, sub.id, operator="ops") is False
    assert _held(shop, product) == 1


def test_an_operator_cannot_cancel_a_part_that_is_not_placed(shop: Shop) -> None:
    """Only a placed part can be recorded cancelled by its marketplace: one still pending (its
    placement to come) or already ended is left alone, and its units with it."""
    index, _ = _dummymart_offer(shop, at_least=2)
    product = shop.product("dummymart", index)
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", index, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    pending = shop.sub_order(order, "dummymart")
    assert pending.status == SubOrderStatus.PENDING

    assert cancelled_by_operator(shop.session_factory, pending.id, operator="ops") is False
    assert shop.sub_order(shop.order(order.number), "dummymart").status == SubOrderStatus.PENDING
    assert _held(shop, product) == 1


def test_delivered_units_stay_held_after_a_later_catalog_fetch(shop: Shop) -> None:
    """DummyJSON never lowers its published stock for an order (its carts change nothing), so a
    catalog fetch after a part was placed and delivered says nothing about our units: the hold
    must outlive it. Were it ended by the fetch, the delivered units would be for sale again and
    the last unit sold twice (stock_left back to the whole published figure)."""
    index, stock = _dummymart_offer(shop, at_least=2)
    product = shop.product("dummymart", index)
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", index, stock)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    sub_id = shop.sub_order(order, "dummymart").id
    place_sub_order(
        shop.session_factory, sub_id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    with shop.session() as session, session.begin():
        delivered = session.get(MarketplaceOrder, sub_id)
        assert delivered is not None and delivered.status == SubOrderStatus.PLACED
        delivered.status = SubOrderStatus.DELIVERED
    row = {
        "marketplace": "dummymart",
        "external_id": product.external_id,
        "title": product.title,
        "price_minor": product.price_minor,
        "currency": product.currency,
        "product_url": product.product_url,
        "image_url": product.image_url,
        "available": True,
        "stock": stock,  # what DummyJSON publishes after our order: the same figure
    }
    group = (product.relation_token, "gtin", Decimal("1.00")) if product.relation_token else None
    with shop.session() as session, session.begin():
        sync_catalog(
            session,
            marketplaces=[c for c in shop.catalog.configs if c.slug == "dummymart"],
            offers=[row],
            groups={("dummymart", product.external_id): group} if group else {},
            complete_marketplaces=(),
        )

    assert (_held(shop, product), _left(shop, product)) == (stock, 0)
