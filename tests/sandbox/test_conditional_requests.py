"""Whole-catalog documents (the Google feed, Fake Store's unpaged list) and DummyJSON's pages
answer conditional GETs as web servers do, and the adapters use them: a 304 means the catalog (or
the page) held is current."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from adapters.base import NotModified
from adapters.registry import build_adapter, load_marketplaces

CATALOG_DOCUMENTS = {"naijamall": "/naijamall/feed.xml", "fakestore": "/fakestore/products"}


@pytest.mark.parametrize("slug", sorted(CATALOG_DOCUMENTS))
def test_a_catalog_document_answers_304_while_it_has_not_changed(
    slug: str, http: httpx.Client, sandbox_control: httpx.Client
) -> None:
    path = CATALOG_DOCUMENTS[slug]
    first = http.get(path)
    assert first.status_code == 200 and first.content
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('"') and last_modified.endswith("GMT")

    same = http.get(path, headers={"If-None-Match": etag})
    assert (same.status_code, same.content) == (304, b"")
    assert same.headers["ETag"] == etag
    assert http.get(path, headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    assert http.get(path, headers={"If-Modified-Since": last_modified}).status_code == 304
    # If-None-Match decides when both are sent (RFC 9110): a stale tag gets the full body.
    stale = http.get(path, headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified})
    assert stale.status_code == 200 and stale.content == first.content

    # The next price epoch changes prices: a new version with a new tag.
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"price_epoch": 1}).raise_for_status()
    moved = http.get(path, headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["ETag"] != etag
    assert moved.content != first.content


@pytest.mark.parametrize("slug", sorted(CATALOG_DOCUMENTS))
def test_the_adapter_sends_the_held_validators_and_reports_not_modified(
    slug: str, sandbox_server: str
) -> None:
    env = {**os.environ, "ONECART_SANDBOX_URL": sandbox_server}
    (config,) = [c for c in load_marketplaces(Path("marketplaces.toml"), env) if c.slug == slug]
    with build_adapter(config) as adapter:
        records = [r for page in adapter.fetch_catalog_pages() for r in page.records]
        received = dict(adapter.received_validators)
    assert records and set(received) == {"etag", "last_modified"}

    with build_adapter(config) as adapter:
        adapter.catalog_validators = received
        with pytest.raises(NotModified):
            next(iter(adapter.fetch_catalog_pages()))

    with build_adapter(config) as adapter:
        adapter.catalog_validators = {"etag": '"something-else"'}
        again = [r for page in adapter.fetch_catalog_pages() for r in page.records]
    assert again == records


def _dummymart_page(http: httpx.Client, skip: int, etag: str | None = None) -> httpx.Response:
    headers = {"If-None-Match": etag} if etag else {}
    return http.get("/dummymart/products", params={"limit": 10, "skip": skip}, headers=headers)


def _pages(http: httpx.Client, pages: int) -> tuple[dict[int, str], dict[int, bytes]]:
    """Each page's ETag and body."""
    etags, bodies = {}, {}
    for n in range(pages):
        reply = _dummymart_page(http, 10 * n)
        etags[n], bodies[n] = reply.headers["ETag"], reply.content
    return etags, bodies


def test_dummyjson_pages_answer_304_while_their_records_have_not_changed(
    http: httpx.Client, sandbox_control: httpx.Client
) -> None:
    """Express sends an ETag with every JSON reply and answers 304 to a request that holds it:
    page by page, so a price change re-sends only the pages it touched."""
    pages = 8
    etags, bodies = _pages(http, pages)
    assert all(tag.startswith('W/"') for tag in etags.values())
    assert len(set(etags.values())) == pages
    same = _dummymart_page(http, 0, etags[0])
    assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", etags[0])
    assert _dummymart_page(http, 0, etags[0].removeprefix("W/")).status_code == 304
    assert _dummymart_page(http, 0, etags[1]).status_code == 200  # another page's tag
    # Another request (another page size) is another resource with its own tag.
    other = http.get(
        "/dummymart/products", params={"limit": 5, "skip": 0}, headers={"If-None-Match": etags[0]}
    )
    assert other.status_code == 200 and other.headers["ETag"] != etags[0]

    # Three price epochs re-price ~3% of the records: the pages holding one come back with a
    # new body and tag; every other page is still answered 304.
    sandbox_control.post("/_sandbox/knobs/dummymart", json={"price_epoch": 3}).raise_for_status()
    changed = 0
    for n in range(pages):
        reply = _dummymart_page(http, 10 * n, etags[n])
        if reply.status_code == 304:
            assert _dummymart_page(http, 10 * n).content == bodies[n]
        else:
            assert reply.status_code == 200 and reply.content != bodies[n]
            assert reply.headers["ETag"] != etags[n]
            changed += 1
    assert 0 < changed < pages


def test_the_dummyjson_adapter_hands_on_pages_not_modified_as_held(sandbox_server: str) -> None:
    env = {**os.environ, "ONECART_SANDBOX_URL": sandbox_server}
    (config,) = [
        c for c in load_marketplaces(Path("marketplaces.toml"), env) if c.slug == "dummymart"
    ]
    config = replace(config, page_size=25)
    with build_adapter(config) as adapter:
        first = list(adapter.fetch_catalog_pages())
        received = dict(adapter.received_page_validators)
    assert first and not any(page.held for page in first)
    assert sorted(received) == [page.page for page in first]
    assert received[1].follow["records"] == 25

    # Every page held: each answers 304 and paging goes on from what the held page said.
    with build_adapter(config) as adapter:
        adapter.page_validators = received
        again = list(adapter.fetch_catalog_pages())
        assert adapter.received_page_validators == received
    assert [(p.page, p.held, p.records) for p in again] == [(p.page, True, []) for p in first]

    # A validator for another request (another page size) is not sent.
    with build_adapter(replace(config, page_size=20)) as adapter:
        adapter.page_validators = received
        other = list(adapter.fetch_catalog_pages())
    assert not any(page.held for page in other)
    assert [r for p in other for r in p.records] == [r for p in first for r in p.records]
