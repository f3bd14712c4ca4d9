"""The offers' int8 embedders against the float model they stand in for (real weights)."""

from __future__ import annotations

import math

import pytest

from assistant import embeddings, onnx_embedder
from assistant.embeddings import Embedder, load_embedder
from tests.assistant.catalog import OFFERS, offer_row

# Texts of very different lengths, so length-sorted batches must be put back in input order.
EXTRA_TEXTS = (
    "mug",
    "Thermos Stainless King vacuum insulated travel mug, keeps drinks hot for 7 hours. "
    "Leak-proof lid, fits most cup holders, dishwasher-safe body, 470 ml, brushed steel.",
)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def float_embedder() -> Embedder:
    embedder = load_embedder(quantized=False, threads=0)
    # The model ships with `make install` (requirements.lock): missing means a broken install.
    assert embedder is not None, "the embedding model is not installed (run make install)"
    return embedder


def test_the_onnx_int8_model_gives_the_float_models_vectors_in_input_order(
    embedder: Embedder | None, float_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # onnxruntime is pinned in requirements.lock: its absence is a broken install, not a skip.
    assert embedder is not None and onnx_embedder.onnx_available(), "onnxruntime is missing"
    assert isinstance(embedder, onnx_embedder.OnnxEmbedder)
    assert embedder.model_id.endswith(embeddings.ONNX_SUFFIX)
    texts = [embeddings.offer_text(offer_row(offer)) for offer in OFFERS] + list(EXTRA_TEXTS)
    monkeypatch.setattr(embedder, "batch_size", 3)  # several batches of similar lengths

    vectors = embedder.embed_documents(texts)
    reference = float_embedder.embed_documents(texts)

    assert len(vectors) == len(texts)
    for vector, expected in zip(vectors, reference, strict=True):
        assert len(vector) == 384
        assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-4)
        assert _cosine(vector, expected) > 0.97
    # In input order: each vector is nearer its own text's float vector than any other's.
    for i, vector in enumerate(vectors):
        nearest = max(range(len(reference)), key=lambda j: _cosine(vector, reference[j]))
        assert nearest == i
    # Activations are quantized with one scale per batch, so a text's vector moves a little with
    # its batch-mates (their padding included); alone it is still the same text.
    assert _cosine(embedder.embed_query(texts[-2]), vectors[-2]) > 0.98


def test_without_onnxruntime_offers_fall_back_to_torchs_int8_model(
    monkeypatch: pytest.MonkeyPatch, float_embedder: Embedder
) -> None:
    monkeypatch.setattr(embeddings, "_loaded", {})  # load afresh, leave the session's alone
    monkeypatch.setattr(onnx_embedder, "onnx_available", lambda: False)

    embedder = load_embedder(threads=0)  # 0: leave torch's threads as the session has them

    assert embedder is not None
    assert embedder.model_id.endswith("+qint8")
    assert not embedder.model_id.endswith(embeddings.ONNX_SUFFIX)
    [vector] = embedder.embed_documents(["Thermos travel mug, keeps drinks hot"])
    [expected] = float_embedder.embed_documents(["Thermos travel mug, keeps drinks hot"])
    assert _cosine(vector, expected) > 0.95
    assert load_embedder(backend="onnx") is None  # asked for by name, and not installed


def test_an_unknown_backend_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown embedding backend 'tensorrt'"):
        load_embedder(backend="tensorrt")
