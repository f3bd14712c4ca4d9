"""The site's own Meilisearch API key: read-only, for the search indexes, never the master key.

The site asks Meilisearch's keys API (with the master key) for a key that can only search, read
documents and read settings of the offers index and the product index built beside it. The key's uid is derived from the index uid, so every
site process and restart finds the same key instead of creating a new one. With MEILI_SEARCH_KEY
configured the site uses that key and never needs the master key.

Meilisearch computes a key's value from its uid and the master key, so nothing secret is stored
here; rotating the master key rotates the derived key too.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from search_index.settings import group_index_uid

# What the storefront and the assistant do with the index: multi-search, a document by id
# (product page fallback) and reading the embedder settings (whether semantic search exists).
SITE_KEY_ACTIONS = ("search", "documents.get", "settings.get")
SITE_KEY_NAMESPACE = uuid.UUID("5b0a2f2e-6f1c-4f4e-9f3c-0ec0a7c1b6d1")
KEYS_TIMEOUT_S = 5.0


class SearchKeyError(RuntimeError):
    """The search key could not be obtained (Meilisearch unreachable or the master key refused)."""


def site_key_uid(index_uid: str) -> str:
    """The stable uid of the site's key for `index_uid`."""
    # "v2": the key covers the product index too (a v1 key knew only the offers index).
    return str(uuid.uuid5(SITE_KEY_NAMESPACE, f"onecart-site-search-v2:{index_uid}"))


def derive_search_key(
    meili_url: str, master_key: str, index_uid: str, *, timeout: float = KEYS_TIMEOUT_S
) -> str:
    """The value of the site's read-only key for `index_uid`, created on first use.

    Raises SearchKeyError when Meilisearch cannot be reached or refuses the master key.
    """
    uid = site_key_uid(index_uid)
    headers = {"Authorization": f"Bearer {master_key}"}
    base = meili_url.rstrip("/")
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=timeout) as http:
            found = http.get(f"/keys/{uid}")
            if found.status_code == 200:
                return _key_value(found.json())
            if found.status_code != 404:
                raise SearchKeyError(f"Meilisearch refused the keys API ({found.status_code})")
            created = http.post(
                "/keys",
                json={
                    "uid": uid,
                    "name": f"onecart-site-{index_uid}"[:100],
                    "description": "OneCart storefront: read-only access to the search indexes",
                    "actions": list(SITE_KEY_ACTIONS),
                    "indexes": [index_uid, group_index_uid(index_uid)],
                    "expiresAt": None,
                },
            )
            if created.status_code == 409:  # another site process created it just now
                return _key_value(http.get(f"/keys/{uid}").json())
            if created.status_code >= 400:
                raise SearchKeyError(
                    f"Meilisearch refused to create the key ({created.status_code})"
                )
            return _key_value(created.json())
    except httpx.HTTPError as exc:
        raise SearchKeyError(f"Meilisearch is unreachable: {exc.__class__.__name__}") from exc


def _key_value(document: Any) -> str:
    value = document.get("key") if isinstance(document, dict) else None
    if not isinstance(value, str) or not value:
        raise SearchKeyError("Meilisearch answered a key without a value")
    return value
