"""The six catalogs over real HTTP: each format's shape and paging, determinism, cross-marketplace
overlap, malformed records, images. Talks to the session's sandbox (1200 offers, seed 7)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from werkzeug.test import Client

from onecart.money import is_iso_currency
from sandbox.app import SandboxConfig, create_app
from sandbox.world_products import is_valid_gtin13
from tests.conftest import TEST_SANDBOX_OFFERS, TEST_SANDBOX_SEED

PER_MARKETPLACE = TEST_SANDBOX_OFFERS // 6
G = "{http://base.google.com/ns/1.0}"
BAZAAR_KEY = {"X-Api-Key": "test-key"}


def decode(response: httpx.Response) -> Any:
    """JSON the way adapters read it: bytes decoded with errors='replace'."""
    return json.loads(response.content.decode("utf-8", errors="replace"))


def feed_items(response: httpx.Response) -> list[dict[str, str]]:
    root = ET.fromstring(response.content.decode("utf-8", errors="replace"))
    return [
        {child.tag.removeprefix(G): child.text or "" for child in item}
        for item in root.iter("item")
    ]


def all_bazaar_items(http: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        body = decode(http.get("/bazaar/api/v1/listings", params=params, headers=BAZAAR_KEY))
        items += body["data"]["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("bazaar cursors never ended")


@pytest.fixture(scope="module")
def catalogs(sandbox_server: str) -> dict[str, list[dict[str, Any]]]:
    """Every marketplace's full catalog, fetched once for the module."""
    with httpx.Client(base_url=sandbox_server, timeout=30) as http:
        return {
            "shopwave": decode(http.get("/shopwave/products.json", params={"limit": 250}))[
                "products"
            ],
            "kiondo": decode(
                http.get("/kiondo/wp-json/wc/store/v1/products", params={"per_page": 100})
            )
            + decode(
                http.get(
                    "/kiondo/wp-json/wc/store/v1/products", params={"per_page": 100, "page": 2}
                )
            ),
            "dummymart": decode(http.get("/dummymart/products", params={"limit": 0}))["products"],
            "fakestore": decode(http.get("/fakestore/products")),
            "naijamall": feed_items(http.get("/naijamall/feed.xml")),
            "bazaar": all_bazaar_items(http),
        }


def test_health_lists_the_served_marketplaces(http: httpx.Client) -> None:
    body = http.get("/_sandbox/health").json()
    assert body["status"] == "ok"
    # The six demo marketplaces, then Amazon and Sokoni added on top of them (issue 13).
    assert body["marketplaces"] == [
        "shopwave",
        "kiondo",
        "dummymart",
        "fakestore",
        "naijamall",
        "bazaar",
        "amazon",
        "sokoni",
    ]
    assert body["offers"] == TEST_SANDBOX_OFFERS


def test_every_catalog_lists_its_share_of_offers(catalogs: dict[str, list[dict[str, Any]]]) -> None:
    assert {slug: len(records) for slug, records in catalogs.items()} == dict.fromkeys(
        catalogs, PER_MARKETPLACE
    )


def test_shopify_products_json_pages_by_limit_and_page(http: httpx.Client) -> None:
    first = decode(http.get("/shopwave/products.json", params={"limit": 7, "page": 1}))["products"]
    second = decode(http.get("/shopwave/products.json", params={"limit": 7, "page": 2}))["products"]
    default = decode(http.get("/shopwave/products.json"))["products"]
    past_end = decode(http.get("/shopwave/products.json", params={"limit": 250, "page": 2}))
    assert len(first) == len(second) == 7 and len(default) == 30
    assert first[-1]["id"] < second[0]["id"]
    assert past_end == {"products": []}
    product = first[0]
    variant = product["variants"][0]
    assert {
        "id",
        "title",
        "handle",
        "body_html",
        "vendor",
        "product_type",
        "tags",
        "images",
        "options",
    } <= set(product)
    assert variant["title"] == "Default Title" and variant["position"] == 1
    assert variant["product_id"] == product["id"]
    assert variant["sku"] in product["title"]
    assert isinstance(variant["price"], str) and isinstance(variant["available"], bool)
    assert product["images"][0]["src"].startswith(
        str(http.base_url).rstrip("/") + "/_sandbox/images/"
    )


def test_shopify_admin_lookup_needs_a_token(http: httpx.Client) -> None:
    listed = decode(http.get("/shopwave/products.json", params={"limit": 1}))["products"][0]
    path = f"/shopwave/admin/api/2024-10/products/{listed['id']}.json"
    assert http.get(path).status_code == 401
    found = http.get(path, headers={"X-Shopify-Access-Token": "shpat_x"})
    assert found.status_code == 200 and decode(found)["product"]["id"] == listed["id"]
    missing = http.get(
        "/shopwave/admin/api/2024-10/products/12345.json", headers={"X-Shopify-Access-Token": "t"}
    )
    assert missing.status_code == 404 and missing.json() == {"errors": "Not Found"}


def test_woocommerce_store_api_pages_with_wp_headers(http: httpx.Client) -> None:
    response = http.get("/kiondo/wp-json/wc/store/v1/products", params={"page": 2, "per_page": 10})
    assert response.headers["X-WP-Total"] == str(PER_MARKETPLACE)
    assert response.headers["X-WP-TotalPages"] == str(PER_MARKETPLACE // 10)
    assert 'rel="next"' in response.headers["Link"] and 'rel="prev"' in response.headers["Link"]
    products = decode(response)
    assert len(products) == 10
    product = products[0]
    prices = product["prices"]
    assert prices["price"].lstrip("-").isdigit() or "price" not in prices
    assert prices["currency_minor_unit"] == 2
    assert {
        "id",
        "name",
        "slug",
        "permalink",
        "sku",
        "images",
        "categories",
        "brands",
        "average_rating",
    } <= set(product)
    one = http.get(f"/kiondo/wp-json/wc/store/v1/products/{product['id']}")
    assert decode(one)["id"] == product["id"]
    missing = http.get("/kiondo/wp-json/wc/store/v1/products/7")
    assert (
        missing.status_code == 404
        and missing.json()["code"] == "woocommerce_rest_product_invalid_id"
    )


def test_dummyjson_envelope_search_categories_and_lookup(http: httpx.Client) -> None:
    page = decode(
        http.get("/dummymart/products", params={"limit": 5, "skip": 10, "select": "title,price"})
    )
    assert (page["total"], page["skip"], page["limit"]) == (PER_MARKETPLACE, 10, 5)
    assert [p["id"] for p in page["products"]] == list(range(11, 16))
    assert all(set(p) <= {"id", "title", "price"} for p in page["products"])
    categories = http.get("/dummymart/products/categories").json()
    assert {"slug", "name", "url"} == set(categories[0])
    in_category = decode(http.get(f"/dummymart/products/category/{categories[0]['slug']}"))
    assert all(p["category"] == categories[0]["slug"] for p in in_category["products"])
    hits = decode(http.get("/dummymart/products/search", params={"q": "SMARTPHONE"}))
    assert hits["total"] > 0
    assert all("smartphone" in json.dumps(p).lower() for p in hits["products"])
    assert decode(http.get("/dummymart/products/3"))["id"] == 3
    missing = http.get("/dummymart/products/99999")
    assert missing.status_code == 404 and missing.json() == {
        "message": "Product with id '99999' not found"
    }


def test_dummyjson_barcodes_are_valid_only_for_shared_products(
    catalogs: dict[str, list[dict[str, Any]]],
) -> None:
    other_gtins = (
        {p["variants"][0].get("barcode") for p in catalogs["shopwave"]}
        | {item.get("gtin") for item in catalogs["naijamall"]}
        | {item.get("ean") for item in catalogs["bazaar"]}
    )
    valid = [p for p in catalogs["dummymart"] if is_valid_gtin13(p["meta"]["barcode"])]
    invalid = [p for p in catalogs["dummymart"] if not is_valid_gtin13(p["meta"]["barcode"])]
    assert valid and invalid
    assert all(len(p["meta"]["barcode"]) == 13 and p["meta"]["barcode"].isdigit() for p in invalid)
    assert any(p["meta"]["barcode"] in other_gtins for p in valid)


def test_fake_store_lists_everything_and_answers_unknown_ids_with_an_empty_body(
    http: httpx.Client,
) -> None:
    limited = decode(http.get("/fakestore/products", params={"limit": 5, "sort": "desc"}))
    ids = [p["id"] for p in limited]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True) and ids[0] >= PER_MARKETPLACE - 1
    product = decode(http.get("/fakestore/products/2"))
    assert set(product) == {"id", "title", "price", "description", "category", "image", "rating"}
    assert set(product["rating"]) == {"rate", "count"}
    unknown = http.get("/fakestore/products/99999")
    assert unknown.status_code == 200 and unknown.content == b""
    categories = http.get("/fakestore/products/categories").json()
    assert "running shoes" in categories
    shoes = decode(http.get("/fakestore/products/category/running shoes"))
    assert all(p["category"] == "running shoes" for p in shoes)


def test_google_feed_is_rss_with_the_g_namespace(catalogs: dict[str, list[dict[str, Any]]]) -> None:
    items = catalogs["naijamall"]
    priced = [item for item in items if "price" in item]
    assert {
        "id",
        "title",
        "description",
        "link",
        "image_link",
        "availability",
        "brand",
        "mpn",
    } <= set(items[0])
    assert all(item["price"].split(" ")[1] in {"NGN", "NGR"} for item in priced)
    assert {item["availability"] for item in items} <= {
        "in_stock",
        "in stock",
        "out_of_stock",
        "preorder",
        "backorder",
    }
    assert all(" > " in item["product_type"] or item["product_type"] for item in items)
    assert any("sale_price" in item for item in items)


def test_bazaar_needs_a_key_and_pages_with_opaque_cursors(http: httpx.Client) -> None:
    assert http.get("/bazaar/api/v1/listings").status_code == 401
    first = decode(http.get("/bazaar/api/v1/listings", params={"limit": 3}, headers=BAZAAR_KEY))
    second = decode(
        http.get(
            "/bazaar/api/v1/listings",
            params={"limit": 3, "cursor": first["next_cursor"]},
            headers=BAZAAR_KEY,
        )
    )
    assert len(first["data"]["items"]) == 3 and first["next_cursor"]
    assert first["data"]["items"][-1]["sku"] < second["data"]["items"][0]["sku"]
    bad = http.get("/bazaar/api/v1/listings", params={"cursor": "garbage!"}, headers=BAZAAR_KEY)
    assert bad.status_code == 400
    item = first["data"]["items"][0]
    assert {
        "sku",
        "name",
        "summary",
        "pricing",
        "media",
        "url",
        "taxonomy",
        "maker",
        "ean",
        "score",
        "votes",
        "in_stock",
        "stock_level",
    } <= set(item)


def test_bazaar_prices_are_mostly_euros_with_a_few_pounds(
    catalogs: dict[str, list[dict[str, Any]]],
) -> None:
    codes = [
        item["pricing"]["display"].split(" ")[1] for item in catalogs["bazaar"] if item["pricing"]
    ]
    assert codes.count("EUR") > 0.8 * len(codes)
    assert "GBP" in codes


def test_same_gtin_is_sold_on_three_or_more_marketplaces(
    catalogs: dict[str, list[dict[str, Any]]],
) -> None:
    marketplaces_by_gtin: dict[str, set[str]] = defaultdict(set)
    for product in catalogs["shopwave"]:
        if product["variants"][0].get("barcode"):
            marketplaces_by_gtin[product["variants"][0]["barcode"]].add("shopwave")
    for product in catalogs["dummymart"]:
        marketplaces_by_gtin[product["meta"]["barcode"]].add("dummymart")
    for item in catalogs["naijamall"]:
        if item.get("gtin"):
            marketplaces_by_gtin[item["gtin"]].add("naijamall")
    for item in catalogs["bazaar"]:
        if item.get("ean"):
            marketplaces_by_gtin[item["ean"]].add("bazaar")
    wide = {gtin for gtin, slugs in marketplaces_by_gtin.items() if len(slugs) >= 3}
    assert len(wide) >= 10
    assert all(is_valid_gtin13(gtin) for gtin in wide)


def test_title_only_marketplaces_carry_brand_and_model_of_shared_products(
    catalogs: dict[str, list[dict[str, Any]]],
) -> None:
    models = {p["variants"][0]["sku"] for p in catalogs["shopwave"]}
    kiondo_skus = {p["sku"] for p in catalogs["kiondo"]}
    fakestore_titles = " ".join(p["title"].replace("-", "").upper() for p in catalogs["fakestore"])
    assert len(models & kiondo_skus) >= 10
    assert sum(1 for model in models if model.replace("-", "").upper() in fakestore_titles) >= 10


def test_currencies_follow_each_marketplace(catalogs: dict[str, list[dict[str, Any]]]) -> None:
    kiondo_codes = {p["prices"]["currency_code"] for p in catalogs["kiondo"]}
    assert "KES" in kiondo_codes
    assert all(is_iso_currency(code) or code == "KSH" for code in kiondo_codes)


def test_malformed_records_appear_at_the_default_rate(
    catalogs: dict[str, list[dict[str, Any]]],
) -> None:
    def duplicates(ids: list[Any]) -> int:
        return len(ids) - len(set(ids))

    shop = catalogs["shopwave"]
    kiondo = catalogs["kiondo"]
    dummy = catalogs["dummymart"]
    fake = catalogs["fakestore"]
    feed = catalogs["naijamall"]
    bazaar = catalogs["bazaar"]
    signals = {
        "missing price": sum("price" not in p["variants"][0] for p in shop)
        + sum("price" not in p["prices"] for p in kiondo)
        + sum("price" not in p for p in dummy + fake)
        + sum("price" not in i for i in feed)
        + sum(not i["pricing"] for i in bazaar),
        "negative price": sum(str(p["variants"][0].get("price", "")).startswith("-") for p in shop)
        + sum(str(p["prices"].get("price", "")).startswith("-") for p in kiondo)
        + sum(isinstance(p.get("price"), float) and p["price"] < 0 for p in dummy + fake)
        + sum(i.get("price", "").startswith("-") for i in feed)
        + sum(i["pricing"].get("display", "").startswith("-") for i in bazaar),
        "unknown currency": sum(p["prices"]["currency_code"] != "KES" for p in kiondo)
        + sum(i.get("price", "").endswith("NGR") for i in feed)
        + sum(i["pricing"].get("display", "").endswith("EUX") for i in bazaar)
        + sum(isinstance(p.get("price"), str) for p in dummy + fake),
        "markup in title": sum(
            "<" in r.get("title", r.get("name", "")) for r in shop + kiondo + dummy + fake + bazaar
        )
        + sum("<" in i["title"] for i in feed),
        "100 KB description": sum(
            len(r.get("body_html") or r.get("description") or r.get("summary") or "") >= 100 * 1024
            for r in shop + kiondo + dummy + fake + feed + bazaar
        ),
        "broken UTF-8": sum(
            "\ufffd" in (r.get("title") or r.get("name") or "")
            for r in shop + kiondo + dummy + fake + feed + bazaar
        ),
        "duplicate id": duplicates([p["id"] for p in shop])
        + duplicates([p["id"] for p in kiondo])
        + duplicates([p["id"] for p in dummy])
        + duplicates([p["id"] for p in fake])
        + duplicates([i["id"] for i in feed])
        + duplicates([i["sku"] for i in bazaar]),
    }
    assert all(count >= 1 for count in signals.values()), signals
    assert sum(signals.values()) <= 0.05 * TEST_SANDBOX_OFFERS


def test_broken_utf8_is_raw_invalid_bytes_inside_an_otherwise_valid_body(
    http: httpx.Client,
) -> None:
    bodies = [http.get(path).content for path in ("/fakestore/products", "/naijamall/feed.xml")]
    bodies.append(http.get("/dummymart/products", params={"limit": 0}).content)
    broken = [body for body in bodies if b"\xff\xfe" in body]
    assert broken
    for body in broken:
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
        body.decode("utf-8", errors="replace")  # still readable as a whole


def test_catalog_pages_are_byte_identical_across_requests_and_server_instances(
    http: httpx.Client, sandbox_server: str
) -> None:
    port = urlsplit(sandbox_server).port
    fresh = Client(
        create_app(
            SandboxConfig(
                host="127.0.0.1", port=port, offers=TEST_SANDBOX_OFFERS, seed=TEST_SANDBOX_SEED
            )
        )
    )
    for path in (
        "/shopwave/products.json?limit=250",
        "/kiondo/wp-json/wc/store/v1/products?per_page=100&page=2",
        "/dummymart/products?limit=0",
        "/fakestore/products",
        "/naijamall/feed.xml",
        "/bazaar/api/v1/listings?limit=100",
    ):
        live = http.get(path, headers=BAZAAR_KEY).content
        assert live == http.get(path, headers=BAZAAR_KEY).content, path
        if path.startswith("/shopwave/"):
            # Shopify's updated_at is when this server saw the record change (tests before this
            # one turn knobs): everything else is the same.
            assert without_updated_at(live) == without_updated_at(fresh.get(path).data), path
        else:
            assert live == fresh.get(path, headers=BAZAAR_KEY).data, path


def without_updated_at(body: bytes) -> Any:
    """A Shopify product list with every `updated_at` dropped (broken bytes kept as escapes)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "updated_at"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(body.decode("utf-8", errors="surrogateescape")))


def test_images_are_svg_cards_for_catalog_products(http: httpx.Client) -> None:
    product = decode(http.get("/shopwave/products.json", params={"limit": 1}))["products"][0]
    image = http.get(urlsplit(product["images"][0]["src"]).path)
    assert image.status_code == 200
    assert image.headers["content-type"].startswith("image/svg+xml")
    assert product["vendor"].replace("'", "&#x27;") in image.text or product["vendor"] in image.text
    assert http.get("/_sandbox/images/nothing.svg").status_code == 404


def test_product_links_open_real_pages(
    http: httpx.Client, catalogs: dict[str, list[dict[str, Any]]]
) -> None:
    for url in (
        catalogs["kiondo"][0]["permalink"],
        catalogs["naijamall"][0]["link"],
        catalogs["bazaar"][0]["url"],
    ):
        page = http.get(urlsplit(url).path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    handle = catalogs["shopwave"][0]["handle"]
    assert http.get(f"/shopwave/products/{handle}").status_code == 200


def test_a_million_offers_serve_any_page_without_materializing_the_catalog() -> None:
    app = create_app(SandboxConfig(host="127.0.0.1", port=1, offers=1_000_000, seed=42))
    client = Client(app)
    last_page = 166_667 // 250 + 1
    page = client.get(f"/shopwave/products.json?limit=250&page={last_page}").data
    products = json.loads(page.decode("utf-8", errors="replace"))["products"]
    assert 0 < len(products) <= 250
    last = json.loads(
        client.get("/dummymart/products/166666").data.decode("utf-8", errors="replace")
    )
    assert last["id"] == 166_666
    assert app.world.products_built < 1000
