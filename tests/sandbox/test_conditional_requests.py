"""Whole-catalog documents (the Google feed, Fake Store's unpaged list) answer conditional GETs as
web servers do, and the adapters use them: a 304 means the catalog held is current."""

from __future__ import annotations

import os
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
