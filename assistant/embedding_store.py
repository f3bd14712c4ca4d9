"""Offer embeddings in the warehouse (table `offer_embeddings`, DDL in sql/offer_embeddings.sql).

Embeddings are cached by (model, text hash): a refresh embeds only texts it has never seen, so a
pipeline run after a price change embeds nothing. The warehouse lock is held only to read texts
and to write finished batches, never while the model runs, so partition runs are not blocked by a
long embedding job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa

from assistant.embeddings import Embedder, offer_text, text_hash
from onecart.progress import progress_line
from search_index.documents import document_id
from search_index.settings import EMBEDDING_DIMENSIONS

SCHEMA_FILE: Final = Path(__file__).resolve().parent / "sql" / "offer_embeddings.sql"
# Texts embedded between two writes (and progress lines): a crash loses at most this much work.
WRITE_BATCH: Final = 512

ConnectionFactory = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class OfferText:
    """One current offer and the text its embedding is computed from."""

    marketplace: str
    external_id: str
    text: str
    text_hash: str

    @property
    def document_id(self) -> str:
        """The id of the offer's search document."""
        return document_id(self.marketplace, self.external_id)


@dataclass(frozen=True, slots=True)
class EmbeddingRefresh:
    """What one refresh did, for the asset's metadata and the benchmark."""

    model_id: str
    offers: int
    distinct_texts: int
    embedded: int
    reused: int
    pruned: int
    embed_seconds: float

    @property
    def offers_per_second(self) -> float:
        """Embedding throughput of this refresh (texts embedded per second of model time)."""
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0


def apply_embedding_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the offer_embeddings table when it does not exist yet."""
    conn.execute(SCHEMA_FILE.read_text(encoding="utf-8"))


def _table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    rows = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_name = ?",
        [table],
    ).fetchall()
    return bool(rows and rows[0][0])


def read_offer_texts(conn: duckdb.DuckDBPyConnection) -> list[OfferText]:
    """Every current offer's embedding text, in a stable order."""
    cursor = conn.execute(
        "SELECT marketplace, external_id, title, brand, category, description FROM products "
        "ORDER BY marketplace, external_id"
    )
    texts: list[OfferText] = []
    for marketplace, external_id, title, brand, category, description in cursor.fetchall():
        text = offer_text(
            {"title": title, "brand": brand, "category": category, "description": description}
        )
        texts.append(OfferText(marketplace, external_id, text, text_hash(text)))
    return texts


def known_hashes(conn: duckdb.DuckDBPyConnection, model_id: str) -> set[str]:
    """The text hashes already embedded with `model_id`."""
    if not _table_exists(conn, "offer_embeddings"):
        return set()
    rows = conn.execute(
        "SELECT text_hash FROM offer_embeddings WHERE model_id = ?", [model_id]
    ).fetchall()
    return {row[0] for row in rows}


def store_embeddings(
    conn: duckdb.DuckDBPyConnection,
    model_id: str,
    hashes: Sequence[str],
    vectors: Sequence[Sequence[float]],
) -> int:
    """Insert (or replace) embeddings; every vector must have EMBEDDING_DIMENSIONS floats."""
    if len(hashes) != len(vectors):
        raise ValueError("one vector per text hash")
    for vector in vectors:
        if len(vector) != EMBEDDING_DIMENSIONS:
            raise ValueError(f"expected {EMBEDDING_DIMENSIONS}-dimension vectors")
    if not hashes:
        return 0
    apply_embedding_schema(conn)
    now = datetime.now(UTC)
    staged = pa.table(
        {
            "model_id": pa.array([model_id] * len(hashes), pa.string()),
            "text_hash": pa.array(list(hashes), pa.string()),
            "embedding": pa.array(
                [list(map(float, v)) for v in vectors],
                pa.list_(pa.float32(), EMBEDDING_DIMENSIONS),
            ),
            "created_at": pa.array([now] * len(hashes), pa.timestamp("us", tz="UTC")),
        }
    )
    conn.register("staged_embeddings", staged)
    try:
        conn.execute(
            "INSERT OR REPLACE INTO offer_embeddings (model_id, text_hash, embedding, created_at) "
            "SELECT model_id, text_hash, embedding::FLOAT[384], created_at FROM staged_embeddings"
        )
    finally:
        conn.unregister("staged_embeddings")
    return len(hashes)


def prune_embeddings(conn: duckdb.DuckDBPyConnection, model_id: str, keep: Sequence[str]) -> int:
    """Delete this model's embeddings of texts no current offer has any more."""
    if not _table_exists(conn, "offer_embeddings"):
        return 0
    conn.register("kept_hashes", pa.table({"text_hash": pa.array(list(keep), pa.string())}))
    try:
        rows = conn.execute(
            "SELECT count(*) FROM offer_embeddings WHERE model_id = ? "
            "AND text_hash NOT IN (SELECT text_hash FROM kept_hashes)",
            [model_id],
        ).fetchall()
        conn.execute(
            "DELETE FROM offer_embeddings WHERE model_id = ? "
            "AND text_hash NOT IN (SELECT text_hash FROM kept_hashes)",
            [model_id],
        )
    finally:
        conn.unregister("kept_hashes")
    return int(rows[0][0]) if rows else 0


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def refresh_offer_embeddings(
    connect: ConnectionFactory,
    embedder: Embedder,
    *,
    progress: Progress | None = None,
    write_batch: int = WRITE_BATCH,
) -> EmbeddingRefresh:
    """Embed every current offer text that has no embedding yet, and drop unused ones.

    `connect` opens a short read-write warehouse connection (warehouse.connect or the Dagster
    resource's); it is called once to read, once per written batch and once to prune.
    """
    report = progress or (lambda _message: None)
    with connect() as conn:
        apply_embedding_schema(conn)
        offers = read_offer_texts(conn)
        existing = known_hashes(conn, embedder.model_id)
    texts_by_hash: dict[str, str] = {}
    for offer in offers:
        texts_by_hash.setdefault(offer.text_hash, offer.text)
    missing = sorted(h for h in texts_by_hash if h not in existing)
    report(
        f"{len(offers)} offers, {len(texts_by_hash)} distinct texts, {len(missing)} to embed "
        f"with {embedder.model_id}"
    )
    embed_seconds = 0.0
    done = 0
    # Similar lengths in one batch pad less; the model sorts within a batch, this across them.
    missing.sort(key=lambda h: len(texts_by_hash[h]))
    run_started = time.perf_counter()
    for batch in _chunks(missing, max(1, write_batch)):
        started = time.perf_counter()
        vectors = embedder.embed_documents([texts_by_hash[h] for h in batch])
        embed_seconds += time.perf_counter() - started
        with connect() as conn:
            store_embeddings(conn, embedder.model_id, batch, vectors)
        done += len(batch)
        report(
            progress_line(
                "embedding offers", done, len(missing), "texts", time.perf_counter() - run_started
            )
        )
    with connect() as conn:
        pruned = prune_embeddings(conn, embedder.model_id, list(texts_by_hash))
    return EmbeddingRefresh(
        model_id=embedder.model_id,
        offers=len(offers),
        distinct_texts=len(texts_by_hash),
        embedded=len(missing),
        reused=len(texts_by_hash) - len(missing),
        pruned=pruned,
        embed_seconds=embed_seconds,
    )


def latest_model_id(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The model whose embeddings were written last (None before any embedding run)."""
    if not _table_exists(conn, "offer_embeddings"):
        return None
    rows = conn.execute(
        "SELECT model_id FROM offer_embeddings ORDER BY created_at DESC LIMIT 1"
    ).fetchall()
    return rows[0][0] if rows else None


def read_document_vectors(
    conn: duckdb.DuckDBPyConnection, model_id: str | None = None
) -> dict[str, list[float]] | None:
    """Search-document id -> embedding of every current offer whose text is embedded.

    None when no embeddings exist at all (the index is then built without an embedder); offers
    whose text changed since the last refresh are left out (they get a null vector and stay
    findable by keywords until the next refresh). This is what the search_products asset hands
    to search_index.indexing.sync_index(vectors=...).
    """
    model_id = model_id or latest_model_id(conn)
    if model_id is None:
        return None
    offers = read_offer_texts(conn)
    rows = conn.execute(
        "SELECT text_hash, embedding FROM offer_embeddings WHERE model_id = ?", [model_id]
    ).fetchall()
    if not rows:
        return None
    by_hash = {text_hash_value: list(vector) for text_hash_value, vector in rows}
    return {
        offer.document_id: by_hash[offer.text_hash]
        for offer in offers
        if offer.text_hash in by_hash
    }
