"""The first load: the index serves keyword search before the offers' embeddings exist, and the
assistant says so; once the embeddings run gives the index its vectors (sent in place, the
embedder added once every document carries them: no rebuild), the same process answers with
hybrid search without a restart."""

from __future__ import annotations

import uuid

import meilisearch
import pytest

from assistant import index_profile
from assistant.config import AssistantSettings
from assistant.embeddings import Embedder
from assistant.index_profile import forget_index_profiles, load_index_profile
from assistant.retrieval import MODE_HYBRID
from assistant.service import answer_prompt
from search_index.indexing import sync_index
from tests.assistant.catalog import FX, OFFERS, catalog_vectors, search_documents

PROMPT = "an insulated travel mug to keep my tea warm"


def test_the_assistant_answers_by_keywords_then_switches_to_hybrid(
    meili: meilisearch.Client,
    embedder: Embedder | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if embedder is None:
        pytest.skip("the switch to hybrid search needs the embedding model")
    uid = f"assistant_{uuid.uuid4().hex[:8]}_first_load"
    settings = AssistantSettings()
    # What the downstream run does: the catalog indexed without vectors.
    sync_index(meili, uid, search_documents(OFFERS))
    forget_index_profiles()

    def ask():  # type: ignore[no-untyped-def]
        return answer_prompt(
            PROMPT, client=meili, index_uid=uid, fx=FX, settings=settings, use_llm=False
        )

    try:
        first = ask()
        assert first.path == "keyword"
        assert first.suggestions, "keyword search answers meanwhile"
        assert any("no embeddings yet" in note for note in first.notes)

        # What the embeddings run does: the same documents, now with their vectors.
        result = sync_index(
            meili, uid, search_documents(OFFERS), vectors=catalog_vectors(embedder, OFFERS)
        )
        # In place: the documents again with their vectors, then the embedder (no rebuild, so
        # searches never see a gap and the next ingest finds the settings it declared).
        assert not result.rebuilt
        assert result.sent == len(OFFERS)

        # The cached profile (vocabulary) is kept; only the vector check is due again.
        monkeypatch.setattr(index_profile, "VECTORS_RECHECK_S", 0.0)
        assert load_index_profile(meili, uid).has_vectors
        second = ask()
        assert second.path == MODE_HYBRID
        assert second.semantic_available
        assert not any("no embeddings yet" in note for note in second.notes)
    finally:
        meili.delete_index(uid)
        forget_index_profiles()
