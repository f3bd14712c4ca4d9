"""Turning a retrieval into the answer a shopper reads: one line per product with its cheapest
suitable offer, the price in the shopper's display currency, the marketplace, the rating and which
parts of the request it meets; or, when nothing fits, which constraint to relax.

Everything here is deterministic and built only from index documents, so every product, price
and link in an answer exists in the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from assistant.amounts import format_amount
from assistant.intent import Intent
from assistant.matched_words import searchable_text, words_mentioned
from assistant.retrieval import Candidate, Relaxation, Retrieval
from assistant.vocabulary import category_key_for_value, category_label, fold
from commerce.cart_pricing import charged_price_minor
from commerce.fx import FxTable
from search_index.listings import hit_int, offers_summary

if TYPE_CHECKING:
    from assistant.follow_up import Conversation
    from assistant.refinements import Refinement

ANSWER_SCHEMA_VERSION: Final = 1

# What to tell a shopper to change, per constraint kind.
RELAX_ADVICE: Final[Mapping[str, str]] = {
    "budget": "raise your budget",
    "category": "look in another category",
    "exclude_category": "name the product you want",
    "brand": "ask for another brand",
    "exclude_brand": "allow the brand you excluded",
    "marketplace": "allow other marketplaces",
    "exclude_marketplace": "allow the marketplace you excluded",
    "exclude_word": "allow what you excluded",
    "exclude_substance": "allow what you excluded",
    "exclude_spec": "allow the size you excluded",
    "rating": "accept a lower rating",
    "keywords": "use fewer or different words",
    "available": "add “even if out of stock” to your request",
}


@dataclass(frozen=True, slots=True)
class ComparedOffer:
    """One marketplace's cheapest fitting offer of a suggested product, when asked to compare."""

    offer_id: str
    marketplace: str
    marketplace_name: str
    price_minor: int
    currency: str
    display_price_minor: int | None
    product_url: str | None

    def to_json(self) -> dict[str, Any]:
        """The stored form (money in integer minor units)."""
        return {
            "offer_id": self.offer_id,
            "marketplace": self.marketplace,
            "price_minor": self.price_minor,
            "currency": self.currency,
            "display_price_minor": self.display_price_minor,
        }


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One suggested product with the offer to buy (money in integer minor units)."""

    group_id: str
    offer_id: str
    marketplace: str
    marketplace_name: str
    marketplace_logo: str | None
    external_id: str
    title: str
    brand: str | None
    category: str | None
    image_url: str | None
    product_url: str | None
    price_minor: int
    currency: str
    display_price_minor: int | None
    display_currency: str
    budget_price_minor: int | None
    budget_currency: str | None
    rating: Decimal | None
    rating_count: int | None
    group_size: int
    group_marketplaces: int
    reasons: tuple[str, ...]
    score: float | None
    # Asked to compare: every marketplace's cheapest fitting offer, cheapest first.
    compared: tuple[ComparedOffer, ...] = ()
    # Of group_size and group_marketplaces, those a shopper can buy now (the offer document's
    # group_available and group_available_marketplaces; None where it does not carry them).
    group_available: int | None = None
    group_available_marketplaces: int | None = None

    @property
    def offers_text(self) -> str:
        """ "2 offers in stock on 2 marketplaces, 1 unavailable": the product's offers as its
        listing card and product page count them (search_index.listings.offers_summary)."""
        return offers_summary(
            self.group_size,
            self.group_marketplaces,
            self.group_available,
            self.group_available_marketplaces,
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form: which offer was suggested and at what price, nothing derived."""
        return {
            "compared_offers": [offer.to_json() for offer in self.compared],
            "group_id": self.group_id,
            "offer_id": self.offer_id,
            "marketplace": self.marketplace,
            "external_id": self.external_id,
            "title": self.title,
            "price_minor": self.price_minor,
            "currency": self.currency,
            "display_price_minor": self.display_price_minor,
            "display_currency": self.display_currency,
            "score": self.score,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class AssistantAnswer:
    """What the assistant says about one request."""

    prompt: str
    intent: Intent
    path: str
    message: str
    suggestions: list[Suggestion]
    notes: list[str] = field(default_factory=list)
    relaxations: list[Relaxation] = field(default_factory=list)
    display_currency: str = "USD"
    prose: str | None = None
    prose_source: str = "template"
    semantic_available: bool = False
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    # Follow-ups for a vague request (assistant.refinements), empty otherwise.
    refinements: tuple[Refinement, ...] = ()
    # Why keyword search answered instead of hybrid (a note says so), None otherwise.
    fallback_reason: str | None = None
    # The product asked for that no product in the catalog is called ("wallet"): the
    # suggestions, if any, are the nearest alternatives (assistant.retrieval).
    missing_product: str | None = None
    # What a follow-up to this answer refines (assistant.follow_up); None until the service
    # sets it.
    conversation: Conversation | None = None

    @property
    def found(self) -> bool:
        """True when at least one product fits (alternatives to a missing one do not)."""
        return bool(self.suggestions) and self.missing_product is None

    def to_json(self) -> dict[str, Any]:
        """AIPrompt.response_json: parsed intent, suggested ids and scores, which path answered."""
        return {
            "version": ANSWER_SCHEMA_VERSION,
            "path": self.path,
            "semantic_available": self.semantic_available,
            "display_currency": self.display_currency,
            "intent": self.intent.to_json(),
            "constraints": [c.label for c in self.intent.constraints()],
            "suggestions": [s.to_json() for s in self.suggestions],
            "product_ids": [s.offer_id for s in self.suggestions],
            "message": self.message,
            "notes": list(self.notes),
            "relaxations": [
                {"kind": r.kind, "label": r.label, "matches": r.matches, "hint": r.hint}
                for r in self.relaxations
            ],
            "refinements": [r.to_json() for r in self.refinements],
            "missing_product": self.missing_product,
            "prose_source": self.prose_source,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def _rating(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        rating = Decimal(str(value))
    except InvalidOperation:
        return None
    return rating.quantize(Decimal("0.1")) if rating.is_finite() else None


def safe_link(value: object, *, allow_relative: bool = False) -> str | None:
    """An http(s) URL (or a site-relative path when allowed) from marketplace data, else None:
    a `javascript:` link in a product URL must never reach an href."""
    if not isinstance(value, str) or not value.strip():
        return None
    url = value.strip()
    if url.lower().startswith(("http://", "https://")):
        return url
    if allow_relative and url.startswith("/") and not url.startswith("//"):
        return url
    return None


def reasons_for(
    candidate: Candidate,
    intent: Intent,
    marketplace_name: str,
    *,
    by_meaning: bool = False,
    instead_of: str | None = None,
) -> tuple[str, ...]:
    """Why a suggestion fits, in the shopper's words: each constraint it meets, then the words
    it was found by (or, found by meaning alone, that it is close to them); an alternative to
    a product the catalog lacks (`instead_of`) says first that it is one."""
    reasons: list[str] = []
    if instead_of is not None:
        reasons.append(f"an alternative: no product is called “{instead_of}”")
        by_meaning = True
    own = _own_alternatives(candidate, intent, marketplace_name)
    for constraint in intent.constraints():
        if constraint.kind == "available":
            reasons.append(f"in stock on {marketplace_name}")
        elif constraint.kind in own:
            if own[constraint.kind] == constraint.label or constraint.kind == "marketplace":
                reasons.append(own[constraint.kind])
        else:
            reasons.append(constraint.label)
    if intent.keywords and by_meaning:
        reasons.append(f'close in meaning to "{intent.keywords}"')
    elif intent.keywords:
        # Found is not proof of every word: say only those its text mentions.
        found, missing = _mentioned(candidate, intent.keywords)
        if found:
            reasons.append(f'matches "{intent.keywords if not missing else " ".join(found)}"')
    return tuple(reasons)


def _mentioned(candidate: Candidate, keywords: str) -> tuple[list[str], list[str]]:
    return words_mentioned(keywords, searchable_text(candidate.product, candidate.offer))


def _words_of_every_suggestion(candidates: list[Candidate], keywords: str) -> tuple[str, list[str]]:
    """The request's words every candidate mentions (as the answer says "matching …"), and
    those none mentions (for a note)."""
    if not candidates or not keywords:
        return keywords, []
    results = [_mentioned(candidate, keywords) for candidate in candidates]
    if not any(missing for _, missing in results):
        return keywords, []
    every = [word for word in results[0][0] if all(word in found for found, _ in results)]
    unmentioned = [word for word in results[0][1] if all(word in missing for _, missing in results)]
    return " ".join(every), unmentioned


# Constraints asked as alternatives ("Sony or Hisense"): a product is only one of them.
_ALTERNATIVE_KINDS: Final = ("category", "brand", "marketplace")


def _own_alternatives(
    candidate: Candidate, intent: Intent, marketplace_name: str
) -> dict[str, str]:
    """For each kind asked with several alternatives, the label of the one this suggestion is
    ("Sony", "Headphones", "sold on ShopWave"), so it is not said to be every one of them. A
    value the catalog spells in a way no label matches keeps every label (said, not dropped)."""
    own: dict[str, str] = {}
    if len(intent.categories) > 1:
        value = candidate.product.get("category") or candidate.offer.get("category")
        key = category_key_for_value(str(value)) if value else None
        if key in intent.categories:
            own["category"] = category_label(key)
    if len(intent.brands) > 1:
        brand = candidate.product.get("brand") or candidate.offer.get("brand")
        for asked in intent.brands:
            if brand and fold(str(brand)) == fold(asked):
                own["brand"] = asked
    if len(intent.marketplaces) > 1:
        own["marketplace"] = f"sold on {marketplace_name}"
    return own


def build_suggestion(
    candidate: Candidate,
    intent: Intent,
    *,
    fx: FxTable,
    display_currency: str,
    by_meaning: bool = False,
    instead_of: str | None = None,
) -> Suggestion:
    """A suggestion from a retrieval candidate, with its prices converted for display."""
    offer = candidate.offer
    price_minor = int(offer.get("price_minor") or 0)
    currency = str(offer.get("currency") or "USD")
    marketplace = str(offer.get("marketplace") or "")
    marketplace_name = str(offer.get("marketplace_name") or marketplace)
    budget_currency = intent.budget.currency if intent.budget is not None else None
    budget_price = None
    if budget_currency and budget_currency != display_currency:
        budget_price = fx.convert_or_none(price_minor, currency, budget_currency)
    return Suggestion(
        group_id=candidate.group_id,
        offer_id=str(offer.get("id") or ""),
        marketplace=marketplace,
        marketplace_name=marketplace_name,
        marketplace_logo=safe_link(offer.get("marketplace_logo"), allow_relative=True),
        external_id=str(offer.get("external_id") or ""),
        title=str(offer.get("title") or candidate.product.get("title") or ""),
        brand=candidate.product.get("brand") or offer.get("brand") or None,
        category=candidate.product.get("category") or offer.get("category") or None,
        image_url=safe_link(offer.get("image_url") or candidate.product.get("image_url")),
        product_url=safe_link(offer.get("product_url")),
        price_minor=price_minor,
        currency=currency,
        # As the cart will charge it (card steps in three-decimal currencies), like the listing.
        display_price_minor=charged_price_minor(fx, price_minor, currency, display_currency),
        display_currency=display_currency,
        budget_price_minor=budget_price,
        budget_currency=budget_currency if budget_price is not None else None,
        rating=_rating(offer.get("rating") if offer.get("rating") is not None else None),
        rating_count=hit_int(offer.get("rating_count")),
        group_size=hit_int(offer.get("group_size")) or 1,
        group_marketplaces=hit_int(offer.get("group_marketplaces")) or 1,
        group_available=hit_int(offer.get("group_available")),
        group_available_marketplaces=hit_int(offer.get("group_available_marketplaces")),
        reasons=reasons_for(
            candidate, intent, marketplace_name, by_meaning=by_meaning, instead_of=instead_of
        ),
        score=candidate.score,
        compared=tuple(
            _compared_offer(compared, fx, display_currency) for compared in candidate.compared
        ),
    )


def _compared_offer(offer: Mapping[str, Any], fx: FxTable, display_currency: str) -> ComparedOffer:
    price_minor = int(offer.get("price_minor") or 0)
    currency = str(offer.get("currency") or "USD")
    marketplace = str(offer.get("marketplace") or "")
    return ComparedOffer(
        offer_id=str(offer.get("id") or ""),
        marketplace=marketplace,
        marketplace_name=str(offer.get("marketplace_name") or marketplace),
        price_minor=price_minor,
        currency=currency,
        display_price_minor=charged_price_minor(fx, price_minor, currency, display_currency),
        product_url=safe_link(offer.get("product_url")),
    )


def _constraint_summary(intent: Intent) -> str:
    """The constraints as one phrase; alternatives of one kind read "Sony or Hisense"."""
    parts: list[str] = []
    previous = None
    for constraint in intent.constraints():
        if constraint.kind == "available":
            continue
        if constraint.kind in _ALTERNATIVE_KINDS and constraint.kind == previous:
            parts[-1] = f"{parts[-1]} or {constraint.label}"
        else:
            parts.append(constraint.label)
        previous = constraint.kind
    return ", ".join(parts)


def compose_message(
    intent: Intent,
    retrieval: Retrieval,
    suggestions: list[Suggestion],
    display_currency: str,
    *,
    matched_words: str | None = None,
) -> str:
    """The answer's opening sentences (the default prose, and the fallback of the LLM's).
    `matched_words` are the request's words every suggestion mentions (all of them when None)."""
    summary = _constraint_summary(intent)
    if retrieval.not_understood:
        # "asdkjh qwe" is no product the catalog lacks ("no product is called “qwe”").
        return (
            f"I did not understand “{intent.text}”: none of its words is a product, brand or "
            "anything the catalog mentions. Say what you want and, if you like, for whom, for "
            "what or for how much, for example “wireless headphones under $50” or “a gift for "
            "a runner”."
        )
    if retrieval.missing_kind is not None:
        # The nearest by meaning of "loves yoga" are no yoga products (a laptop named Yoga).
        return (
            f"The catalog has nothing for “{retrieval.missing_kind}”: no product of that kind "
            "is listed, so I am not suggesting unrelated ones. Name a product to look for "
            "instead, for example “a water bottle” or “headphones under $50”."
        )
    if retrieval.missing_product is not None:
        return _missing_message(
            intent, retrieval.missing_product, suggestions, summary, retrieval.mode
        )
    if suggestions:
        count = len(suggestions)
        noun = "product" if count == 1 else "products"
        what = f" for {summary}" if summary else ""
        matched = intent.keywords if matched_words is None else matched_words
        words = f' matching "{matched}"' if matched else ""
        text = (
            f"I found {count} {noun}{words}{what}. Each shows its cheapest offer that fits, "
            f"with prices in {display_currency}."
        )
        if intent.compare:
            text += (
                " Compared across marketplaces: each lists the cheapest offer of every "
                "marketplace that sells it and fits."
                if any(len(s.compared) > 1 for s in suggestions)
                else " None of them is sold by more than one marketplace within your request, "
                "so there are no prices to compare."
            )
        if intent.quantity > 1:
            first = suggestions[0]
            if first.display_price_minor is not None:
                total = format_amount(first.display_price_minor * intent.quantity, display_currency)
                text += f" {intent.quantity} of the first one would cost {total}."
        return text
    if not intent.asks_for_anything:
        return (
            "I could not find a product, brand or price in your request. Tell me what you are "
            "looking for in English, for example “running shoes under $40”."
        )
    if not summary and not intent.keywords:
        return "Tell me what you are looking for, for example “running shoes under $40”."
    asked = summary or f'"{intent.keywords}"'
    text = f"Nothing in the catalog fits all of: {asked}."
    if retrieval.relaxations:
        best = retrieval.relaxations[0]
        advice = RELAX_ADVICE.get(best.kind, "relax that part of the request")
        if best.kind == "keywords" and not intent.keywords:
            advice = "leave out the size"  # the size was all the "words" there were
        count = "is 1 match" if best.matches == 1 else f"are {best.matches} matches"
        text += f" Without “{best.label}” there {count}"
        text += f" ({best.hint})." if best.hint else "."
        text += f" Try to {advice}."
    else:
        text += " Try fewer constraints or other words."
    return text


def _missing_message(
    intent: Intent, missing: str, suggestions: list[Suggestion], summary: str, path: str
) -> str:
    """ "Nothing in the catalog fits …: no product is called “wallet”." and, when some are
    close in meaning, that they are alternatives, not what was asked for."""
    asked = ", ".join(part for part in (f"“{intent.keywords}”", summary) if part.strip("“”"))
    text = (
        f"Nothing in the catalog fits {asked or f'“{missing}”'}: no product is called “{missing}”."
    )
    if not suggestions:
        return text + " Try other words for it."
    count = len(suggestions)
    by = "meaning" if path == "hybrid" else "your other words"
    these = "This is the nearest alternative" if count == 1 else f"These {count} are the nearest"
    alternatives = "" if count == 1 else " alternatives"
    return (
        f"{text} {these}{alternatives} by {by}, not a {missing}: each shows its cheapest "
        f"offer that fits the rest of your request."
    )


def build_answer(
    prompt: str,
    intent: Intent,
    retrieval: Retrieval,
    *,
    fx: FxTable,
    display_currency: str,
    semantic_available: bool,
    notes: list[str] | None = None,
) -> AssistantAnswer:
    """The deterministic answer for a retrieval."""
    suggestions = [
        build_suggestion(
            c,
            intent,
            fx=fx,
            display_currency=display_currency,
            by_meaning=retrieval.by_meaning_only,
            instead_of=retrieval.missing_product,
        )
        for c in retrieval.candidates
    ]
    all_notes = list(notes or [])
    matched_words = None
    if not retrieval.by_meaning_only and retrieval.missing_product is None:
        matched_words, unmentioned = _words_of_every_suggestion(
            list(retrieval.candidates), intent.keywords
        )
        if unmentioned and not retrieval.words_dropped:
            said = "”, “".join(unmentioned)
            all_notes.append(
                f"No suggestion mentions “{said}”, so these match the rest of your request."
            )
    if retrieval.words_dropped:
        all_notes.append(
            f"No product mentions “{retrieval.words_dropped}”, so these match the rest of your "
            "request."
        )
    if retrieval.by_meaning_only and retrieval.missing_product is None:
        all_notes.append(
            f"No product matches most of “{intent.keywords}”; these are the closest in meaning."
        )
    if retrieval.fallback_reason:
        all_notes.append(
            f"Keyword search only: {retrieval.fallback_reason}. Results match your words, not "
            "their meaning."
        )
    all_notes.extend(intent.notes)
    return AssistantAnswer(
        prompt=prompt,
        intent=intent,
        path=retrieval.mode,
        message=compose_message(
            intent, retrieval, suggestions, display_currency, matched_words=matched_words
        ),
        suggestions=suggestions,
        notes=all_notes,
        relaxations=list(retrieval.relaxations),
        display_currency=display_currency,
        semantic_available=semantic_available,
        timings_ms=dict(retrieval.timings_ms),
        fallback_reason=retrieval.fallback_reason,
        missing_product=retrieval.missing_product,
    )
