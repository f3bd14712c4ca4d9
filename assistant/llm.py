"""Optional prose from an OpenAI-compatible chat endpoint (Ollama, llama.cpp server, vLLM…).

The model only writes a short introduction to suggestions that were already chosen; it is shown
the facts of those suggestions and nothing else. Its text is refused (and the deterministic
message used instead) when it is slow, fails, contains a link or markup, a number that is not in
the facts, or a brand that is not among the suggestions. Product cards, prices and links always
come from the index, never from the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final

import httpx

from assistant.amounts import format_amount
from assistant.answer import AssistantAnswer
from assistant.config import AssistantSettings
from assistant.vocabulary import fold

MAX_PROSE_CHARS: Final = 600
MAX_TOKENS: Final = 160
SYSTEM_PROMPT: Final = (
    "You are OneCart's shopping assistant. Write one to three short, friendly sentences that "
    "introduce the products listed in the facts for the shopper's request. Use only the facts. "
    "Do not mention any product, brand, store, price, number or link that is not in the facts. "
    "Do not use markup or lists. If unsure, say less."
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_FORBIDDEN = re.compile(r"https?://|www\.|<[a-z/!]|\]\(|```", re.IGNORECASE)


class ProseRejected(ValueError):
    """The model's text broke a grounding rule; the reason says which."""


def answer_facts(answer: AssistantAnswer) -> dict[str, Any]:
    """Everything the model may mention: the request, its constraints and the suggestions."""
    return {
        "request": answer.prompt,
        "constraints": [c.label for c in answer.intent.constraints()],
        "suggestions": [
            {
                "title": s.title,
                "brand": s.brand,
                "marketplace": s.marketplace_name,
                "price": (
                    format_amount(s.display_price_minor, s.display_currency)
                    if s.display_price_minor is not None
                    else format_amount(s.price_minor, s.currency)
                ),
                "rating": str(s.rating) if s.rating is not None else None,
            }
            for s in answer.suggestions
        ],
    }


def check_prose(text: str, facts: dict[str, Any], known_brands: Iterable[str]) -> str:
    """Return the cleaned prose, or raise ProseRejected when it is not grounded in `facts`."""
    prose = " ".join(text.split())
    if not prose:
        raise ProseRejected("empty")
    if len(prose) > MAX_PROSE_CHARS:
        raise ProseRejected("too long")
    if _FORBIDDEN.search(prose):
        raise ProseRejected("contains a link or markup")
    facts_text = json.dumps(facts, ensure_ascii=False)
    allowed_numbers = {n.replace(",", "") for n in _NUMBER.findall(facts_text)}
    for number in _NUMBER.findall(prose):
        if number.replace(",", "") not in allowed_numbers:
            raise ProseRejected(f"mentions {number}, which is not in the facts")
    folded_prose = fold(prose)
    suggested = {fold(str(s.get("brand") or "")) for s in facts["suggestions"]}
    for brand in known_brands:
        name = fold(brand)
        if (
            name
            and name not in suggested
            and re.search(rf"(?<![a-z]){re.escape(name)}(?![a-z])", folded_prose)
        ):
            raise ProseRejected(f"mentions {brand}, which is not among the suggestions")
    return prose


def write_prose(
    answer: AssistantAnswer,
    settings: AssistantSettings,
    *,
    known_brands: Iterable[str] = (),
    client: httpx.Client | None = None,
) -> str | None:
    """The model's introduction for a found answer, or None (not configured, slow, failed or
    not grounded): callers then keep the deterministic message."""
    if not settings.llm_configured or not answer.suggestions:
        return None
    facts = answer_facts(answer)
    headers = {"Content-Type": "application/json"}
    if settings.llm_api_key:
        headers["Authorization"] = f"Bearer {settings.llm_api_key}"
    body = {
        "model": settings.llm_model,
        "temperature": 0.2,
        "max_tokens": MAX_TOKENS,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "Facts:\n" + json.dumps(facts, ensure_ascii=False)},
        ],
    }
    url = str(settings.llm_base_url).rstrip("/") + "/chat/completions"
    owned = client is None
    http = client or httpx.Client(timeout=settings.llm_timeout_s)
    try:
        response = http.post(url, json=body, headers=headers, timeout=settings.llm_timeout_s)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            return None
        return check_prose(content, facts, known_brands)
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        return None
    finally:
        if owned:
            http.close()
