"""The index as the assistant sees it: its vocabulary (brands, categories and marketplaces from
its facets) and whether its documents carry vectors, cached for a few minutes; and the one
multi-search call every assistant query goes through, with the search service's failures as
SearchUnavailable (assistant.retrieval asks the index through it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import meilisearch
from meilisearch.errors import (
    MeilisearchApiError,
    MeilisearchCommunicationError,
    MeilisearchTimeoutError,
)

from assistant.vocabulary import CatalogVocabulary
from search_index.client import SearchUnavailable
from search_index.settings import EMBEDDER_NAME

VOCABULARY_TTL_S: Final = 300.0
# While the index has no vectors (the first embeddings run is still going), look again this
# often, so the assistant switches to hybrid search soon after they arrive.
VECTORS_RECHECK_S: Final = 15.0
MAX_FACET_VALUES: Final = 1000


# --- Vocabulary and index features -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexProfile:
    """What the index offers the assistant right now: its vocabulary and whether documents
    carry vectors (an embedder is declared)."""

    vocabulary: CatalogVocabulary
    has_vectors: bool


_profiles: dict[tuple[str, str], tuple[float, IndexProfile]] = {}
# When the embedder setting of a cached profile without vectors was last looked at.
_vector_checks: dict[tuple[str, str], float] = {}
_profiles_lock = threading.Lock()


def search_index(
    client: meilisearch.Client, queries: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    try:
        response = client.multi_search(list(queries))
    except MeilisearchTimeoutError as exc:
        raise SearchUnavailable("the search service timed out", reason="timeout") from exc
    except MeilisearchCommunicationError as exc:
        raise SearchUnavailable("the search service is unreachable", reason="unreachable") from exc
    except MeilisearchApiError as exc:
        if exc.code == "index_not_found":
            raise SearchUnavailable(
                "the product index is not built yet", reason="index_missing"
            ) from exc
        raise
    return list(response.get("results", []))


def load_index_profile(
    client: meilisearch.Client, index_uid: str, *, max_age_s: float = VOCABULARY_TTL_S
) -> IndexProfile:
    """The index's brands, categories, marketplaces and embedder, cached for `max_age_s`."""
    key = (str(client.config.url), index_uid)
    now = time.monotonic()
    with _profiles_lock:
        cached = _profiles.get(key)
    if cached is not None and now - cached[0] < max_age_s:
        loaded_at, profile = cached
        if profile.has_vectors:
            return profile
        with _profiles_lock:
            checked_at = _vector_checks.get(key, loaded_at)
        if now - checked_at < min(max_age_s, VECTORS_RECHECK_S):
            return profile
        with _profiles_lock:
            _vector_checks[key] = now
        if not _has_embedder(client, index_uid):
            return profile
        profile = replace(profile, has_vectors=True)
        with _profiles_lock:
            _profiles[key] = (loaded_at, profile)
        return profile
    facets, stores = search_index(
        client,
        [
            {
                "indexUid": index_uid,
                "q": "",
                "facets": ["brand", "category", "marketplace"],
                "limit": 0,
            },
            {
                "indexUid": index_uid,
                "q": "",
                "distinct": "marketplace",
                "limit": 100,
                "attributesToRetrieve": ["marketplace", "marketplace_name"],
            },
        ],
    )
    distribution = facets.get("facetDistribution") or {}
    names = {
        str(hit.get("marketplace")): str(hit.get("marketplace_name") or hit.get("marketplace"))
        for hit in stores.get("hits", [])
        if hit.get("marketplace")
    }
    for slug in distribution.get("marketplace") or {}:
        names.setdefault(slug, slug)
    vocabulary = CatalogVocabulary.from_facets(
        brands=(distribution.get("brand") or {}).keys(),
        categories=(distribution.get("category") or {}).keys(),
        marketplaces=names,
    )
    profile = IndexProfile(vocabulary=vocabulary, has_vectors=_has_embedder(client, index_uid))
    with _profiles_lock:
        _profiles[key] = (now, profile)
    return profile


def forget_index_profiles() -> None:
    """Drop cached profiles (after a rebuild, or between tests that rebuild an index)."""
    with _profiles_lock:
        _profiles.clear()
        _vector_checks.clear()


def _has_embedder(client: meilisearch.Client, index_uid: str) -> bool:
    try:
        embedders = client.http.get(f"indexes/{index_uid}/settings/embedders")
    except MeilisearchApiError:
        return False
    except (MeilisearchCommunicationError, MeilisearchTimeoutError) as exc:
        raise SearchUnavailable("the search service is unreachable", reason="unreachable") from exc
    return isinstance(embedders, Mapping) and EMBEDDER_NAME in embedders
