"""Which hybrid hits answer the request: those its words agree with, or those close enough in
meaning.

Hybrid ranking always returns the nearest vectors, whatever they are: when the catalog lacks
the product asked for ("a black leather wallet"), one common word matching something ("black"
TVs) made every nearest product an answer, a book and a running shoe among them. So in the same
round trip as the hybrid query, two queries without hits' bodies ask each side alone (the
request's words; its embedding) how well each product group matches, and
:func:`answering_hits` keeps a hit only when most of the request's words match it, its
similarity reaches the floor (assistant.config's min_similarity), or it is of the one kind of
product the nearest by meaning are and nearly as near ("stay focused in a noisy open-plan
office": twenty noise-cancelling headphones at 0.64-0.66 on the demo catalog, under a floor
that meaningless text also reaches; a small catalog without the product has nearest of every
kind).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from assistant.catalog_words import activity_words, catalog_words
from assistant.vocabulary import CatalogVocabulary, fold


@dataclass(frozen=True, slots=True)
class Evidence:
    """What each side alone says about the request: how many products its words match, the
    share of its words each group matches, and each group's similarity to it (for the best
    `limit` groups of each side)."""

    keyword_matches: int
    word_share: Mapping[str, float]
    similarity: Mapping[str, float]
    # The category of each group the meaning side found (folded).
    categories: Mapping[str, str] = field(default_factory=dict)


# Of the nearest groups by meaning, how many are looked at, and how many of them must be of one
# category for it to be the kind of product the request means.
NEAREST: Final = 10
ONE_KIND: Final = 5
# How much less similar than the nearest a product of that kind may be and still answer.
KIND_SPREAD: Final = 0.05
# How far under the floor the nearest may be for its kind to answer. On the demo catalog the
# requests that meant something had their kind's nearest at 0.66; "aaaa bbbb" at 0.637 (its
# nearest all headphones named "A30529A18A"). Two requests each side: a guess, not a fit.
KIND_MARGIN: Final = 0.03


def evidence_queries(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The hybrid query's two sides alone: its words (without the vector), its vector (all
    meaning), each returning only group ids and ranking details."""
    words = {key: value for key, value in query.items() if key not in {"hybrid", "vector"}}
    words.update(
        showRankingScore=False,
        showRankingScoreDetails=True,
        attributesToRetrieve=["group_id", "category"],
    )
    meaning = {**words, "q": "", "hybrid": {**query["hybrid"], "semanticRatio": 1.0}}
    meaning["vector"] = query["vector"]
    return [words, meaning]


def read_evidence(words: Mapping[str, Any], meaning: Mapping[str, Any]) -> Evidence:
    """The evidence from the answers to :func:`evidence_queries`."""
    share: dict[str, float] = {}
    for hit in words.get("hits", []):
        detail = (hit.get("_rankingScoreDetails") or {}).get("words") or {}
        most = int(detail.get("maxMatchingWords") or 0)
        if hit.get("group_id") and most:
            share[str(hit["group_id"])] = int(detail.get("matchingWords") or 0) / most
    similarity: dict[str, float] = {}
    categories: dict[str, str] = {}
    for hit in meaning.get("hits", []):
        detail = (hit.get("_rankingScoreDetails") or {}).get("vectorSort") or {}
        if hit.get("group_id") and "similarity" in detail:
            similarity[str(hit["group_id"])] = float(detail["similarity"])
            categories[str(hit["group_id"])] = fold(str(hit.get("category") or ""))
    return Evidence(
        keyword_matches=int(words.get("estimatedTotalHits") or 0),
        word_share=share,
        similarity=similarity,
        categories=categories,
    )


def _nearest_kind(evidence: Evidence) -> tuple[str, float] | None:
    """The category most of the nearest groups by meaning are of, with the nearest one's
    similarity; None when they are of every kind (the catalog lacks what is asked for)."""
    nearest = sorted(evidence.similarity, key=lambda g: -evidence.similarity[g])[:NEAREST]
    if not nearest:
        return None
    kinds = Counter(evidence.categories.get(group, "") for group in nearest)
    kind, count = kinds.most_common(1)[0]
    if not kind or count < ONE_KIND:
        return None
    return kind, evidence.similarity[nearest[0]]


def _kind_answering(evidence: Evidence, min_similarity: float) -> tuple[str, float] | None:
    nearest_kind = _nearest_kind(evidence)
    if nearest_kind is None or nearest_kind[1] < min_similarity - KIND_MARGIN:
        return None
    return nearest_kind


def found_by_words_or_meaning(
    hits: Sequence[Mapping[str, Any]], evidence: Evidence, min_similarity: float
) -> bool:
    """Does the request find anything? It does when its words match some product (keyword
    search alone would answer too), or when the closest hit is at least `min_similarity`
    similar. Every text has nearest vectors, "aaaaaaaa" too: without this floor they were
    suggested where keyword search found nothing."""
    if evidence.keyword_matches:
        return True
    closest = max(
        (evidence.similarity.get(str(hit.get("group_id")), 0.0) for hit in hits), default=0.0
    )
    return closest >= min_similarity


def _names_product(hit: Mapping[str, Any], products: Sequence[str]) -> bool:
    """Every word of one of the products the request implies ("blender" for "make smoothies")
    starts a word of the hit's title, description or category ("Blenders" too)."""
    text = fold(" ".join(str(hit.get(key) or "") for key in ("title", "description", "category")))
    return any(
        all(re.search(rf"(?<![a-z0-9]){re.escape(word)}", text) for word in product.split())
        for product in products
    )


def answering_hits(
    hits: Sequence[Mapping[str, Any]],
    evidence: Evidence,
    min_similarity: float,
    products: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], bool]:
    """The hits that answer a request naming no product constraint (no category, brand or
    size filters them): most of its words match them, they name a product its use implies
    (`products`, assistant.glossary: "make smoothies for breakfast" has one word of four
    in a blender), they are at least `min_similarity` similar to it, or they are of the kind
    most of the nearest are (ONE_KIND of NEAREST) within KIND_SPREAD of the nearest, itself no
    more than KIND_MARGIN under the floor. Also whether any is
    there by its words (else the answer says they are only close in meaning). A group beyond
    each side's best has neither score."""
    kept: list[dict[str, Any]] = []
    by_words = False
    nearest_kind = _kind_answering(evidence, min_similarity)
    for hit in hits:
        group = str(hit.get("group_id"))
        agrees = evidence.word_share.get(group, 0.0) > 0.5 or bool(
            products and _names_product(hit, products)
        )
        similarity = evidence.similarity.get(group, 0.0)
        of_the_kind = nearest_kind is not None and (
            evidence.categories.get(group) == nearest_kind[0]
            and similarity >= nearest_kind[1] - KIND_SPREAD
        )
        if agrees or similarity >= min_similarity or of_the_kind:
            kept.append(dict(hit))
            by_words = by_words or agrees
    return kept, by_words


# --- The product a request names -------------------------------------------------------------

# How a request may begin before what it asks for ("I'm looking for a wallet").
_LEAD_IN_RE = re.compile(
    r"^(?:(?:hi|hello|hey|please)[,!]?\s+)*(?:(?:i(?:'m| am)?|we(?:'re| are)?)\s+)?"
    r"(?:(?:would like|want(?:ed)?|need|looking for|searching for|after|show me|find me|"
    r"get me|recommend|suggest)\s+)*"
)
_DETERMINER = r"(?:a|an|the|some|any|one|new|good|nice)"
# Where the noun phrase that opens the request ends.
_PHRASE_END_RE = re.compile(
    r"\s+(?:for|with|to|that|which|who|in|on|at|from|of|under|below|over|without|by|and|or|but|"
    r"so|like|than|around|about|not|no)\s|\s+(?:please|pls|thanks|thank you)\b|[,.;:!?(]"
)
# Heads that name no kind of product: what they are is said by the words around them.
_GENERIC_HEADS: Final = frozenset(
    {
        "something", "anything", "thing", "things", "stuff", "gift", "gifts", "present",
        "presents", "idea", "ideas", "item", "items", "product", "products", "gadget",
        "gadgets", "gear", "kit", "equipment", "device", "devices", "tool", "tools",
        "accessory", "accessories", "essentials", "one", "ones", "set", "way", "option",
        "options", "recommendation", "recommendations", "deal", "deals", "brand", "model",
    }
)  # fmt: skip


def asks_for_an_article(text: str) -> bool:
    """True when the request opens (after a lead-in like "I need") with an article: "a drone",
    "I need an umbrella" ask for a thing, however unknown its word; "asdkjh qwe" does not."""
    folded = _LEAD_IN_RE.sub("", fold(text).strip(), count=1)
    return re.match(r"(?:a|an|some)\s+[a-z]", folded) is not None


def named_product(text: str, vocabulary: CatalogVocabulary | None = None) -> str | None:
    """The product noun a request names ("a black leather wallet" -> "wallet", "I need a smart
    fridge for the kitchen" -> "fridge"), or None when it names a use ("watch netflix on a big
    screen"), a generic word ("a gift for a runner") or no noun phrase.

    The head of the opening phrase first; when that phrase is generic or says whom or what for
    ("for my dad, a wallet", "something like a wallet", "for my dad I need a wallet"), the
    first phrase after a comma, "like" or a verb of wanting. Never a phrase after "for" (the
    person or purpose), and never a word `vocabulary` holds as a brand or category, or for a
    person by what they do (assistant.catalog_words): those are read by other rules."""
    folded = fold(text).strip()
    folded = _LEAD_IN_RE.sub("", folded, count=1)
    head = None
    first = re.match(r"[a-z]+", folded)
    if first is None or first.group(0) not in _PREPOSITIONS:
        head = _phrase_head(folded)
    if head is None:
        for later in _LATER_PHRASE_RE.finditer(folded):
            head = _phrase_head(folded[later.end() :], later_phrase=True)
            if head is not None:
                break
    if head is None or vocabulary is None:
        return head
    brands = {fold(brand) for brand in vocabulary.brands}
    if head in brands or head in catalog_words(vocabulary) or activity_words([head], vocabulary):
        return None
    return head


# Words that open a phrase saying for whom, for what or for how much, not what.
_PREPOSITIONS: Final = frozenset(
    {"for", "under", "below", "over", "above", "with", "to", "at", "in", "on", "from", "by",
     "around", "about", "within", "without", "between", "as"}
)  # fmt: skip
# Where a later phrase may name the product: after a comma or colon, "like"/"such as", a verb
# of wanting; always with an article.
_LATER_PHRASE_RE = re.compile(
    r"(?:[,;:]|\b(?:like|such as|maybe|perhaps|ideally|preferably|need|want|needs|wants|"
    r"looking for|get|buy|find|recommend|suggest))\s+(?=(?:a|an|some)\s)"
)


def _phrase_head(folded: str, *, later_phrase: bool = False) -> str | None:
    """The head of the noun phrase `folded` opens with (see :func:`named_product`); a later
    phrase must open with an article."""
    # "a set of dumbbells", "a pair of headphones": the product is what the set is of.
    folded = re.sub(r"^(?:an?\s+)?(?:set|pair|pack|box|bundle|couple)\s+of\s+", "", folded)
    end = _PHRASE_END_RE.search(folded)
    phrase = folded[: end.start()] if end else folded
    words = re.findall(r"[a-z][a-z'-]*[a-z]|[a-z]", phrase)
    if words and re.fullmatch(_DETERMINER, words[0]):
        words = words[1:]
    elif later_phrase:
        return None
    if not words or len(words) > 4:
        return None
    if any(re.fullmatch(r"a|an|the|my|your|our|his|her|their|some", w) for w in words):
        return None
    head = words[-1]
    if len(head) < 3 or head in _GENERIC_HEADS:
        return None
    if len(words) == 1 and head.endswith(("ing", "ed")):
        return None
    # A verb opens a use ("boil water", "watch netflix"): a request of two or more words whose
    # first is a verb shoppers use for what a product does.
    if len(words) > 1 and words[0] in _USE_VERBS:
        return None
    return head


_USE_VERBS: Final = frozenset(
    {
        "make", "watch", "listen", "take", "track", "start", "carry", "keep", "block", "boil",
        "heat", "warm", "cook", "play", "read", "wear", "go", "run", "find", "buy", "get",
        "help", "stay", "film", "count", "build", "train", "blend", "brew", "clean", "store",
        "protect", "charge", "record", "capture", "stream", "work", "learn", "study", "bake",
        "fry", "grill", "drink", "eat", "sleep", "relax", "travel", "hike", "swim", "ride",
        "lift", "stretch", "organise", "organize", "decorate", "light", "cool", "dry", "wash",
        "shave", "style", "fix", "repair", "measure", "print", "type", "edit", "draw", "paint",
        "write", "call", "text", "send", "share", "connect", "use", "hold", "transport",
        "bring", "pack", "show", "give", "surprise", "treat", "entertain", "teach", "feed",
    }
)  # fmt: skip


def named_product_queries(query: Mapping[str, Any], head: str) -> list[dict[str, Any]]:
    """How many products within the request's filters name the head word, singular or plural
    (no hits). As exact phrases: a last word is otherwise a prefix ("mat" found "matte") and
    within a typo ("charger" found "Charge 5", "printer" "prints")."""
    forms = {head, head[:-1] if head.endswith("s") else f"{head}s"}
    if head.endswith("es"):
        forms.add(head[:-2])
    return [
        {
            "indexUid": query["indexUid"],
            "q": f'"{form}"',
            "limit": 0,
            **({"filter": query["filter"]} if query.get("filter") else {}),
        }
        for form in sorted(forms)
        if len(form) >= 3
    ]


# --- An interest the catalog has nothing for --------------------------------------------------

# "my sister who loves yoga", "he is into fishing": what a person likes doing, said after a verb.
_INTEREST_RE = re.compile(
    r"(?<![a-z])(?:loves?|likes?|enjoys?|into|(?:a\s+)?(?:big\s+)?fan\s+of|passionate\s+about|"
    r"obsessed\s+with|crazy\s+about|keen\s+on)\s+(?:doing\s+|playing\s+)?"
    r"(?P<word>[a-z][a-z'-]*[a-z])"
)
_NOT_AN_INTEREST: Final = frozenset(
    {"the", "a", "an", "my", "his", "her", "their", "your", "our", "it", "them", "this", "that",
     "all", "any", "some", "something", "anything", "stuff", "things", "everything", "gifts"}
)  # fmt: skip


def unserved_interest(text: str, vocabulary: CatalogVocabulary) -> str | None:
    """What the person a request names likes doing ("who loves yoga" -> "yoga") when no
    category of the catalog holds the word: then the catalog has no product of that kind, and
    the nearest by meaning (a laptop named "Yoga") are no answer. None when no interest is
    said or the catalog serves it ("who loves running" where the index holds Running Shoes)."""
    match = _INTEREST_RE.search(fold(text))
    if match is None:
        return None
    word = match.group("word")
    if word in _NOT_AN_INTEREST:
        return None
    known = catalog_words(vocabulary)
    if word in known or word.rstrip("s") in known or activity_words([word], vocabulary):
        return None
    # "into gaming" where the index holds "Toys & Games": the doing of what the catalog names.
    stem = word[:-3] if word.endswith("ing") and len(word) >= 6 else ""
    if stem and any(known_word.startswith(stem) for known_word in known):
        return None
    return word
