"""Amazon (Creators API) and Sokoni (CSV affiliate feed) against the sandbox over real HTTP:
whole catalogs through the adapters built from the real marketplaces.toml, live ASIN lookups,
the one-click cart landing page, and overlap with the six other marketplaces by GTIN."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from adapters.amazon import AmazonCreatorsAdapter
from adapters.base import BadPayload, MarketplaceAdapter, NotFound, Offer, Rejected
from adapters.registry import build_adapter, default_environment, load_marketplaces
from sandbox.world import World

CREDENTIALS = {"ONECART_MARKETPLACE_KEY_AMAZON": "sandbox-id:sandbox-secret"}
TEST_SEED, TEST_OFFERS = 7, 1200  # tests/conftest.py's sandbox


@pytest.fixture(scope="module")
def adapters(sandbox_server: str) -> Iterator[dict[str, MarketplaceAdapter]]:
    env = {**default_environment(), "ONECART_SANDBOX_URL": sandbox_server, **CREDENTIALS}
    configs = {config.slug: config for config in load_marketplaces(env=env)}
    built = {slug: build_adapter(configs[slug]) for slug in ("amazon", "sokoni", "naijamall")}
    yield built
    for adapter in built.values():
        adapter.close()  # type: ignore[attr-defined]


def read_catalog(adapter: MarketplaceAdapter) -> tuple[list[Offer], Counter[str]]:
    offers, rejected = [], Counter[str]()
    for page in adapter.fetch_catalog_pages():
        for record in page.records:
            try:
                offers.append(adapter.normalize_record(record))
            except BadPayload as exc:
                rejected[exc.reason] += 1
    return offers, rejected


@pytest.fixture(scope="module")
def catalogs(adapters: dict[str, MarketplaceAdapter]) -> dict[str, list[Offer]]:
    return {slug: read_catalog(adapter)[0] for slug, adapter in adapters.items()}


def test_the_configured_searches_reach_the_whole_sandbox_amazon_once(
    adapters: dict[str, MarketplaceAdapter], catalogs: dict[str, list[Offer]]
) -> None:
    world = World(TEST_SEED, TEST_OFFERS)
    amazon = catalogs["amazon"]
    asins = [offer.external_id for offer in amazon]
    assert len(asins) == len(set(asins))
    # Every item but those malformed on purpose (the default 2%) comes out as an offer.
    assert len(amazon) >= world.offer_count("amazon") * 0.95
    assert {offer.currency for offer in amazon} == {"USD"}
    assert all(offer.product_url and "tag=onecart-20" in offer.product_url for offer in amazon)
    assert sum(1 for offer in amazon if offer.gtin) >= len(amazon) * 0.8
    adapter = adapters["amazon"]
    assert isinstance(adapter, AmazonCreatorsAdapter)
    assert adapter.tokens_issued == 1  # one token for the whole catalog


def test_live_lookup_by_asin_answers_the_catalog_offer(
    adapters: dict[str, MarketplaceAdapter], catalogs: dict[str, list[Offer]]
) -> None:
    offer = catalogs["amazon"][3]
    live = adapters["amazon"].lookup_offer(offer.external_id)
    assert (live.external_id, live.price_minor, live.currency) == (
        offer.external_id,
        offer.price_minor,
        offer.currency,
    )
    with pytest.raises(NotFound):
        adapters["amazon"].lookup_offer("B0ZZZZZZZZ")


def test_the_hand_off_url_opens_one_cart_with_every_item(
    adapters: dict[str, MarketplaceAdapter], catalogs: dict[str, list[Offer]]
) -> None:
    first, second = catalogs["amazon"][0], catalogs["amazon"][1]
    adapter = adapters["amazon"]
    assert isinstance(adapter, AmazonCreatorsAdapter)
    url = adapter.handoff_cart_url([(first.external_id, 2), (second.external_id, 1)])
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200
    assert '<span id="associate-tag">onecart-20</span>' in page.text
    assert f'data-asin="{first.external_id}" data-quantity="2"' in page.text
    assert f'data-asin="{second.external_id}" data-quantity="1"' in page.text


def test_amazon_without_credentials_is_refused_naming_the_variable(sandbox_server: str) -> None:
    env = {**default_environment(), "ONECART_SANDBOX_URL": sandbox_server}
    env.pop("ONECART_MARKETPLACE_KEY_AMAZON", None)
    [config] = [c for c in load_marketplaces(env=env) if c.slug == "amazon"]
    with (
        build_adapter(config) as adapter,
        pytest.raises(Rejected, match="ONECART_MARKETPLACE_KEY_AMAZON"),
    ):  # type: ignore[attr-defined]
        next(adapter.fetch_catalog_pages())


def test_the_csv_feed_streams_sokoni_with_its_rejects_reasoned(
    adapters: dict[str, MarketplaceAdapter],
) -> None:
    world = World(TEST_SEED, TEST_OFFERS)
    offers, rejected = read_catalog(adapters["sokoni"])
    assert len(offers) + sum(rejected.values()) == world.offer_count("sokoni")
    assert set(rejected) <= {
        "missing_price",
        "non_positive_price",
        "unknown_currency",
        "broken_utf8",
    }
    assert {offer.currency for offer in offers} == {"KES", "NGN"}
    assert all(offer.product_url and "aff_id=" in offer.product_url for offer in offers)


def test_amazon_and_sokoni_sell_products_the_other_marketplaces_sell(
    catalogs: dict[str, list[Offer]],
) -> None:
    naijamall = {offer.gtin for offer in catalogs["naijamall"] if offer.gtin}
    for slug in ("amazon", "sokoni"):
        shared = {offer.gtin for offer in catalogs[slug] if offer.gtin} & naijamall
        assert len(shared) >= 5, slug
