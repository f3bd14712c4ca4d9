"""Finding the products a request asks for in the Meilisearch `products` index.

Every parsed constraint becomes a filter, so nothing outside the request can be suggested. The
words left over rank the matches: with Meilisearch's hybrid search (keywords blended with the
request's sentence embedding against each offer's `_vectors.default`) when the model is loaded
and the index carries vectors, with keywords alone otherwise. Two round trips:

1. the best-ranked product groups that have an offer meeting every constraint (`distinct` on
   group_id);
2. for those groups, the cheapest offer that meets the offer-level constraints (price,
   marketplace, availability, rating). Brand, category and size describe the product, so any
   offer of a matching group qualifies (the Fake Store Berlin listing of a Sony TV names no
   brand, but it is the same TV).

Budgets are checked twice: as a USD range in the filter (rounded outwards so nothing is lost to
rounding) and then exactly, in the budget's own currency, on the offer that is suggested (both in
assistant.constraints).
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import meilisearch
from meilisearch.errors import (
    MeilisearchApiError,
)

from assistant.budget_hint import cheapest_match_hint
from assistant.constraints import (
    build_filter_clauses,
    join_clauses,
    text_has_spec,
    unmet_constraints,
)
from assistant.embeddings import Embedder
from assistant.exclusions import negative_terms
from assistant.hybrid_evidence import (
    answering_hits,
    asks_for_an_article,
    evidence_queries,
    found_by_words_or_meaning,
    named_product,
    named_product_queries,
    read_evidence,
    unserved_interest,
)
from assistant.index_profile import IndexProfile, search_index
from assistant.intent import SORT_PRICE_ASC, SORT_PRICE_DESC, SORT_RATING, Intent
from assistant.vocabulary import category_label
from commerce.fx import FxTable
from search_index.client import SearchUnavailable
from search_index.documents import OFFER_FIELDS, OfferDocument
from search_index.filters import quote_filter_value, withheld_marketplaces_clause
from search_index.settings import EMBEDDER_NAME

MODE_HYBRID: Final = "hybrid"
MODE_KEYWORD: Final = "keyword"
DEFAULT_LIMIT: Final = 10
CANDIDATE_FACTOR: Final = 2

# The typed offer document the site reads too (search_index.documents), without its hashes.
RESULT_FIELDS: Final = tuple(
    name
    for name in OFFER_FIELDS
    if name
    not in {
        "content_hash",
        "updated_at",
        "group_min_price_usd_minor",
        "previous_price_minor",
        "price_dropped_at",
    }
)

# The clause leaving out the offers of marketplaces an admin disabled: not the shopper's, so it
# is never relaxed; nor is the one leaving out products a conversation showed ("show me more").
WITHHELD: Final = "withheld"
SHOWN: Final = "shown"
OFFER_LEVEL: Final = frozenset(
    {"budget", "marketplace", "exclude_marketplace", "available", "rating", WITHHELD}
)


# --- Retrieval ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """One suggested product: the document it was matched by, its ranking score and the cheapest
    offer of it that meets the request."""

    group_id: str
    product: OfferDocument
    offer: OfferDocument
    score: float | None
    # Asked to compare: the cheapest fitting offer of each marketplace, cheapest first.
    compared: tuple[OfferDocument, ...] = ()


@dataclass(frozen=True, slots=True)
class Relaxation:
    """What dropping one constraint would find (for the "nothing fits" answer)."""

    kind: str
    label: str
    matches: int
    hint: str = ""


@dataclass(frozen=True, slots=True)
class Retrieval:
    """The outcome of one retrieval: the suggestions in order and how they were found."""

    mode: str
    candidates: list[Candidate]
    total_matches: int
    fallback_reason: str | None = None
    relaxations: list[Relaxation] = field(default_factory=list)
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    # The free-text words no product mentions, when the answer was found without them.
    words_dropped: str | None = None
    # Hybrid suggestions that are there by meaning alone: no product matches most of the words.
    by_meaning_only: bool = False
    # The product the request names when no product in the catalog is called so ("wallet"):
    # the candidates, if any, are the nearest alternatives, not what was asked for.
    missing_product: str | None = None
    # What the person asked for likes doing when no category holds it ("loves yoga").
    missing_kind: str | None = None
    # Nothing was read and no word of the request is in the catalog ("asdkjh qwe").
    not_understood: bool = False


_FREE_OF_RE = re.compile(r"(?<![\w\"-])([a-z0-9]+)-free(?![\w-])")


def keyword_query(intent: Intent) -> str:
    """The words for keyword ranking (the request's own, then the product words it implies),
    with sizes as exact phrases ("65-inch" -> "65 inch")."""
    phrases = [f'"{spec.replace("-", " ")}"' for spec in intent.specs]
    # "apple-free" (no brand the index knows, no substance): as words, Meilisearch searched
    # for "apple"; as a phrase only what is itself "apple-free" (or "hands-free") matches.
    keywords = _FREE_OF_RE.sub(lambda m: f'"{m.group(1)} free"', intent.keywords)
    excluded = negative_terms(intent.excluded_words)
    return " ".join(part for part in (keywords, intent.implied_words, *phrases, excluded) if part)


def retrieve(
    client: meilisearch.Client,
    index_uid: str,
    intent: Intent,
    *,
    profile: IndexProfile,
    fx: FxTable,
    embedder: Embedder | None,
    mode: str = MODE_HYBRID,
    semantic_ratio: float = 0.6,
    min_similarity: float = 0.0,
    limit: int = DEFAULT_LIMIT,
    embedder_missing_reason: str = "the embedding model is not installed",
    withheld: Collection[str] = (),
    shown_groups: Collection[str] = (),
) -> Retrieval:
    """Suggest up to `limit` product groups for the intent (see the module docstring), none of
    the `shown_groups`.

    `mode` asks for hybrid or keyword ranking; hybrid falls back to keywords, with the reason,
    when the model is missing, the index has no vectors, or Meilisearch refuses the vector query.
    Hybrid hits count only when some product matches the request's words or the closest is at
    least `min_similarity` similar to it; when no category, brand or size narrows the request,
    each hit must match most of its words or be that similar itself (assistant.hybrid_evidence).
    """
    timings: dict[str, float] = {}
    if not intent.asks_for_anything:
        # Browsing the whole catalog is no answer to a request nothing could be read from.
        return Retrieval(mode=MODE_KEYWORD, candidates=[], total_matches=0)
    vocabulary = profile.vocabulary
    clauses = build_filter_clauses(intent, vocabulary, fx)
    withheld_clause = withheld_marketplaces_clause(withheld)
    if withheld_clause:
        clauses[WITHHELD] = withheld_clause
    if shown_groups:
        listed = ", ".join(quote_filter_value(group) for group in shown_groups)
        clauses[SHOWN] = f"group_id NOT IN [{listed}]"
    structured = not intent.has_free_text
    fallback: str | None = None
    vector: list[float] | None = None
    used_mode = MODE_KEYWORD
    if mode == MODE_HYBRID and not structured:
        if embedder is None:
            fallback = embedder_missing_reason
        elif not profile.has_vectors:
            fallback = (
                "the product index has no embeddings yet (they are computed after the catalog "
                "is indexed; the assistant switches to hybrid search when they are in)"
            )
        else:
            started = time.perf_counter()
            vector = embedder.embed_query(intent.semantic_text or intent.keywords)
            timings["embed"] = (time.perf_counter() - started) * 1000
            used_mode = MODE_HYBRID
    elif mode == MODE_HYBRID and structured:
        used_mode = MODE_KEYWORD  # filters and sort say everything; nothing to rank by meaning

    query: dict[str, Any] = {
        "indexUid": index_uid,
        "q": keyword_query(intent),
        "distinct": "group_id",
        "limit": max(limit * CANDIDATE_FACTOR, limit),
        "showRankingScore": True,
        "attributesToRetrieve": list(RESULT_FIELDS),
        # Rare words matter most and frequent ones are dropped first, so one unknown word
        # ("keep" where documents say "keeps") does not empty the result.
        "matchingStrategy": "frequency",
    }
    full_filter = join_clauses(clauses)
    if full_filter:
        query["filter"] = full_filter
    if structured:
        query["sort"] = _structured_sort(intent.sort)
    if vector is not None:
        query["hybrid"] = {"embedder": EMBEDDER_NAME, "semanticRatio": semantic_ratio}
        query["vector"] = vector
        query["showRankingScoreDetails"] = True  # which side ranked each hit, and how similar

    started = time.perf_counter()
    evidence = None
    # "a black leather wallet": when no product within the filters names the product asked
    # for, the catalog lacks it, however close the nearest are (asked in the same round trip).
    head = None
    if not structured and not _has_product_constraints(intent) and not intent.implied_products:
        head = named_product(intent.semantic_text or intent.text, vocabulary)
    named = named_product_queries(query, head) if head else []
    missing_product = None
    try:
        if vector is None:
            first, *named_results = search_index(client, [query, *named])
        else:
            # In the same round trip: what the words alone and the meaning alone match.
            first, words_only, meaning_only, *named_results = search_index(
                client, [query, *evidence_queries(query), *named]
            )
            evidence = read_evidence(words_only, meaning_only)
        if named_results and not any(r.get("estimatedTotalHits") for r in named_results):
            missing_product = head
    except MeilisearchApiError as exc:
        if vector is None:
            raise SearchUnavailable(
                f"the search service refused the query: {exc.message}", reason="error"
            ) from exc
        fallback = f"semantic search failed ({exc.code}); keyword results shown"
        used_mode = MODE_KEYWORD
        query.pop("hybrid", None)
        query.pop("vector", None)
        query.pop("showRankingScoreDetails", None)
        first = search_index(client, [query])[0]
    timings["search"] = (time.perf_counter() - started) * 1000
    hits = [hit for hit in first.get("hits", []) if hit.get("group_id")]
    by_meaning_only = False
    if evidence is not None and "vector" in query:
        if not found_by_words_or_meaning(hits, evidence, min_similarity):
            hits = []
        elif not _has_product_constraints(intent):
            # Nothing but the words says what is wanted: the nearest vectors of a product the
            # catalog lacks are no answer (assistant.hybrid_evidence).
            hits, by_words = answering_hits(hits, evidence, min_similarity, intent.implied_products)
            by_meaning_only = bool(hits) and not by_words
    hits = [hit for hit in hits if all(text_has_spec(hit, spec) for spec in intent.specs)]
    total = int(first.get("estimatedTotalHits") or first.get("totalHits") or len(hits))

    words_dropped = False
    if not hits and intent.keywords and _has_product_constraints(intent):
        # No product mentions the leftover words ("mit gerauschunterdruckung"): the request's
        # product constraints still say what is wanted, so answer from them and say so.
        query = {**query, "q": keyword_query(replace(intent, keywords="", implied_words=""))}
        query.pop("hybrid", None)
        query.pop("vector", None)
        query["sort"] = _structured_sort(intent.sort)
        first = search_index(client, [query])[0]
        hits = [hit for hit in first.get("hits", []) if hit.get("group_id")]
        hits = [hit for hit in hits if all(text_has_spec(hit, spec) for spec in intent.specs)]
        total = int(first.get("estimatedTotalHits") or len(hits))
        words_dropped = bool(hits)
        used_mode = MODE_KEYWORD
        structured = True
    missing_kind = None
    if (
        (not hits or by_meaning_only)
        and missing_product is None
        and not intent.implied_products
        and not _has_product_constraints(intent)
    ):
        missing_kind = unserved_interest(intent.text, vocabulary)
        hits = [] if missing_kind else hits
    if not hits:
        words_matched = evidence.keyword_matches if evidence is not None else total
        read = any(c.kind != "available" for c in intent.constraints()) or intent.implied_words
        # An unknown word asked for with an article is a product the catalog lacks, said so.
        asked_for = missing_product is not None and asks_for_an_article(intent.text)
        not_understood = not (words_matched or read or missing_kind or asked_for)
        relaxations = []
        if not (missing_kind or not_understood):
            started = time.perf_counter()
            relaxations = _relaxations(client, index_uid, intent, clauses, fx)
            timings["relax"] = (time.perf_counter() - started) * 1000
        return Retrieval(
            mode=used_mode,
            candidates=[],
            total_matches=0,
            fallback_reason=fallback,
            relaxations=relaxations,
            timings_ms=timings,
            missing_product=None if not_understood else missing_product,
            missing_kind=missing_kind,
            not_understood=not_understood,
        )

    if not structured and intent.sort is not None:
        hits = hits[:limit]  # "cheapest" among the best matches, not the cheapest of anything

    started = time.perf_counter()
    offers = _cheapest_offers(client, index_uid, [h["group_id"] for h in hits], clauses)
    timings["offers"] = (time.perf_counter() - started) * 1000
    candidates: list[Candidate] = []
    # Products that break only what the text says not to be ("not the Revolution", "BPA-free"):
    # no filter holds those, so when nothing else is left the answer names them to allow.
    excluded_only: dict[str, int] = {}
    for hit in hits:
        offer = offers.get(hit["group_id"])
        chosen = None
        broken: set[str] = set()
        for option in (offer, hit):
            if option is None:
                continue
            unmet = unmet_constraints(intent, option, hit, fx)
            if not unmet:
                chosen = option
                break
            broken.update(unmet)
        if chosen is None:
            if len(broken) == 1 and broken <= _TEXT_EXCLUSIONS:
                kind = broken.pop()
                excluded_only[kind] = excluded_only.get(kind, 0) + 1
            continue
        candidates.append(
            Candidate(
                group_id=str(hit["group_id"]),
                product=hit,
                offer=chosen,
                score=hit.get("_rankingScore"),
            )
        )
    candidates = _order(candidates, intent.sort)[:limit]
    if intent.compare and candidates:
        started = time.perf_counter()
        candidates = _compare(client, index_uid, intent, candidates, clauses, fx)
        timings["compare"] = (time.perf_counter() - started) * 1000
    relaxations: list[Relaxation] = []
    if not candidates:
        labels = {c.kind: c.label for c in intent.constraints()}
        relaxations = [
            Relaxation(kind=kind, label=labels.get(kind, kind), matches=count)
            for kind, count in sorted(excluded_only.items(), key=lambda item: -item[1])
        ]
    return Retrieval(
        mode=used_mode,
        candidates=candidates,
        total_matches=total,
        fallback_reason=fallback,
        relaxations=relaxations,
        timings_ms=timings,
        words_dropped=intent.keywords if words_dropped else None,
        by_meaning_only=by_meaning_only and not words_dropped,
        missing_product=missing_product,
    )


_TEXT_EXCLUSIONS: Final = frozenset({"exclude_word", "exclude_substance", "exclude_spec"})


def _has_product_constraints(intent: Intent) -> bool:
    return bool(intent.categories or intent.brands or intent.specs)


def _structured_sort(sort: str | None) -> list[str]:
    if sort == SORT_PRICE_ASC:
        return ["price_usd_minor:asc"]
    if sort == SORT_PRICE_DESC:
        return ["price_usd_minor:desc"]
    # Without words to rank by, the best-rated and most-reviewed come first.
    return ["rating:desc", "rating_count:desc"]


def _order(candidates: list[Candidate], sort: str | None) -> list[Candidate]:
    if sort == SORT_PRICE_ASC:
        return sorted(candidates, key=lambda c: int(c.offer.get("price_usd_minor") or 0))
    if sort == SORT_PRICE_DESC:
        return sorted(candidates, key=lambda c: -int(c.offer.get("price_usd_minor") or 0))
    if sort == SORT_RATING:
        return sorted(
            candidates,
            key=lambda c: (
                -float(c.product.get("rating") or c.offer.get("rating") or 0),
                -int(c.product.get("rating_count") or 0),
            ),
        )
    return candidates


def _offers_of_groups(
    client: meilisearch.Client,
    index_uid: str,
    group_ids: Sequence[str],
    clauses: Mapping[str, str],
    *,
    limit: int,
    one_per_group: bool = False,
) -> dict[str, Any]:
    """The offers of `group_ids` that pass the request's offer-level filters, cheapest first
    (only each product's cheapest with `one_per_group`): asked by the filters alone, never the
    query's words."""
    groups = "group_id IN [" + ", ".join(quote_filter_value(g) for g in group_ids) + "]"
    offer_filter = join_clauses(clauses, only=OFFER_LEVEL)
    query: dict[str, Any] = {
        "indexUid": index_uid,
        "q": "",
        "filter": f"({groups}) AND ({offer_filter})" if offer_filter else groups,
        "sort": ["price_usd_minor:asc"],
        "limit": limit,
        "attributesToRetrieve": list(RESULT_FIELDS),
    }
    if one_per_group:
        query["distinct"] = "group_id"
    return search_index(client, [query])[0]


def _cheapest_offers(
    client: meilisearch.Client,
    index_uid: str,
    group_ids: Sequence[str],
    clauses: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    result = _offers_of_groups(
        client, index_uid, group_ids, clauses, limit=len(group_ids), one_per_group=True
    )
    return {str(hit["group_id"]): hit for hit in result.get("hits", []) if hit.get("group_id")}


# Offers read per product compared (a product is sold by a handful of marketplaces).
OFFERS_PER_COMPARED_PRODUCT: Final = 20


def _compare(
    client: meilisearch.Client,
    index_uid: str,
    intent: Intent,
    candidates: Sequence[Candidate],
    clauses: Mapping[str, str],
    fx: FxTable,
) -> list[Candidate]:
    """Each candidate with the cheapest offer of every marketplace that fits the request
    (cheapest first); those sold on two marketplaces or more first, unless an order was asked
    for. Asked by the filters alone, never the query's words: a negative term (-"qled") or a
    listing whose title leaves a word out must not drop a marketplace's offer of the product."""
    result = _offers_of_groups(
        client,
        index_uid,
        [c.group_id for c in candidates],
        clauses,
        limit=OFFERS_PER_COMPARED_PRODUCT * len(candidates),
    )
    by_group: dict[str, dict[str, OfferDocument]] = {c.group_id: {} for c in candidates}
    products = {c.group_id: c.product for c in candidates}
    for hit in result.get("hits", []):
        group = str(hit.get("group_id") or "")
        seen = by_group.get(group)
        marketplace = str(hit.get("marketplace") or "")
        if seen is None or marketplace in seen:
            continue
        if not unmet_constraints(intent, hit, products[group], fx):
            seen[marketplace] = hit
    compared = [replace(c, compared=tuple(by_group[c.group_id].values())) for c in candidates]
    if intent.sort is None:
        compared.sort(key=lambda c: len(c.compared) < 2)
    return compared


_PRODUCT_KINDS: Final = frozenset({"category", "keywords"})


def _relaxations(
    client: meilisearch.Client,
    index_uid: str,
    intent: Intent,
    clauses: Mapping[str, str],
    fx: FxTable,
) -> list[Relaxation]:
    """Count the matches with each constraint dropped in turn (one multi-search), stock
    included: a product that fits but is out of stock is named as such."""
    kinds = [kind for kind in clauses if kind not in {WITHHELD, SHOWN}]
    keyword_q = keyword_query(intent)
    queries: list[dict[str, Any]] = []
    labels: list[str] = []
    for kind in kinds:
        remaining = {k: v for k, v in clauses.items() if k != kind}
        query: dict[str, Any] = {
            "indexUid": index_uid,
            "q": keyword_q,
            "matchingStrategy": "frequency",
            "page": 1,
            "hitsPerPage": 0,
            "facets": ["price_usd_minor"] if kind == "budget" else [],
        }
        joined = join_clauses(remaining)
        if joined:
            query["filter"] = joined
        queries.append(query)
        labels.append(kind)
    if intent.excluded_words:
        # What naming the excluded words would add: the index left those out (negative terms).
        query = {
            "indexUid": index_uid,
            "q": keyword_query(replace(intent, excluded_words=())),
            "matchingStrategy": "frequency",
            "page": 1,
            "hitsPerPage": 0,
        }
        joined = join_clauses(clauses)
        if joined:
            query["filter"] = joined
        queries.append(query)
        labels.append("exclude_word")
    if intent.specs or intent.keywords:
        query = {"indexUid": index_uid, "q": "", "page": 1, "hitsPerPage": 0}
        joined = join_clauses(clauses)
        if joined:
            query["filter"] = joined
        queries.append(query)
        labels.append("keywords")
    if not queries:
        return []
    results = search_index(client, queries)
    labels_by_kind: dict[str, str] = {}
    for constraint in intent.constraints():
        labels_by_kind.setdefault(constraint.kind, constraint.label)
    relaxations: list[Relaxation] = []
    for kind, result in zip(labels, results, strict=True):
        matches = int(result.get("totalHits") or 0)
        if matches == 0:
            continue
        hint = ""
        if kind == "budget" and intent.budget is not None:
            stats = (result.get("facetStats") or {}).get("price_usd_minor") or {}
            cheapest = stats.get("min")
            if isinstance(cheapest, int | float):
                hint = cheapest_match_hint(
                    client, index_uid, queries[labels.index(kind)], int(cheapest), intent, fx
                )
        if kind == "keywords":
            label = (
                f'the words "{intent.keywords}"'
                if intent.keywords
                # "the size 65-inch", "size 42" (a shoe's size says "size" itself).
                else ", ".join(
                    spec if spec.startswith("size ") else f"the size {spec}"
                    for spec in intent.specs
                )
            )
        elif kind == "category":
            label = " or ".join(category_label(key) for key in intent.categories)
        else:
            label = labels_by_kind.get(kind, kind)
        relaxations.append(Relaxation(kind=kind, label=label, matches=matches, hint=hint))
    # Products that fit everything but are out of stock come first: the request was right,
    # only the stock is missing, and that is what the shopper should hear. Dropping the product
    # asked for (its category or words) comes last: that suggests other products altogether,
    # where a budget, a brand or a shop is something the shopper can change.
    # Next, what only the words the shopper excluded leave out: the rest of the request fits.
    relaxations.sort(
        key=lambda r: (
            r.kind != "available",
            r.kind != "exclude_word",
            r.kind in _PRODUCT_KINDS,
            -r.matches,
        )
    )
    return relaxations
