"""Amazon's Creators API: normalization of documented item shapes, the token cache and its
refresh, 429 handling, the paged searches, getItems lookups and the add-to-cart hand-off URL."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from adapters.amazon import (
    AmazonCreatorsAdapter,
    amazon_cart_add_url,
    parse_amazon_options,
    with_associate_tag,
)
from adapters.base import BadPayload, Capability, NotFound, OrderRequest, RateLimited, Unsupported
from adapters.registry import MarketplaceConfigError
from tests.adapters.configs import RecordingTransport, SleepRecorder, marketplace_config

API = "https://creatorsapi.amazon"
OPTIONS = {
    "marketplace": "www.amazon.com",
    "partner_tag": "onecart-20",
    "browse_nodes": ["172282"],
    "keywords": ["thermos flask"],
    "min_request_interval_s": 0,
}

# A searchItems item as the Creators API documents it (lowerCamelCase, prices under
# offersV2.listings[].price.money, identifiers under itemInfo.externalIds).
ITEM: dict[str, Any] = {
    "asin": "B0BXYCS74H",
    "detailPageURL": "https://www.amazon.com/dp/B0BXYCS74H?tag=someone-else-20&linkCode=ogi&th=1",
    "images": {
        "primary": {
            "large": {
                "url": "https://m.media-amazon.com/images/I/41abc.jpg",
                "height": 500,
                "width": 500,
            }
        }
    },
    "itemInfo": {
        "title": {
            "displayValue": "Sony WH-1000XM5 Wireless Noise Canceling Headphones, Black",
            "label": "Title",
            "locale": "en_US",
        },
        "byLineInfo": {"brand": {"displayValue": "Sony", "label": "Brand", "locale": "en_US"}},
        "classifications": {"productGroup": {"displayValue": "Wireless", "label": "ProductGroup"}},
        "externalIds": {
            "eans": {"displayValues": ["4548736132610"], "label": "EAN", "locale": "en_US"},
            "upcs": {"displayValues": ["027242923782"], "label": "UPC", "locale": "en_US"},
        },
        "features": {
            "displayValues": ["Industry-leading noise cancellation", "Up to 30-hour battery"],
            "label": "Features",
        },
        "manufactureInfo": {
            "model": {"displayValue": "WH1000XM5/B"},
            "itemPartNumber": {"displayValue": "WH1000XM5/B"},
        },
    },
    "offersV2": {
        "listings": [
            {
                "availability": {"type": "IN_STOCK", "message": "In Stock"},
                "condition": {"value": "New"},
                "isBuyBoxWinner": False,
                "merchantInfo": {"name": "Marketplace Seller", "id": "A1"},
                "price": {"money": {"amount": 329.0, "currency": "USD"}},
            },
            {
                "availability": {"type": "IN_STOCK_SCARCE", "message": "Only 3 left in stock"},
                "condition": {"value": "New"},
                "isBuyBoxWinner": True,
                "merchantInfo": {"name": "Amazon.com", "id": "ATVPDKIKX0DER"},
                "price": {
                    "money": {"amount": 298.99, "currency": "USD", "displayAmount": "$298.99"},
                    "savingBasis": {
                        "money": {"amount": 399.99, "currency": "USD"},
                        "savingBasisType": "LIST_PRICE",
                    },
                    "savings": {"percentage": 25},
                },
            },
        ]
    },
    "browseNodeInfo": {
        "browseNodes": [
            {"id": "12097479011", "displayName": "Over-Ear Headphones", "isRoot": False}
        ]
    },
}


def amazon(
    handler: Any = None, *, options: dict[str, Any] | None = None, clock: Any = None, **kw: Any
) -> tuple[AmazonCreatorsAdapter, RecordingTransport, SleepRecorder]:
    transport = RecordingTransport(handler or (lambda request: httpx.Response(500)))
    sleep = SleepRecorder()
    config = marketplace_config(
        "amazon",
        slug="amazon",
        base_url=API,
        api_key=kw.pop("api_key", "amzn1.id:amzn1.secret"),
        api_key_env="ONECART_MARKETPLACE_KEY_AMAZON",
        options={**OPTIONS, **(options or {})},
    )
    extra = {"clock": clock} if clock else {}
    return (
        AmazonCreatorsAdapter(config, transport=transport, sleep=sleep, **extra),
        transport,
        sleep,
    )


def token_response(token: str = "Atza|token-1", expires_in: int = 3600) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": token, "token_type": "bearer", "expires_in": expires_in}
    )


# --- Normalization ----------------------------------------------------------------------------


def test_an_item_becomes_an_offer_at_its_buy_box_price() -> None:
    adapter, _, _ = amazon()
    offer = adapter.normalize_record(ITEM)
    assert offer.external_id == "B0BXYCS74H" and offer.sku == "B0BXYCS74H"
    assert offer.title == "Sony WH-1000XM5 Wireless Noise Canceling Headphones, Black"
    assert (offer.price_minor, offer.currency) == (29899, "USD")
    assert offer.gtin == "4548736132610"  # the EAN wins over the UPC
    assert offer.brand == "Sony" and offer.model == "WH1000XM5/B" and offer.mpn == "WH1000XM5/B"
    assert offer.category == "Over-Ear Headphones"
    assert offer.image_url == "https://m.media-amazon.com/images/I/41abc.jpg"
    assert offer.description == "Industry-leading noise cancellation\nUp to 30-hour battery"
    assert offer.available is True
    assert offer.rating is None and offer.rating_count is None  # no customer reviews


def test_every_product_link_carries_our_associate_tag() -> None:
    adapter, _, _ = amazon()
    offer = adapter.normalize_record(ITEM)
    assert offer.product_url == (
        "https://www.amazon.com/dp/B0BXYCS74H?tag=onecart-20&linkCode=ogi&th=1"
    )
    without_link = {key: value for key, value in ITEM.items() if key != "detailPageURL"}
    assert adapter.normalize_record(without_link).product_url == (
        "https://www.amazon.com/dp/B0BXYCS74H?tag=onecart-20"
    )
    assert with_associate_tag("https://www.amazon.de/dp/B01?x=1", "mine-21") == (
        "https://www.amazon.de/dp/B01?tag=mine-21&x=1"
    )


def test_a_upc_serves_as_gtin_when_there_is_no_ean() -> None:
    adapter, _, _ = amazon()
    item = copy.deepcopy(ITEM)
    del item["itemInfo"]["externalIds"]["eans"]
    assert adapter.normalize_record(item).gtin == "0027242923782"
    del item["itemInfo"]["externalIds"]
    assert adapter.normalize_record(item).gtin is None


def test_without_a_buy_box_winner_the_first_listing_counts() -> None:
    adapter, _, _ = amazon()
    item = copy.deepcopy(ITEM)
    item["offersV2"]["listings"][1]["isBuyBoxWinner"] = False
    offer = adapter.normalize_record(item)
    assert offer.price_minor == 32900


def test_out_of_stock_listing_is_unavailable() -> None:
    adapter, _, _ = amazon()
    item = copy.deepcopy(ITEM)
    item["offersV2"]["listings"] = [
        {
            "availability": {"type": "OUT_OF_STOCK"},
            "isBuyBoxWinner": True,
            "price": {"money": {"amount": 5, "currency": "USD"}},
        }
    ]
    offer = adapter.normalize_record(item)
    assert offer.available is False and offer.price_minor == 500


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda item: item.pop("asin"), "missing_id"),
        (lambda item: item.update(asin="not-an-asin"), "bad_record"),
        (lambda item: item["itemInfo"].pop("title"), "missing_title"),
        (
            lambda item: item["itemInfo"]["title"].update(displayValue="Sony \ufffd XM5"),
            "broken_utf8",
        ),
        (lambda item: item.pop("offersV2"), "missing_price"),
        (lambda item: item["offersV2"].update(listings=[]), "missing_price"),
        (
            lambda item: item["offersV2"]["listings"][1]["price"]["money"].update(amount=-298.99),
            "non_positive_price",
        ),
        (
            lambda item: item["offersV2"]["listings"][1]["price"]["money"].update(currency="USX"),
            "unknown_currency",
        ),
        (
            lambda item: item["offersV2"]["listings"][1]["price"]["money"].update(amount="n/a"),
            "bad_price",
        ),
        (
            lambda item: item["offersV2"]["listings"][1]["price"]["money"].update(amount=1.999),
            "bad_price",
        ),
    ],
)
def test_an_item_that_cannot_be_an_offer_is_rejected_with_its_reason(
    change: Any, reason: str
) -> None:
    adapter, _, _ = amazon()
    item = copy.deepcopy(ITEM)
    change(item)
    with pytest.raises(BadPayload) as caught:
        adapter.normalize_record(item)
    assert caught.value.reason == reason


def test_amazon_takes_no_orders() -> None:
    adapter, _, _ = amazon()
    assert adapter.capabilities == frozenset({Capability.CATALOG, Capability.LIVE_OFFER})
    with pytest.raises(Unsupported):
        adapter.place_order(OrderRequest("ref", "key", [], None, "USD"))  # type: ignore[arg-type]


# --- Options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"browse_nodes": [], "keywords": []}, "browse_nodes"),
        ({"marketplace": "amazon.com"}, "marketplace"),
        ({"partner_tag": "has spaces"}, "partner_tag"),
        ({"item_count": 11}, "item_count"),
        ({"max_pages": 0}, "max_pages"),
        ({"credential_version": "4.1"}, "credential_version"),
        ({"browse_node": ["1"]}, "browse_node"),
    ],
)
def test_a_bad_option_fails_at_start_up_naming_it(change: dict[str, Any], option: str) -> None:
    config = marketplace_config(
        "amazon", slug="amazon", base_url=API, options={**OPTIONS, **change}
    )
    with pytest.raises(MarketplaceConfigError, match=f"options.{option}"):
        parse_amazon_options(config)


def test_the_version_picks_the_token_endpoint_and_relative_urls_follow_the_base() -> None:
    config = marketplace_config("amazon", slug="amazon", base_url=API, options=OPTIONS)
    options = parse_amazon_options(config)
    assert options.auth_url == "https://api.amazon.com/auth/o2/token"
    assert options.cart_url == "https://www.amazon.com/gp/aws/cart/add.html"
    sandbox = marketplace_config(
        "amazon",
        slug="amazon",
        base_url="http://127.0.0.1:8800/amazon",
        options={**OPTIONS, "auth_url": "auth/o2/token", "cart_url": "gp/aws/cart/add.html"},
    )
    options = parse_amazon_options(sandbox)
    assert options.auth_url == "http://127.0.0.1:8800/amazon/auth/o2/token"
    assert options.cart_url == "http://127.0.0.1:8800/amazon/gp/aws/cart/add.html"


# --- Token, requests, 429 ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lookup_handler(tokens: list[str], *, expired: set[str] | None = None) -> Any:
    """A Creators API that issues `tokens` in turn and answers getItems with ITEM."""
    issued = iter(tokens)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):  # LWA's /auth/o2/token, Cognito's /oauth2/token
            return token_response(next(issued))
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if token in (expired or set()):
            return httpx.Response(
                401, json={"errors": [{"code": "ExpiredToken", "message": "expired"}]}
            )
        return httpx.Response(200, json={"itemsResult": {"items": [ITEM]}})

    return handle


def test_get_items_sends_the_documented_request() -> None:
    adapter, transport, _ = amazon(lookup_handler(["Atza|one"]))
    offer = adapter.lookup_offer("B0BXYCS74H")
    assert offer.price_minor == 29899
    token_request, lookup = transport.requests
    assert str(token_request.url) == "https://api.amazon.com/auth/o2/token"
    assert json.loads(token_request.content) == {
        "grant_type": "client_credentials",
        "client_id": "amzn1.id",
        "client_secret": "amzn1.secret",
        "scope": "creatorsapi::default",
    }
    assert str(lookup.url) == f"{API}/catalog/v1/getItems"
    assert lookup.headers["Authorization"] == "Bearer Atza|one"
    assert lookup.headers["x-marketplace"] == "www.amazon.com"
    body = json.loads(lookup.content)
    assert body["itemIds"] == ["B0BXYCS74H"] and body["partnerTag"] == "onecart-20"
    assert "offersV2.listings.price" in body["resources"]


def test_the_token_is_cached_until_a_minute_before_it_expires() -> None:
    clock = Clock()
    adapter, transport, _ = amazon(lookup_handler(["Atza|one", "Atza|two"]), clock=clock)
    adapter.lookup_offer("B0BXYCS74H")
    clock.now += 3600 - 61
    adapter.lookup_offer("B0BXYCS74H")
    assert adapter.tokens_issued == 1
    clock.now += 2  # less than a minute left: refreshed before use
    adapter.lookup_offer("B0BXYCS74H")
    assert adapter.tokens_issued == 2
    assert transport.requests[-1].headers["Authorization"] == "Bearer Atza|two"


def test_a_401_refreshes_the_token_once_and_repeats_the_call() -> None:
    adapter, transport, _ = amazon(
        lookup_handler(["Atza|revoked", "Atza|fresh"], expired={"Atza|revoked"})
    )
    assert adapter.lookup_offer("B0BXYCS74H").external_id == "B0BXYCS74H"
    paths = [request.url.path for request in transport.requests]
    assert paths == [
        "/auth/o2/token",
        "/catalog/v1/getItems",
        "/auth/o2/token",
        "/catalog/v1/getItems",
    ]
    assert transport.requests[-1].headers["Authorization"] == "Bearer Atza|fresh"


def test_cognito_credentials_post_a_form_and_name_their_version() -> None:
    adapter, transport, _ = amazon(
        lookup_handler(["cognito-token"]), options={"credential_version": "2.2"}
    )
    adapter.lookup_offer("B0BXYCS74H")
    token_request, lookup = transport.requests
    assert token_request.url.host == "creatorsapi.auth.eu-south-2.amazoncognito.com"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"scope=creatorsapi%2Fdefault" in token_request.content
    assert lookup.headers["Authorization"] == "Bearer cognito-token, Version 2.2"


def test_refused_credentials_name_the_token_endpoint() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, json={"error": "invalid_client", "error_description": "bad secret"}
        )

    adapter, _, _ = amazon(handle)
    with pytest.raises(Exception, match="token endpoint refused the credentials"):
        adapter.lookup_offer("B0BXYCS74H")
    without_key, _, _ = amazon(handle, api_key=None)
    with pytest.raises(Exception, match="ONECART_MARKETPLACE_KEY_AMAZON"):
        without_key.lookup_offer("B0BXYCS74H")


def test_a_429_waits_as_told_and_then_succeeds() -> None:
    answers = iter(
        [
            httpx.Response(
                429, headers={"Retry-After": "2"}, json={"errors": [{"code": "TooManyRequests"}]}
            ),
            httpx.Response(200, json={"itemsResult": {"items": [ITEM]}}),
        ]
    )

    def handle(request: httpx.Request) -> httpx.Response:
        return token_response() if request.url.path == "/auth/o2/token" else next(answers)

    adapter, _, sleep = amazon(handle)
    assert adapter.lookup_offer("B0BXYCS74H").price_minor == 29899
    assert sleep.delays == [2.0]


def test_persistent_429_ends_in_rate_limited() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/o2/token":
            return token_response()
        return httpx.Response(429, headers={"Retry-After": "1"}, json={})

    adapter, _, _ = amazon(handle)
    with pytest.raises(RateLimited) as caught:
        adapter.lookup_offer("B0BXYCS74H")
    assert caught.value.retry_after == 1.0


def test_requests_keep_to_the_accounts_rate() -> None:
    clock = Clock()
    adapter, _, sleep = amazon(
        lookup_handler(["Atza|one"]), options={"min_request_interval_s": 1}, clock=clock
    )
    adapter.lookup_offer("B0BXYCS74H")
    clock.now += 0.25
    adapter.lookup_offer("B0BXYCS74H")
    assert sleep.delays == [0.75]


def test_an_unknown_asin_is_not_found() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/o2/token":
            return token_response()
        return httpx.Response(
            200,
            json={
                "errors": [
                    {
                        "code": "InvalidParameterValue",
                        "message": "The ItemId B0NOPE0000 is invalid.",
                    }
                ]
            },
        )

    adapter, _, _ = amazon(handle)
    with pytest.raises(NotFound):
        adapter.lookup_offer("B0NOPE0000")
    with pytest.raises(NotFound):
        adapter.lookup_offer("../etc")


# --- Catalog by searches ----------------------------------------------------------------------


def numbered_item(number: int) -> dict[str, Any]:
    item = copy.deepcopy(ITEM)
    item["asin"] = f"B0{number:08d}"
    return item


def test_the_catalog_is_every_configured_search_paged_without_repeating_an_asin() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/o2/token":
            return token_response()
        body = json.loads(request.content)
        page = body["itemPage"]
        if "browseNodeId" in body:  # 23 items: pages of 10, 10, 3
            numbers = range((page - 1) * 10, min(page * 10, 23))
            total = 23
        else:  # keywords: 2 items, one already found by the browse node
            numbers, total = [5, 99], 2
        items = [numbered_item(n) for n in numbers]
        return httpx.Response(
            200, json={"searchResult": {"totalResultCount": total, "items": items}}
        )

    adapter, transport, _ = amazon(handle)
    pages = list(adapter.fetch_catalog_pages())
    asins = [record["asin"] for page in pages for record in page.records]
    assert len(asins) == len(set(asins)) == 24
    assert [page.page for page in pages] == [1, 2, 3, 4]
    searches = [
        json.loads(r.content) for r in transport.requests if r.url.path.endswith("searchItems")
    ]
    assert [(s.get("browseNodeId"), s.get("keywords"), s["itemPage"]) for s in searches] == [
        ("172282", None, 1),
        ("172282", None, 2),
        ("172282", None, 3),
        (None, "thermos flask", 1),
    ]
    assert all(s["itemCount"] == 10 and s["partnerTag"] == "onecart-20" for s in searches)


def test_no_results_ends_a_query_and_never_asks_past_page_ten() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/o2/token":
            return token_response()
        body = json.loads(request.content)
        if "keywords" in body:
            return httpx.Response(404, json={"errors": [{"code": "NoResults"}]})
        page = body["itemPage"]
        items = [numbered_item(page * 100 + n) for n in range(10)]
        return httpx.Response(
            200, json={"searchResult": {"totalResultCount": 5000, "items": items}}
        )

    adapter, transport, _ = amazon(handle)
    records = [record for page in adapter.fetch_catalog_pages() for record in page.records]
    assert len(records) == 100
    pages_asked = [json.loads(r.content).get("itemPage") for r in transport.requests[1:]]
    assert max(pages_asked) == 10


# --- The hand-off cart ------------------------------------------------------------------------


def test_the_add_to_cart_url_is_built_exactly() -> None:
    url = amazon_cart_add_url(
        "https://www.amazon.com/gp/aws/cart/add.html",
        "onecart-20",
        [("B0BXYCS74H", 2), ("B07FZ8S74R", 1), ("B0BXYCS74H", 1)],
    )
    assert url == (
        "https://www.amazon.com/gp/aws/cart/add.html?AssociateTag=onecart-20"
        "&ASIN.1=B0BXYCS74H&Quantity.1=3&ASIN.2=B07FZ8S74R&Quantity.2=1"
    )


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [("b0bxycs74h", 1)],
        [("B0BXYCS74H", 0)],
        [("B0BXYCS74H", 1000)],
        [("B0BXYCS74H", True)],
        [(f"B0{n:08d}", 1) for n in range(51)],
    ],
)
def test_the_add_to_cart_url_refuses_what_amazons_form_cannot_take(lines: Any) -> None:
    with pytest.raises(ValueError):
        amazon_cart_add_url("https://www.amazon.com/gp/aws/cart/add.html", "onecart-20", lines)


def test_the_adapter_builds_its_cart_url_from_its_options() -> None:
    adapter, transport, _ = amazon()
    assert adapter.handoff_cart_url([("B0BXYCS74H", 1)]) == (
        "https://www.amazon.com/gp/aws/cart/add.html?AssociateTag=onecart-20"
        "&ASIN.1=B0BXYCS74H&Quantity.1=1"
    )
    assert transport.requests == []  # a link, not a request
