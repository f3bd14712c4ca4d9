"""The offer_embeddings asset on a real DuckDB warehouse with the real model: only new or
changed texts are embedded, vectors reach Meilisearch in `_vectors.default`, and the asset skips
cleanly (saying why) when embeddings are switched off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import meilisearch
import pytest

import warehouse
from assistant.config import get_assistant_settings
from assistant.embedding_store import read_document_vectors
from assistant.embeddings import Embedder
from onecart.settings import REPO_ROOT
from pipelines.assets.embeddings import offer_embeddings
from pipelines.resources import WarehouseResource
from search_index.indexing import sync_index
from tests.assistant.catalog import OFFERS, search_documents

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _insert_products(db_path: Path, offers: list[dict[str, Any]]) -> None:
    with warehouse.connect(db_path) as conn:
        conn.execute("DELETE FROM products")
        for offer in offers:
            conn.execute(
                "INSERT INTO products (marketplace, external_id, title, description, price_minor,"
                " currency, category, brand, available, content_hash, first_seen_at, updated_at,"
                " fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, true, ?, ?, ?, ?)",
                [
                    offer["marketplace"],
                    offer["external_id"],
                    offer["title"],
                    offer["description"],
                    offer["price_minor"],
                    offer["currency"],
                    offer["category"],
                    offer["brand"],
                    f"h-{offer['external_id']}",
                    NOW,
                    NOW,
                    NOW,
                ],
            )


def _offers() -> list[dict[str, Any]]:
    return [
        {
            "marketplace": o.marketplace,
            "external_id": o.external_id,
            "title": o.title,
            "description": o.description,
            "price_minor": o.price_minor,
            "currency": o.currency,
            "category": o.category,
            "brand": o.brand,
        }
        for o in OFFERS
    ]


@pytest.fixture
def warehouse_resource(tmp_path: Path) -> WarehouseResource:
    return WarehouseResource(
        pipeline_db_path=str(tmp_path / "pipeline.duckdb"),
        published_path=str(tmp_path / "warehouse.duckdb"),
    )


def _materialize(resource: WarehouseResource) -> dict[str, Any]:
    """The refresh's metadata: a materialization when the vectors changed, else the observation
    the asset records instead (so the index is not synced again for nothing)."""
    result = dg.materialize([offer_embeddings], resources={"warehouse": resource})
    assert result.success
    materializations = result.asset_materializations_for_node("offer_embeddings")
    observations = result.asset_observations_for_node("offer_embeddings")
    events = materializations or observations
    assert len(events) == 1, (materializations, observations)
    metadata = {key: value.value for key, value in events[-1].metadata.items()}
    changed = bool(metadata.get("embedded") or metadata.get("pruned"))
    assert bool(materializations) == changed, metadata
    return metadata


def test_only_new_or_changed_texts_are_embedded(
    warehouse_resource: WarehouseResource, embedder: Embedder | None
) -> None:
    # The model ships with `make install` (requirements.lock): missing means a broken install.
    assert embedder is not None, "the embedding model is not installed (run make install)"
    db_path = Path(warehouse_resource.pipeline_db_path)
    offers = _offers()
    _insert_products(db_path, offers)

    first = _materialize(warehouse_resource)
    assert (first["skipped"], first["embedded"], first["reused"]) == ("", len(offers), 0)
    assert first["offers_per_second"] > 0

    second = _materialize(warehouse_resource)
    assert (second["embedded"], second["reused"]) == (0, len(offers))

    offers[0]["title"] = "Thermos Stainless King Travel Mug 20oz"
    _insert_products(db_path, offers[:-1])  # one title changed, one offer gone
    third = _materialize(warehouse_resource)
    assert (third["embedded"], third["pruned"]) == (1, 2)

    with warehouse.connect(db_path, read_only=True) as conn:
        vectors = read_document_vectors(conn)
    assert vectors is not None
    assert set(vectors) == {f"{o['marketplace']}--{o['external_id']}" for o in offers[:-1]}
    assert all(len(vector) == 384 for vector in vectors.values())
    norm = sum(value * value for value in vectors["shopwave--mug-1"])
    assert abs(norm - 1.0) < 1e-3  # normalised, as cosine similarity expects


def test_vectors_travel_in_vectors_default_and_missing_ones_are_null(
    warehouse_resource: WarehouseResource,
    embedder: Embedder | None,
    meili: meilisearch.Client,
) -> None:
    # The model ships with `make install` (requirements.lock): missing means a broken install.
    assert embedder is not None, "the embedding model is not installed (run make install)"
    db_path = Path(warehouse_resource.pipeline_db_path)
    _insert_products(db_path, _offers()[:3])
    _materialize(warehouse_resource)
    with warehouse.connect(db_path, read_only=True) as conn:
        vectors = read_document_vectors(conn)
    assert vectors is not None
    uid = "assistant_asset_vectors"
    documents = search_documents(OFFERS[:4])  # the fourth offer has no embedding yet
    try:
        result = sync_index(meili, uid, documents, vectors=vectors)
        assert result.rebuilt
        stored = meili.index(uid).get_documents({"retrieveVectors": True, "limit": 10}).results
        by_id = {doc.id: dict(doc) for doc in stored}
        assert by_id["shopwave--mug-1"]["_vectors"]["default"]["embeddings"]
        assert by_id["shopwave--shoe-1"]["_vectors"]["default"]["embeddings"] == []
        again = sync_index(meili, uid, documents, vectors=vectors)
        assert (again.rebuilt, again.sent, again.unchanged) == (False, 0, 4)
        vectors["shopwave--mug-1"] = [0.0] * 383 + [1.0]
        changed = sync_index(meili, uid, documents, vectors=vectors)
        assert (changed.sent, changed.unchanged) == (1, 3)
        keyword_only = sync_index(meili, uid, documents)
        assert not keyword_only.rebuilt  # the embedder goes in place
        assert "default" not in meili.http.get(f"indexes/{uid}/settings/embedders")
    finally:
        meili.delete_index(uid)


@pytest.fixture
def embeddings_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ONECART_ASSISTANT_EMBEDDINGS", "off")
    get_assistant_settings.cache_clear()
    yield
    get_assistant_settings.cache_clear()


def test_the_asset_skips_and_says_why_when_switched_off(
    warehouse_resource: WarehouseResource, embeddings_off: None
) -> None:
    _insert_products(Path(warehouse_resource.pipeline_db_path), _offers())
    metadata = _materialize(warehouse_resource)
    assert "switched off" in metadata["skipped"]


EMBEDDING_RUN = """
import json, sys
import dagster as dg
from pipelines.assets.embeddings import offer_embeddings
from pipelines.resources import WarehouseResource

resource = WarehouseResource(pipeline_db_path=sys.argv[1], published_path=sys.argv[2])
result = dg.materialize([offer_embeddings], resources={"warehouse": resource})
events = result.asset_materializations_for_node("offer_embeddings") or (
    result.asset_observations_for_node("offer_embeddings")
)
metadata = {key: value.value for key, value in events[-1].metadata.items()}
print("RESULT " + json.dumps({"embedded": metadata["embedded"], "reused": metadata["reused"]}))
"""


def _embedding_run(resource: WarehouseResource, home: Path) -> subprocess.Popen[str]:
    """An offer embeddings run in a process of its own, as `onecart ingest` runs one when the
    Dagster UI does not answer, or the daemon's run worker does."""
    environment = {**os.environ, "ONECART_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", EMBEDDING_RUN, resource.pipeline_db_path, resource.published_path],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(run: subprocess.Popen[str], marker: str, lines: list[str]) -> None:
    """Read the run's output into `lines` until a line holds `marker` (or the run ends)."""
    assert run.stdout is not None
    for line in run.stdout:
        lines.append(line)
        if marker in line:
            return
    raise AssertionError(f"the run ended before saying {marker!r}:\n{''.join(lines)}")


def test_a_second_embeddings_run_waits_for_the_first_and_embeds_only_what_is_left(
    warehouse_resource: WarehouseResource, embedder: Embedder | None, tmp_path: Path
) -> None:
    """Dagster's run queue launches one embeddings run at a time, but `onecart ingest` without
    the Dagster UI runs the embeddings in its own process, outside the queue: beside a run the
    daemon launched (or another ingest's) both embedded every text. The asset now holds a lock
    beside the warehouse for its whole step: a second run, however it was launched, waits for
    the first, says which one it waits for, and then embeds only what the first left."""
    # The model ships with `make install` (requirements.lock): missing means a broken install.
    assert embedder is not None, "the embedding model is not installed (run make install)"
    from warehouse.connection import exclusive_file_lock, lock_path_for

    db_path = Path(warehouse_resource.pipeline_db_path)
    offers = _offers()
    _insert_products(db_path, offers)
    home = tmp_path / "home"
    home.mkdir()
    # The model's ONNX export the session's `embedder` made, not a fresh one per process.
    (home / "models").symlink_to(REPO_ROOT / "var" / "models")
    first_lines: list[str] = []
    second_lines: list[str] = []
    # The first run takes the embeddings lock, then waits here for the warehouse.
    with exclusive_file_lock(lock_path_for(db_path)):
        first = _embedding_run(warehouse_resource, home)
        _read_until(first, "offer embeddings: loading the model", first_lines)
        second = _embedding_run(warehouse_resource, home)
        _read_until(second, "waiting for the offer embeddings run", second_lines)
    outputs = []
    for run, lines in ((first, first_lines), (second, second_lines)):
        rest, _ = run.communicate()
        outputs.append("".join(lines) + rest)
        assert run.returncode == 0, outputs[-1]

    first_result, second_result = (
        json.loads(output.split("RESULT ", 1)[1].splitlines()[0]) for output in outputs
    )
    assert first_result == {"embedded": len(offers), "reused": 0}, outputs[0]
    assert second_result == {"embedded": 0, "reused": len(offers)}, outputs[1]
