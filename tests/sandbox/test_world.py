"""Unit tests of the sandbox's pure logic: the world generator, knobs, order stages, cursors."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from sandbox.assortment import CATEGORIES
from sandbox.assortment_schema import MIN_MODEL_CAPACITY, model_template_capacity
from sandbox.bazaar import decode_cursor, encode_cursor
from sandbox.knobs import KnobBoard, KnobError, coerce_knobs, parse_cli_knob
from sandbox.malformations import MALFORMATION_KINDS
from sandbox.marketplaces import MARKETPLACE_SLUGS
from sandbox.orders import CANCELLED, DELIVERED, PENDING, PROCESSING, SHIPPED, OrderBook, OrderLine
from sandbox.store_habits import round_local_price
from sandbox.world import World
from sandbox.world_products import gtin_check_digit, is_valid_gtin13


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, total_offers=1200)


def test_gtin_check_digit_matches_known_barcodes() -> None:
    assert gtin_check_digit("400638133393") == 1  # 4006381333931, the GS1 textbook example
    assert is_valid_gtin13("4006381333931")
    assert not is_valid_gtin13("4006381333932")
    assert not is_valid_gtin13("400638133393")


def test_every_offer_carries_a_valid_and_unique_gtin(world: World) -> None:
    gtins_by_product: dict[str, str] = {}
    for slug in MARKETPLACE_SLUGS:
        for index in range(world.offer_count(slug)):
            product = world.offer(slug, index).product
            assert is_valid_gtin13(product.gtin), (slug, index, product.gtin)
            gtins_by_product[product.key] = product.gtin
    assert len(set(gtins_by_product.values())) == len(gtins_by_product)


def test_model_numbers_are_unique_per_brand(world: World) -> None:
    seen: dict[tuple[str, str], str] = {}
    for slug in MARKETPLACE_SLUGS:
        for index in range(world.offer_count(slug)):
            product = world.offer(slug, index).product
            owner = seen.setdefault((product.brand, product.model), product.key)
            assert owner == product.key, f"{product.brand} {product.model} names two products"


def test_every_model_template_can_number_ten_million_products() -> None:
    for category in CATEGORIES:
        if category.is_book:
            continue
        for brand in category.brands:
            assert model_template_capacity(brand.model_template) >= MIN_MODEL_CAPACITY, brand


def test_offers_are_split_evenly_and_add_up_to_the_total() -> None:
    world = World(seed=1, total_offers=12_003)
    counts = [world.offer_count(slug) for slug in MARKETPLACE_SLUGS]
    assert sum(counts) == 12_003
    assert max(counts) - min(counts) <= 1


def test_same_seed_gives_the_same_offers_and_another_seed_does_not() -> None:
    first, again, other = World(7, 1200), World(7, 1200), World(8, 1200)
    sample = [(slug, index) for slug in MARKETPLACE_SLUGS for index in (0, 17, 199)]
    assert [first.offer(s, i) for s, i in sample] == [again.offer(s, i) for s, i in sample]
    assert [first.offer(s, i).title for s, i in sample] != [
        other.offer(s, i).title for s, i in sample
    ]


def test_offer_999999_of_a_million_is_computed_lazily_and_deterministically() -> None:
    world = World(seed=42, total_offers=1_000_000)
    slug, index = world.locate_offer(999_999)
    assert (slug, index) == ("bazaar", world.offer_count("bazaar") - 1)
    offer = world.offer(slug, index)
    # Only the one product behind the offer was generated: nothing was materialized.
    assert world.products_built == 1
    assert offer == World(seed=42, total_offers=1_000_000).offer(slug, index)
    assert is_valid_gtin13(offer.product.gtin)
    with pytest.raises(IndexError):
        world.locate_offer(1_000_000)


def test_shared_products_span_three_or_more_marketplaces(world: World) -> None:
    marketplaces_by_product: dict[str, set[str]] = defaultdict(set)
    for slug in MARKETPLACE_SLUGS:
        for index in range(world.offer_count(slug)):
            marketplaces_by_product[world.product_key(slug, index)].add(slug)
    spans = Counter(len(slugs) for slugs in marketplaces_by_product.values())
    assert sum(count for size, count in spans.items() if size >= 3) >= 50
    assert max(spans) <= 5


def test_default_size_has_hundreds_of_groups_on_three_marketplaces() -> None:
    world = World(seed=42, total_offers=12_000)
    marketplaces_by_product: dict[str, set[str]] = defaultdict(set)
    for slug in MARKETPLACE_SLUGS:
        for index in range(world.offer_count(slug)):
            marketplaces_by_product[world.product_key(slug, index)].add(slug)
    assert sum(1 for slugs in marketplaces_by_product.values() if len(slugs) >= 3) >= 300


def test_a_shared_product_has_one_gtin_but_local_prices_and_titles(world: World) -> None:
    offers = {}
    for slug in MARKETPLACE_SLUGS:
        for index in range(world.offer_count(slug)):
            if world.product_key(slug, index) == "s0":
                offers[slug] = world.offer(slug, index)
    assert len(offers) >= 2
    assert len({offer.product.gtin for offer in offers.values()}) == 1
    assert {offer.currency for offer in offers.values()} <= {"USD", "KES", "EUR", "NGN", "GBP"}
    assert len({offer.title for offer in offers.values()}) > 1
    for offer in offers.values():
        assert offer.product.model.replace("-", "") in offer.title.replace("-", "")


def test_malformed_records_hit_the_rate_exactly_and_cover_every_kind(world: World) -> None:
    kinds = Counter(
        world.malformation(slug, index, 0.02)
        for slug in MARKETPLACE_SLUGS
        for index in range(world.offer_count(slug))
    )
    assert sum(count for kind, count in kinds.items() if kind) == 24  # 2% of 1200
    assert set(kinds) - {None} == set(MALFORMATION_KINDS)
    assert all(world.malformation("shopwave", i, 0.0) is None for i in range(200))
    assert all(world.malformation("shopwave", i, 1.0) for i in range(200))


def test_price_epochs_change_about_one_percent_of_offers_each() -> None:
    world = World(seed=3, total_offers=6000)
    slug = "dummymart"
    base = [world.offer(slug, i).price_minor for i in range(1000)]
    epoch_1 = [world.offer(slug, i, price_epoch=1).price_minor for i in range(1000)]
    epoch_2 = [world.offer(slug, i, price_epoch=2).price_minor for i in range(1000)]
    changed_1 = sum(a != b for a, b in zip(base, epoch_1, strict=True))
    changed_2 = sum(a != b for a, b in zip(epoch_1, epoch_2, strict=True))
    assert 3 <= changed_1 <= 25
    assert 3 <= changed_2 <= 25
    assert all(price > 0 for price in epoch_2)


def test_price_drift_changes_only_the_live_price_share() -> None:
    world = World(seed=3, total_offers=6000)
    drifted = sum(
        world.offer("kiondo", i, price_drift=0.5).price_minor
        != world.offer("kiondo", i).price_minor
        for i in range(400)
    )
    assert 140 <= drifted <= 260


@pytest.mark.parametrize(
    ("currency", "amount", "ending", "expected"),
    [
        ("USD", "19.7", 0, 1999),
        ("EUR", "12.2", 2, 1190),
        ("KES", "12480", 0, 1249900),
        ("NGN", "15210", 0, 1500000),
    ],
)
def test_local_prices_end_the_way_shops_price(
    currency: str, amount: str, ending: int, expected: int
) -> None:
    from decimal import Decimal

    assert round_local_price(currency, Decimal(amount), ending) == expected


def test_knob_values_are_validated_before_anything_changes() -> None:
    board = KnobBoard(["shopwave", "kiondo"])
    with pytest.raises(KnobError):
        board.update("shopwave", {"latency_ms": 5, "error_rate": 2})
    assert board.get("shopwave").latency_ms == 0
    with pytest.raises(KnobError):
        coerce_knobs({"no_such_knob": 1})
    with pytest.raises(KeyError):
        board.update("nowhere", {"down": True})
    board.update("all", {"down": True})
    assert board.get("kiondo").down and board.get("shopwave").down
    board.reset()
    assert not board.get("kiondo").down


def test_knob_gate_consumes_bursts_and_sleeps_for_latency() -> None:
    slept: list[float] = []
    board = KnobBoard(["shopwave"], sleep=slept.append)
    board.update("shopwave", {"burst_429": 2, "latency_ms": 250})
    faults = [board.gate("shopwave") for _ in range(3)]
    assert [f.status if f else None for f in faults] == [429, 429, None]
    assert faults[0] is not None and faults[0].retry_after == 1
    assert slept == [0.25, 0.25, 0.25]
    board.update("shopwave", {"fail_next_orders": 1})
    assert board.plan_placement("shopwave").fail_before is True
    assert board.plan_placement("shopwave").fail_before is False


def test_cli_knobs_parse_json_values_and_reject_bad_ones() -> None:
    assert parse_cli_knob("shopwave.latency_ms=200") == ("shopwave", "latency_ms", 200)
    assert parse_cli_knob("all.down=true") == ("all", "down", True)
    with pytest.raises(KnobError):
        parse_cli_knob("shopwave.latency_ms")
    with pytest.raises(KnobError):
        parse_cli_knob("shopwave.error_rate=lots")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


LINE = OrderLine(0, "1", "Mug", "SK1", 2, 1999)


def test_order_stages_follow_time_and_never_go_back() -> None:
    clock = FakeClock()
    book = OrderBook(seed=1, clock=clock)
    order, created = book.place(
        "shopwave",
        idempotency_key="k1",
        reference="r1",
        currency="USD",
        lines=[LINE],
        cancel_rate=0,
    )
    assert created and order.total_minor == 3998
    seen = []
    for _ in range(5):
        progress = book.progress(order, 10)
        seen.append((progress.status, progress.shipment))
        clock.now += 10
    assert seen == [
        (PENDING, None),
        (PROCESSING, None),
        (SHIPPED, "confirmed"),
        (SHIPPED, "in_transit"),
        (DELIVERED, "delivered"),
    ]
    assert book.progress(order, 1000).status == DELIVERED  # a longer step does not undo delivery
    assert book.progress(order, 10).tracking_number


def test_delayed_orders_wait_two_steps_in_transit_and_keep_every_step_with_its_time() -> None:
    clock = FakeClock()
    book = OrderBook(seed=1, clock=clock)
    order, _ = book.place(
        "shopwave",
        idempotency_key="d1",
        reference="r1",
        currency="USD",
        lines=[LINE],
        cancel_rate=0,
        delay_rate=1,
    )
    steps = []
    for _ in range(7):
        steps.append(book.progress(order, 10).shipment)
        clock.now += 10
    assert steps == [None, None, "confirmed", "in_transit", "delayed", "delayed", "delivered"]
    progress = book.progress(order, 10)
    assert [step for step, _ in progress.shipment_events] == [
        "confirmed",
        "in_transit",
        "delayed",
        "delivered",
    ]
    times = [moment for _, moment in progress.shipment_events]
    assert times == sorted(times) and progress.delivered_at == times[-1]


def test_advance_moves_an_order_on_without_the_clock_and_never_past_a_cancel() -> None:
    book = OrderBook(seed=1, clock=FakeClock())
    order, _ = book.place(
        "kiondo", idempotency_key=None, reference=None, currency="KES", lines=[LINE], cancel_rate=0
    )
    assert book.advance(order, 2, 3600).shipment == "confirmed"
    assert book.advance(order, 1, 3600).shipment == "in_transit"
    assert book.advance(order, 20, 3600).status == DELIVERED
    with pytest.raises(ValueError):
        book.advance(order, 0, 3600)
    doomed, _ = book.place(
        "kiondo", idempotency_key=None, reference=None, currency="KES", lines=[LINE], cancel_rate=1
    )
    assert book.advance(doomed, 3, 3600).status == CANCELLED
    assert book.advance(doomed, 1, 3600).status == CANCELLED


def test_replayed_idempotency_key_returns_the_first_order() -> None:
    book = OrderBook(seed=1, clock=FakeClock())
    first, _ = book.place(
        "kiondo", idempotency_key="k", reference="r", currency="KES", lines=[LINE], cancel_rate=0
    )
    again, created = book.place(
        "kiondo", idempotency_key="k", reference="r", currency="KES", lines=[LINE], cancel_rate=0
    )
    assert again is first and not created
    assert book.find_by_reference("kiondo", "r") == [first]


def test_cancel_works_until_shipping_and_doomed_orders_cancel_themselves() -> None:
    clock = FakeClock()
    book = OrderBook(seed=1, clock=clock)
    early, _ = book.place(
        "kiondo", idempotency_key=None, reference=None, currency="KES", lines=[LINE], cancel_rate=0
    )
    assert book.cancel(early, 10).cancelled
    assert book.progress(early, 10).status == CANCELLED
    assert book.cancel(early, 10).cancelled  # cancelling twice is harmless
    late, _ = book.place(
        "kiondo", idempotency_key=None, reference=None, currency="KES", lines=[LINE], cancel_rate=0
    )
    clock.now += 25
    assert not book.cancel(late, 10).cancelled
    doomed, _ = book.place(
        "kiondo", idempotency_key=None, reference=None, currency="KES", lines=[LINE], cancel_rate=1
    )
    assert book.progress(doomed, 10).status == PENDING
    clock.now += 25
    assert book.progress(doomed, 10).status == CANCELLED


def test_bazaar_cursors_round_trip_and_reject_forgeries() -> None:
    assert decode_cursor(encode_cursor(150)) == 150
    for forged in ("not-a-cursor", encode_cursor(3)[:-1] + "!", "djI6MTA"):
        with pytest.raises(ValueError):
            decode_cursor(forged)


def test_tv_model_numbers_carry_the_screen_size() -> None:
    world = World(seed=42, total_offers=12_000)
    tvs = [
        world.offer("shopwave", i).product
        for i in range(world.offer_count("shopwave"))
        if world.offer("shopwave", i).product.category.slug == "televisions"
    ]
    assert tvs
    for tv in tvs:
        assert tv.spec.removesuffix("-inch") in tv.model, (tv.spec, tv.model)
