"""One request in, one answer out: the assistant's entry point for the site, the evaluation and
the benchmark.

It reads the index's vocabulary, parses the request, loads the embedding model when it is
installed and switched on (once per process), retrieves, and composes the answer; the optional
LLM only rewrites the opening prose.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import httpx
import meilisearch

from assistant.answer import AssistantAnswer, build_answer
from assistant.config import AssistantSettings, get_assistant_settings
from assistant.embeddings import Embedder, load_embedder, model_status
from assistant.follow_up import (
    KIND_MORE,
    Conversation,
    FollowUp,
    no_more_message,
    read_follow_up,
    remember,
)
from assistant.index_profile import load_index_profile
from assistant.intent import clean_prompt, parse_intent
from assistant.llm import write_prose
from assistant.refinements import suggest_refinements
from assistant.retrieval import (
    DEFAULT_LIMIT,
    MODE_HYBRID,
    MODE_KEYWORD,
    retrieve,
)
from assistant.verdict import parse_which_is_better
from assistant.verdict_answer import answer_which_is_better
from commerce.fx import FxTable


def semantic_embedder(settings: AssistantSettings) -> tuple[Embedder | None, str]:
    """The process's request embedder, or None with the reason keyword search is used instead.

    Requests go through the float model as shipped, whatever the offers were embedded with: one
    short text costs milliseconds either way, and against int8 offer vectors float requests kept
    the evaluation's hybrid recall@10 (0.903) where int8 on both sides lost a point (0.884).
    """
    if not settings.embeddings_enabled:
        return None, "semantic search is switched off (ONECART_ASSISTANT_EMBEDDINGS=off)"
    embedder = load_embedder(settings.model_package, quantized=False, threads=0)
    if embedder is None:
        return None, model_status(settings.model_package).reason
    return embedder, ""


def answer_prompt(
    prompt: str,
    *,
    client: meilisearch.Client,
    index_uid: str,
    fx: FxTable,
    display_currency: str = "USD",
    settings: AssistantSettings | None = None,
    mode: str = MODE_HYBRID,
    limit: int = DEFAULT_LIMIT,
    use_llm: bool = True,
    http_client: httpx.Client | None = None,
    withheld_marketplaces: Collection[str] = (),
    conversation: Conversation | None = None,
) -> AssistantAnswer:
    """Answer one shopper request with products from the index (see the package docstring),
    never an offer of the `withheld_marketplaces` (disabled by an admin). With the
    `conversation` of the answer before, a follow-up ("cheaper", "in blue", "show me more")
    refines that request (assistant.follow_up); the answer carries the conversation after it.

    Raises search_index.client.SearchUnavailable when Meilisearch cannot answer.
    """
    settings = settings or get_assistant_settings()
    profile = load_index_profile(client, index_uid)
    display_currency = display_currency if fx.has(display_currency) else "USD"
    sides = parse_which_is_better(clean_prompt(prompt))
    if sides is not None:
        # "Which is better, X or Y?": each side's best match, compared (assistant.verdict).
        return answer_which_is_better(
            clean_prompt(prompt),
            sides,
            ask=lambda side: answer_prompt(
                side,
                client=client,
                index_uid=index_uid,
                fx=fx,
                display_currency=display_currency,
                settings=settings,
                mode=mode,
                limit=1,
                use_llm=False,
                withheld_marketplaces=withheld_marketplaces,
            ),
            client=client,
            index_uid=index_uid,
            display_currency=display_currency,
            withheld=withheld_marketplaces,
        )
    follow_up: FollowUp | None = None
    if conversation is not None:
        follow_up = read_follow_up(
            prompt, conversation, profile.vocabulary, default_currency=display_currency
        )
    if follow_up is not None:
        intent = follow_up.intent
        prompt = intent.text
    else:
        intent = parse_intent(prompt, profile.vocabulary, default_currency=display_currency)
    notes: list[str] = [follow_up.note] if follow_up is not None else []
    if intent.budget is not None and not fx.has(intent.budget.currency):
        notes.append(
            f"There is no exchange rate for {intent.budget.currency}, so the budget was ignored."
        )
        intent = replace(intent, budget=None)
    embedder: Embedder | None = None
    reason = "keyword search was requested"
    if mode == MODE_HYBRID:
        embedder, reason = semantic_embedder(settings)
    retrieval = retrieve(
        client,
        index_uid,
        intent,
        profile=profile,
        fx=fx,
        embedder=embedder,
        mode=mode if mode in {MODE_HYBRID, MODE_KEYWORD} else MODE_HYBRID,
        semantic_ratio=settings.semantic_ratio,
        min_similarity=settings.min_similarity,
        limit=limit,
        embedder_missing_reason=reason,
        withheld=withheld_marketplaces,
        shown_groups=follow_up.shown if follow_up is not None else (),
    )
    answer = build_answer(
        prompt,
        intent,
        retrieval,
        fx=fx,
        display_currency=display_currency,
        semantic_available=embedder is not None and profile.has_vectors,
        notes=notes,
    )
    more = follow_up is not None and follow_up.kind == KIND_MORE
    if more and conversation is not None and not answer.suggestions:
        answer = replace(answer, message=no_more_message(conversation), relaxations=[])
    answer = replace(
        answer,
        conversation=remember(
            answer.intent,
            follow_up.shown if more and follow_up is not None else (),
            answer.suggestions,
            answer.prompt,
        ),
    )
    refinements = suggest_refinements(
        intent, answer.suggestions, profile.vocabulary, display_currency
    )
    if refinements:
        answer = replace(answer, refinements=tuple(refinements))
    if use_llm and settings.llm_configured and answer.found:
        prose = write_prose(
            answer, settings, known_brands=profile.vocabulary.brands, client=http_client
        )
        if prose is not None:
            answer = replace(answer, prose=prose, prose_source="llm")
    return answer


def warm_up(settings: AssistantSettings | None = None) -> str:
    """Load the embedding model and embed one request, so a site worker's first assistant
    request does not pay for it (about ten seconds on a small machine). Returns what was done."""
    settings = settings or get_assistant_settings()
    embedder, reason = semantic_embedder(settings)
    if embedder is None:
        return f"assistant model not loaded: {reason}"
    embedder.embed_query("warm up")
    return f"assistant model loaded: {embedder.model_id}"
