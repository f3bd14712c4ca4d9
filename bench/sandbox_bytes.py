"""The sandbox's catalog responses as sha256 digests, to show two checkouts answer byte for byte
alike (issue 11: the sandbox's record cache must not change a byte).

    PYTHONPATH=<checkout> .venv/bin/python -m bench.sandbox_bytes [--offers 12000] > digests.txt

One sandbox application (in process, through werkzeug's test client, so no port) answers the
same requests in four catalog states, one after the other, so whatever the sandbox keeps between
requests is exercised: price epoch 0; epoch 1 (~1% re-priced); malformed rate 0.05 (other records
broken and mended); epoch 3 with the rate back at 0.02. Each state is read twice (a second read
may be served from what the first left behind). Requests: the Google feed, the Fake Store list
(ascending, descending, limited), the CSV feed, DummyJSON pages (100 a page, the default 30,
an unaligned skip, a `select`), Bazaar cursor pages (100 and the default 50), and Shopify's and
WooCommerce's public pages. Prints one line per response: state, read, status, sha256, path.
Compare two checkouts' output with `diff`.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, tzinfo

from werkzeug.test import Client

import sandbox.service
from sandbox.app import SandboxConfig, create_app

STATES: tuple[tuple[str, dict[str, object]], ...] = (
    ("epoch0", {}),
    ("epoch1", {"price_epoch": 1}),
    ("malformed0.05", {"malformed_rate": 0.05}),
    ("epoch3", {"price_epoch": 3, "malformed_rate": 0.02}),
)
BAZAAR_KEY = {"X-Api-Key": "sandbox-bazaar-key"}
NEXT_CURSOR = re.compile(rb'"next_cursor":"([^"]+)"')


def bazaar_pages(client: Client, limit: int | None) -> Iterator[tuple[str, int, bytes]]:
    """Every Bazaar cursor page at `limit` (None: the API's default), following next_cursor."""
    query = "" if limit is None else f"limit={limit}"
    while True:
        path = "/bazaar/api/v1/listings" + (f"?{query}" if query else "")
        response = client.get(path, headers=BAZAAR_KEY)
        yield path, response.status_code, response.get_data()
        # Read the cursor from the bytes: a page may hold deliberately invalid UTF-8.
        found = NEXT_CURSOR.search(response.get_data()) if response.status_code == 200 else None
        if not found:
            return
        query = f"cursor={found.group(1).decode()}" + ("" if limit is None else f"&limit={limit}")


def requests(client: Client, offers_per_market: int) -> Iterator[tuple[str, int, bytes]]:
    """(path, status, body) of every response the check covers, in a fixed order."""
    paths = [
        "/naijamall/feed.xml",
        "/fakestore/products",
        "/fakestore/products?sort=desc",
        "/fakestore/products?limit=7",
        "/sokoni/feeds/onecart/products.csv",
        "/dummymart/products?limit=0",
        "/dummymart/products?skip=15&limit=50",
        "/dummymart/products?skip=40&limit=30&select=title,price",
        "/dummymart/products",
        "/shopwave/products.json?limit=250",
        "/kiondo/wp-json/wc/store/v1/products?per_page=100",
    ]
    paths += [
        f"/dummymart/products?limit=100&skip={skip}" for skip in range(0, offers_per_market, 100)
    ]
    for path in paths:
        response = client.get(path)
        yield path, response.status_code, response.get_data()
    yield from bazaar_pages(client, 100)
    yield from bazaar_pages(client, None)


class _FixedClock(datetime):
    """Shopify's `updated_at` of a changed record is when the sandbox noted the change (the wall
    clock): the same moment in every run, so two runs' bytes compare."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        return datetime(2026, 12, 1, 12, 0, tzinfo=tz)


def digests(offers: int) -> Iterator[str]:
    """One line per response over the four states, each read twice."""
    sandbox.service.datetime = _FixedClock  # type: ignore[misc]
    app = create_app(SandboxConfig(offers=offers, price_epoch_seconds=0))
    client = Client(app)
    per_market = app.world.offer_count("dummymart")
    for state, knobs in STATES:
        if knobs:
            client.post("/_sandbox/knobs/all", json=knobs).get_data()
        for read in (1, 2):
            for path, status, body in requests(client, per_market):
                yield f"{state} {read} {status} {hashlib.sha256(body).hexdigest()} {path}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_bytes")
    parser.add_argument("--offers", type=int, default=12000)
    args = parser.parse_args(argv)
    for line in digests(args.offers):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
