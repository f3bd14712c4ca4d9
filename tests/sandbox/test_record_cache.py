"""The sandbox keeps rendered catalog records between reads (sandbox.record_cache): what it sends
must stay byte for byte what a sandbox that keeps nothing sends, and a price epoch or malformed
rate change must re-render (and change) exactly the records it touches."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from sandbox.app import SandboxApp, SandboxConfig, create_app
from sandbox.marketplaces import SERVED_SLUGS
from sandbox.record_cache import RecordCache
from sandbox.world import PRICE_EPOCH_PERIOD, World

OFFERS = 6000
BAZAAR_KEY = {"X-Api-Key": "test"}
NEXT_CURSOR = re.compile(rb'"next_cursor":"([^"]+)"')
# Every catalog read that goes through the kept records, and one that does not (select=).
PATHS = (
    "/naijamall/feed.xml",
    "/fakestore/products",
    "/fakestore/products?sort=desc&limit=333",
    "/sokoni/feeds/onecart/products.csv",
    "/dummymart/products?limit=0",
    "/dummymart/products?skip=150&limit=100",
    "/dummymart/products?skip=35&limit=30",
    "/dummymart/products?skip=35&limit=30&select=title,price",
)


def sandbox(**config: Any) -> tuple[SandboxApp, Client]:
    app = create_app(SandboxConfig(offers=OFFERS, price_epoch_seconds=0, **config))
    return app, Client(app)


def bazaar_pages(client: Client, limit: int) -> Iterator[bytes]:
    query = f"limit={limit}"
    while True:
        response = client.get(f"/bazaar/api/v1/listings?{query}", headers=BAZAAR_KEY)
        assert response.status_code == 200
        yield response.get_data()
        found = NEXT_CURSOR.search(response.get_data())
        if not found:
            return
        query = f"cursor={found.group(1).decode()}&limit={limit}"


def catalog_bodies(client: Client) -> dict[str, bytes]:
    bodies = {}
    for path in PATHS:
        response = client.get(path)
        assert response.status_code == 200, path
        bodies[path] = response.get_data()
    for limit in (100, 37):
        for number, body in enumerate(bazaar_pages(client, limit)):
            bodies[f"bazaar {limit} page {number}"] = body
    return bodies


def set_knobs(client: Client, **knobs: Any) -> None:
    assert client.post("/_sandbox/knobs/all", json=knobs).status_code == 200


def feed_items(body: bytes) -> list[bytes]:
    return body.split(b"<item>")[1:]


def dummyjson_records(client: Client) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    total = None
    while total is None or len(records) < total:
        body = client.get(f"/dummymart/products?limit=100&skip={len(records)}").get_data()
        page = json.loads(body.decode("utf-8", "surrogateescape"))
        records += page["products"]
        total = page["total"]
    return records


def repriced(world: World, slug: str, before: int, after: int) -> set[int]:
    """The records of `slug` whose price version differs between two epochs."""
    return {
        i
        for i in range(world.offer_count(slug))
        if (before + world.price_phase(slug, i)) // PRICE_EPOCH_PERIOD
        != (after + world.price_phase(slug, i)) // PRICE_EPOCH_PERIOD
    }


def state_so_far(app: SandboxApp) -> dict[str, Any]:
    knobs = app.knobs.get("dummymart")
    return {"price_epoch": knobs.price_epoch, "malformed_rate": knobs.malformed_rate}


def test_kept_records_answer_what_a_sandbox_keeping_nothing_answers() -> None:
    warm_app, warm = sandbox()
    for state in ({}, {"price_epoch": 1}, {"malformed_rate": 0.05}, {"price_epoch": 250}):
        if state:
            set_knobs(warm, **state)
        cold_app, cold = sandbox()
        cold_app.ctx.rendered = RecordCache(max_bytes=0)  # keeps nothing
        set_knobs(cold, **state_so_far(warm_app))
        first, second = catalog_bodies(warm), catalog_bodies(warm)
        expected = catalog_bodies(cold)
        assert first == expected and second == expected, state
        assert cold_app.ctx.rendered.kept_bytes == 0 and cold_app.ctx.rendered.reused == 0
    assert warm_app.ctx.rendered.reused > warm_app.ctx.rendered.rendered > 0


def test_a_price_epoch_changes_and_renders_again_exactly_the_repriced_records() -> None:
    app, client = sandbox()
    before = feed_items(client.get("/naijamall/feed.xml").get_data())
    rendered = app.ctx.rendered.rendered
    set_knobs(client, price_epoch=1)
    after = feed_items(client.get("/naijamall/feed.xml").get_data())

    changed = {i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new}
    expected = repriced(app.world, "naijamall", 0, 1)
    assert changed == expected and 0 < len(expected) < len(before) // 20
    assert app.ctx.rendered.rendered - rendered == len(expected)


def test_a_malformed_rate_change_changes_and_renders_again_exactly_the_records_it_touches() -> None:
    app, client = sandbox()
    before = dummyjson_records(client)
    rendered = app.ctx.rendered.rendered
    set_knobs(client, malformed_rate=0.05)
    after = dummyjson_records(client)

    changed = {i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new}
    old_kinds = app.world.malformations("dummymart", 0.02)
    new_kinds = app.world.malformations("dummymart", 0.05)
    touched = {i for i in set(old_kinds) | set(new_kinds) if old_kinds.get(i) != new_kinds.get(i)}
    assert changed == touched and touched
    assert app.ctx.rendered.rendered - rendered == len(touched)
    assert {after[i].get("price") for i in touched if new_kinds.get(i) == "missing_price"} == {None}


def test_each_advertised_address_has_records_of_its_own() -> None:
    app, client = sandbox(host="0.0.0.0", port=8800)  # links follow the address a client used
    one = client.get("/sokoni/feeds/onecart/products.csv", base_url="http://one.test").get_data()
    two = client.get("/sokoni/feeds/onecart/products.csv", base_url="http://two.test").get_data()
    assert b"http://one.test/sokoni/p/" in one and b"one.test" not in two
    assert two.replace(b"http://two.test", b"http://one.test") == one
    reused = app.ctx.rendered.reused
    again = client.get("/sokoni/feeds/onecart/products.csv", base_url="http://one.test")
    assert again.get_data() == one
    assert app.ctx.rendered.reused - reused == app.world.offer_count("sokoni")


def test_past_its_bound_the_cache_keeps_nothing_more_and_answers_alike() -> None:
    bounded_app, bounded = sandbox()
    bounded_app.ctx.rendered = RecordCache(max_bytes=200_000)
    _, unbounded = sandbox()
    assert catalog_bodies(bounded) == catalog_bodies(unbounded)
    assert 0 < bounded_app.ctx.rendered.kept_bytes <= 200_000
    set_knobs(bounded, price_epoch=7)
    set_knobs(unbounded, price_epoch=7)
    assert catalog_bodies(bounded) == catalog_bodies(unbounded)
    assert bounded_app.ctx.rendered.kept_bytes <= 200_000


@pytest.mark.parametrize("rate", [0.02, 0.05, 1 / 3, 0.9, 1.0, 0.0])
def test_the_malformed_records_of_a_rate_are_those_each_record_says(rate: float) -> None:
    world = World(42, OFFERS)
    for slug in SERVED_SLUGS:
        malformed = world.malformations(slug, rate)
        each = {
            i: kind
            for i in range(world.offer_count(slug))
            if (kind := world.malformation(slug, i, rate))
        }
        assert malformed == each
