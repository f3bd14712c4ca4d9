"""The sandbox answers the platforms' changed-since filters as they do, over real HTTP: Shopify's
Admin product list (`updated_at_min`, `ids`, `fields`, `page_info` cursors in Link headers) and
WooCommerce's Store API (`after`/`before` with `date_column`, `include`, `_fields`); a record's
modification time moves when a price epoch, the malformed rate or the unlisted_products knob
changes it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import httpx

from sandbox.shopify import SHOP_TIMEZONE
from tests.sandbox.conftest import SHOPIFY_ADMIN

TOKEN = {"X-Shopify-Access-Token": "shpat_test"}
STORE = "/kiondo/wp-json/wc/store/v1/products"


def admin_list(http: httpx.Client, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Every product of the Admin list for `params`, following the Link headers; and the
    number of requests."""
    products: list[dict[str, Any]] = []
    response = http.get(f"{SHOPIFY_ADMIN}/products.json", params=params, headers=TOKEN)
    requests = 1
    while True:
        products.extend(decode(response)["products"])
        link = response.links.get("next")
        if not link:
            return products, requests
        url = urlparse(link["url"])
        response = http.get(f"{url.path}?{url.query}", headers=TOKEN)
        requests += 1


def store_list(http: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every product of the Store API list for `params`, page by page."""
    records: list[dict[str, Any]] = []
    page = 1
    while True:
        response = http.get(STORE, params={**params, "page": page, "per_page": 100})
        records.extend(decode(response))
        if page >= int(response.headers["X-WP-TotalPages"]):
            return records
        page += 1


def storefront(http: httpx.Client) -> list[dict[str, Any]]:
    return decode(http.get("/shopwave/products.json", params={"limit": 250}))["products"]


def next_second() -> datetime:
    """Wait for the next whole second and return it: what changed before was modified before
    it, what changes from now on at or after it (modification times have no fractions)."""
    now = datetime.now(UTC)
    time.sleep(1.02 - now.microsecond / 1e6)
    return now.replace(microsecond=0) + timedelta(seconds=1)


def decode(response: httpx.Response) -> Any:
    """The JSON body; the sandbox writes some titles as invalid UTF-8 on purpose."""
    assert response.status_code == 200, response.text
    return json.loads(response.content.decode("utf-8", errors="replace"))


def test_the_admin_list_pages_by_cursor_and_filters_like_shopify(
    sandbox_control: httpx.Client,
) -> None:
    http = sandbox_control
    # Enough malformed records that an id repeats (duplicate_id) in the small test catalog.
    http.post("/_sandbox/knobs/shopwave", json={"malformed_rate": 0.2}).raise_for_status()
    assert http.get(f"{SHOPIFY_ADMIN}/products.json").status_code == 401
    listed = storefront(http)
    products, requests = admin_list(http, {"limit": 7})
    assert products == listed and requests == -(-len(listed) // 7)
    ids, _ = admin_list(http, {"limit": 250, "fields": "id"})
    assert ids == [{"id": p["id"]} for p in listed]
    some, _ = admin_list(http, {"limit": 3, "fields": "id,title"})
    assert some == [{"id": p["id"], "title": p["title"]} for p in listed]
    # Filters go with the first request only: the cursor carries them.
    first = http.get(f"{SHOPIFY_ADMIN}/products.json", params={"limit": 2}, headers=TOKEN)
    cursor = dict(httpx.URL(first.links["next"]["url"]).params)["page_info"]
    response = http.get(
        f"{SHOPIFY_ADMIN}/products.json",
        params={"page_info": cursor, "updated_at_min": "2026-01-01T00:00:00Z"},
        headers=TOKEN,
    )
    assert response.status_code == 400 and "updated_at_min" in response.json()["errors"]
    # `ids`: every record listed with those ids, a repeated id's records included.
    counts: dict[int, int] = {}
    for product in listed:
        counts[product["id"]] = counts.get(product["id"], 0) + 1
    repeated = [pid for pid, count in counts.items() if count > 1]
    assert repeated
    wanted = [repeated[0], listed[3]["id"]]
    by_id, _ = admin_list(http, {"ids": ",".join(map(str, wanted)), "limit": 250})
    assert by_id == [p for p in listed if p["id"] in wanted]


def test_updated_at_min_lists_exactly_what_a_change_touched(sandbox_control: httpx.Client) -> None:
    http = sandbox_control
    before = storefront(http)
    since = next_second()
    nothing, _ = admin_list(http, {"updated_at_min": since.isoformat(), "limit": 250})
    assert nothing == []
    http.post("/_sandbox/knobs/shopwave", json={"price_epoch": 4}).raise_for_status()
    after = storefront(http)
    changed, _ = admin_list(http, {"updated_at_min": since.isoformat(), "limit": 50})
    differ = [new for old, new in zip(before, after, strict=True) if old != new]
    assert differ and changed == differ
    for product in changed:
        assert datetime.fromisoformat(product["updated_at"]) >= since
    # A price that moved back is a change too; a moment without an offset is the shop's time.
    later = next_second()
    http.post("/_sandbox/knobs/shopwave", json={"price_epoch": 0}).raise_for_status()
    assert storefront(http) != after
    shop_time = later.astimezone(SHOP_TIMEZONE).replace(tzinfo=None).isoformat()
    back, _ = admin_list(http, {"updated_at_min": shop_time, "limit": 250})
    assert [p["id"] for p in back] == [p["id"] for p in differ]
    # Long ago: every product (the world's own dates).
    everything, _ = admin_list(
        http, {"updated_at_min": (since - timedelta(days=5000)).isoformat(), "limit": 250}
    )
    assert len(everything) == len(before)


def test_the_store_api_filters_by_modification_time_include_and_fields(
    sandbox_control: httpx.Client,
) -> None:
    http = sandbox_control
    before = store_list(http, {})
    ids = store_list(http, {"_fields": "id"})
    assert ids == [{"id": r["id"]} for r in before]
    assert store_list(http, {"_fields": "id,name"}) == [
        {"id": r["id"], "name": r["name"]} for r in before
    ]
    # `after` is exclusive: the second before.
    gmt = (next_second() - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert store_list(http, {"after": gmt, "date_column": "modified_gmt"}) == []
    gone = [before[0]["id"], before[9]["id"]]
    http.post(
        "/_sandbox/knobs/kiondo", json={"price_epoch": 6, "unlisted_products": gone}
    ).raise_for_status()
    after = store_list(http, {})
    assert [r["id"] for r in after] == [r["id"] for r in before if r["id"] not in gone]
    changed = store_list(http, {"after": gmt, "date_column": "modified_gmt"})
    kept = {r["id"]: r for r in before}
    differ = [r for r in after if kept[r["id"]] != r]
    assert differ and changed == differ
    # Without the GMT column, `after` compares with the publication date: nothing that recent.
    assert store_list(http, {"after": gmt, "date_column": "date_gmt"}) == []
    assert http.get(STORE, params={"date_column": "sometime"}).status_code == 400
    # Products put back are modified now: new offers for a changed-since client.
    again = (next_second() - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    http.post("/_sandbox/knobs/kiondo", json={"unlisted_products": []}).raise_for_status()
    back = store_list(http, {"after": again, "date_column": "modified_gmt"})
    assert sorted(r["id"] for r in back) == sorted(gone)
    included = store_list(http, {"include": f"{gone[1]},{before[3]['id']}"})
    assert [r["id"] for r in included] == [before[3]["id"], gone[1]]
    assert http.get(f"{STORE}/{gone[0]}").status_code == 200
