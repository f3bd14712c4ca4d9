"""The site searches with a read-only Meilisearch key, never the master key (issue 12), against
the real Meilisearch of the test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import meilisearch
import pytest
from flask import Flask

from onecart.settings import Settings
from search_index.search_keys import SITE_KEY_ACTIONS, derive_search_key, site_key_uid
from search_index.settings import group_index_uid
from storefront.catalog.shopper import search_client
from tests.storefront.sample_catalog import index_sample_catalog


@pytest.fixture(scope="module")
def index(meili_server: str, settings: Settings) -> Iterator[str]:
    client = meilisearch.Client(meili_server, settings.meili_master_key, timeout=30)
    uid = f"test_keys_{uuid.uuid4().hex[:10]}"
    index_sample_catalog(client, uid)
    yield uid
    client.wait_for_task(client.delete_index(uid).task_uid, timeout_in_ms=30_000)
    httpx.delete(
        f"{meili_server}/keys/{site_key_uid(uid)}",
        headers={"Authorization": f"Bearer {settings.meili_master_key}"},
    )


@pytest.fixture
def app_config_overrides(meili_server: str, index: str) -> dict[str, Any]:
    return {"MEILI_URL": meili_server, "MEILI_INDEX": index, "MEILI_SEARCH_KEY": None}


def test_the_site_searches_with_a_read_only_key_for_its_index(
    app: Flask, client: Any, meili_server: str, index: str, settings: Settings
) -> None:
    with app.app_context():
        key = search_client().config.api_key
    assert key and key != settings.meili_master_key
    master = {"Authorization": f"Bearer {settings.meili_master_key}"}
    described = httpx.get(f"{meili_server}/keys/{key}", headers=master).json()
    assert sorted(described["actions"]) == sorted(SITE_KEY_ACTIONS)
    assert described["indexes"] == [index, group_index_uid(index)]

    site = {"Authorization": f"Bearer {key}"}
    found = httpx.post(f"{meili_server}/indexes/{index}/search", json={"q": ""}, headers=site)
    assert found.status_code == 200 and found.json()["hits"]
    # Everything else is refused: writing documents, deleting the index, managing keys.
    writes = [
        httpx.post(f"{meili_server}/indexes/{index}/documents", json=[{"id": "x"}], headers=site),
        httpx.delete(f"{meili_server}/indexes/{index}", headers=site),
        httpx.get(f"{meili_server}/keys", headers=site),
    ]
    assert [response.status_code for response in writes] == [403, 403, 403]
    # The search page works with it.
    assert client.get("/search?q=phone").status_code == 200


def test_the_key_is_the_same_for_every_site_process(
    meili_server: str, index: str, settings: Settings
) -> None:
    first = derive_search_key(meili_server, settings.meili_master_key, index)
    again = derive_search_key(meili_server, settings.meili_master_key, index)
    assert first == again


@pytest.mark.parametrize("app_config_overrides", [{"MEILI_SEARCH_KEY": "configured-search-key"}])
def test_a_configured_search_key_is_used_as_is(app: Flask) -> None:
    with app.app_context():
        assert search_client().config.api_key == "configured-search-key"
