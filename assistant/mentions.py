"""Brands, marketplaces and categories named in a shopper's request, with what the request says
about each: wanted ("from ShopWave"), excluded ("not Sony", "except Kiondo"), implied by a product
word, or only a use ("watch a movie" is not the brand Watch). Misspelt names are matched within the
typo allowance of assistant.spelling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from assistant.prompt_text import TOKEN_RE, PromptText
from assistant.spelling import allowed_typos, category_words, damerau_distance
from assistant.vocabulary import (
    CATEGORIES,
    FUZZY_STOPLIST,
    SPECIFIC_PHRASES,
    STOPWORDS,
    CatalogVocabulary,
    fold,
)

_NEGATION_CUE = re.compile(
    r"(?:\bnot|\bno|\bnon|\bexcept(?:\s+for)?|\bexcluding|\bexclude|\bwithout|\bavoid(?:ing)?|"
    r"\banything but|\bother than|\bbut not|\bnothing from|\bnever|\bdon'?t want|"
    r"\bdo not want|\bfree (?:of|from)|\b(?:(?:that|which|it|they)\s+)?(?:isn'?t|aren'?t)|"
    r"\b(?:that|which|it)(?:'s|\s+is|\s+are)\s+not|"
    # "do not show me anything from Fake Store", "don't suggest anything from ShopWave".
    r"\b(?:do not|don'?t|never)\s+(?:show|give|suggest|recommend|want|offer)(?:\s+(?:me|us))?"
    r"(?:\s+(?:anything|products?|items?|offers?|stuff|something))?)\s*(?:-\s*)?"
    r"(?:(?:from|on|at|by|sold by|sold on|made by|the)\s+)?$"
)
# "apple-free headphones": the name written with "-free" after it is excluded, not wanted.
_FREE_AFTER = re.compile(r"\s*-\s*free(?![a-z0-9])")
_INCLUDE_CUE = re.compile(
    r"(?:\bfrom|\bon|\bat|\bsold by|\bsold on|\bvia|\bonly|\bmade by|\bby)\s+(?:the\s+)?$"
)
_BRAND_CUE = re.compile(r"(?:\bby|\bfrom|\bbrand|\bmade by)\s+$")
# Between two names of one list, maybe with a word the index knows no name for in between
# ("not from samsung, philips or lg": LG is excluded too; philips is an excluded word).
_LIST_GAP = re.compile(
    r"^(?:\s*(?:,|or|and|nor|/|&)\s*(?:(?:from|on|at|by)\s+)?"
    r"(?:[a-z0-9][a-z0-9'-]*(?=\s*(?:,|or\b|nor\b|/|&)))?)+\s*$"
)
_ONLY_AFTER = re.compile(r"\s*only\b")
_WATCH_VERB_BEFORE = re.compile(r"\b(?:to|and|i|we|can|will|while|or)\s+$")
_WATCH_VERB_AFTER = re.compile(
    r"^\s+(?:movies?|films?|tv|netflix|shows?|series|sports?|football|the|my|videos?)\b"
)
# Product names that say both brand and category; the word also stays in the keywords.
_BRAND_IMPLYING_WORDS: Final = {
    "iphone": "Apple",
    "iphones": "Apple",
    "macbook": "Apple",
    "macbooks": "Apple",
    "airpods": "Apple",
}
_FOR_GAP = re.compile(
    r"\s+(?:for|para|pour|fur|to carry|to hold|that fits|which fits)(?:\s+(?:my|a|an|the|mi|un|una|el|la|mon|ma|mein|meinen|einen))?\s+"
)
# "a phone with a great camera": the first is the product, the second one of its features.
_WITH_GAP = re.compile(
    r"\s+(?:with|that has|which has|having)(?:\s+(?:a|an|the))?"
    # "a phone with at least two cameras": how many is said of the feature.
    r"(?:\s+(?:at least|at most|up to|more than|over))?"
    r"(?:\s+(?:\d{1,2}|two|three|four|five|six|dual|triple|quad|multiple|several))?"
    r"(?:\s+(?:good|great|nice|decent|big|large|long|excellent|better|best|built-in|amazing))?\s+"
)
# "carry my laptop to the office": what is carried or held is not what is wanted.
_CARRIED_BEFORE = re.compile(
    r"\b(?:carry|carrying|hold|holding|protect|protecting|store|storing|transport|bring)"
    r"(?:\s+(?:my|a|an|the|your|our|his|her|their))?\s+$"
)


@dataclass(frozen=True, slots=True)
class _Mention:
    start: int
    end: int
    kind: str  # "brand" or "marketplace"
    value: str


def _name_variants(name: str) -> set[str]:
    """Ways a shopper writes a name: "De'Longhi" -> de'longhi, delonghi, de longhi."""
    base = fold(name).strip()
    variants = {base}
    variants.add(base.replace("'", ""))
    variants.add(base.replace("'", " "))
    variants.add(base.replace("-", " "))
    variants.add(base.replace("-", ""))
    variants.add(base.replace(" ", ""))
    variants.add(re.sub(r"[^a-z0-9 ]", "", base))
    if base.startswith("the "):
        variants.add(base[4:])
    # CamelCase names ("ShopWave", "DummyMart") are also written as two words.
    split = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    if split != name:
        variants.add(fold(split))
    words = base.split()
    if len(words) > 1 and ("'" in words[0] or len(words[0]) >= 6):
        variants.add(words[0])
        variants.add(words[0].replace("'", ""))
    return {" ".join(v.split()) for v in variants if len(v.strip()) >= 2}


def _marketplace_variants(slug: str, name: str) -> set[str]:
    variants = _name_variants(name) | {slug, slug.replace("-", " ")}
    words = fold(name).split()
    # "Kiondo Market" is also just "Kiondo"; "Euro Bazaar" just "Bazaar" (its slug).
    if len(words) > 1 and len(words[0]) >= 4 and words[0] not in {"euro", "fake", "the"}:
        variants.add(words[0])
    # "Fake Store Berlin" is also "Fake Store": the name without the place it is in.
    if len(words) > 2:
        variants.add(" ".join(words[:-1]))
    return variants


def find_mentions(state: PromptText, vocabulary: CatalogVocabulary) -> list[_Mention]:
    candidates: list[tuple[str, str, str]] = []  # (variant, kind, value)
    for slug, name in vocabulary.marketplaces.items():
        for variant in _marketplace_variants(slug, name):
            candidates.append((variant, "marketplace", slug))
    for brand in vocabulary.brands:
        for variant in _name_variants(brand):
            candidates.append((variant, "brand", brand))
    # Longest first, marketplaces before brands at equal length.
    candidates.sort(key=lambda c: (-len(c[0]), c[1] != "marketplace"))
    mentions: list[_Mention] = []
    text = state.folded
    for variant, kind, value in candidates:
        pattern = re.compile(rf"(?<![a-z0-9]){re.escape(variant)}(?![a-z0-9])")
        for match in pattern.finditer(text):
            start, end = match.span()
            if not state.free(start, end) or any(m.start < end and start < m.end for m in mentions):
                continue
            if kind == "brand" and _is_generic_use(state, start, end, variant):
                continue
            mentions.append(_Mention(start, end, kind, value))
    mentions.extend(_fuzzy_mentions(state, vocabulary, mentions))
    return sorted(mentions, key=lambda m: m.start)


def _is_generic_use(state: PromptText, start: int, end: int, variant: str) -> bool:
    """A brand name that is also a product word ("a thermos for tea") is the product word unless
    it is capitalised or introduced as a brand ("by Thermos", "Thermos brand")."""
    if variant not in category_words():
        return False
    capitalised = state.original[start : start + 1].isupper()
    cue_before = bool(_BRAND_CUE.search(state.folded[:start]))
    cue_after = bool(re.match(r"\s+brand\b", state.folded[end:]))
    return not (capitalised or cue_before or cue_after)


def _fuzzy_mentions(
    state: PromptText, vocabulary: CatalogVocabulary, found: Sequence[_Mention]
) -> list[_Mention]:
    """Misspelled single-word brands and marketplaces ("addidas", "samsnug", "shopwav")."""
    targets: list[tuple[str, str, str]] = []
    for slug, name in vocabulary.marketplaces.items():
        for variant in _marketplace_variants(slug, name):
            if " " not in variant and len(variant) >= 4:
                targets.append((variant, "marketplace", slug))
    for brand in vocabulary.brands:
        for variant in _name_variants(brand):
            if " " not in variant and len(variant) >= 4:
                targets.append((variant, "brand", brand))
    product_words = category_words()
    mentions: list[_Mention] = []
    for match in TOKEN_RE.finditer(state.folded):
        word = match.group(0)
        start, end = match.span()
        allowed = allowed_typos(word)
        if (
            not allowed
            or word in FUZZY_STOPLIST
            or word in STOPWORDS
            or word in product_words
            or not state.free(start, end)
            or any(m.start < end and start < m.end for m in found)
        ):
            continue
        best: tuple[int, str, str] | None = None
        for variant, kind, value in targets:
            distance = damerau_distance(word, variant, allowed)
            if 0 < distance <= min(allowed, allowed_typos(variant) or 1) and (
                best is None or distance < best[0]
            ):
                best = (distance, kind, value)
        if best is not None:
            mentions.append(_Mention(start, end, best[1], best[2]))
    return mentions


def resolve_mentions(
    state: PromptText, mentions: Sequence[_Mention]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Sort mentions into included and excluded brands and marketplaces, reading the cue words
    before each one ("not from X or Y" excludes both) and consuming them."""
    brands: list[str] = []
    excluded_brands: list[str] = []
    marketplaces: list[str] = []
    excluded_marketplaces: list[str] = []
    previous: _Mention | None = None
    previous_negated = False
    for mention in mentions:
        window_start = max(0, mention.start - 40)
        if previous is not None:
            window_start = max(window_start, previous.end)
        before = state.folded[window_start : mention.start]
        negation = _NEGATION_CUE.search(before)
        include = _INCLUDE_CUE.search(before)
        negated = bool(negation)
        cue_start = negation.start() if negation else (include.start() if include else None)
        if previous is not None and _LIST_GAP.match(before):
            negated = previous_negated
            # A word between the names is left for assistant.exclusions to read as one more
            # of the list; the separators alone are cue.
            cue_start = (
                None
                if re.search(
                    r"[a-z0-9]{2}", re.sub(r"\b(?:or|and|nor|from|on|at|by)\b", "", before)
                )
                else 0
            )
        free = _FREE_AFTER.match(state.folded, mention.end)
        if free is not None and state.free(free.start(), free.end()):
            negated = True
            state.take(free.start(), free.end(), "constraint-cue")
        if cue_start is not None:
            start = window_start + cue_start
            state.take(start, mention.start, "constraint-cue")
        state.take(mention.start, mention.end, mention.kind)
        only = _ONLY_AFTER.match(state.folded, mention.end)
        if only:
            state.take(mention.end, only.end(), "constraint-cue")
        if mention.kind == "marketplace":
            target = excluded_marketplaces if negated else marketplaces
        else:
            target = excluded_brands if negated else brands
            if negated:
                state.take(mention.start, mention.end, "excluded-brand")
        if mention.value not in target:
            target.append(mention.value)
        previous, previous_negated = mention, negated
    # A value both wanted and excluded is excluded: the negation is the more specific wish.
    brands = [b for b in brands if b not in excluded_brands]
    marketplaces = [m for m in marketplaces if m not in excluded_marketplaces]
    return brands, excluded_brands, marketplaces, excluded_marketplaces


# --- Categories -----------------------------------------------------------------------------------


def _category_phrases() -> list[tuple[str, str]]:
    phrases = [(fold(phrase), c.key) for c in CATEGORIES for phrase in c.phrases]
    return sorted(phrases, key=lambda item: -len(item[0]))


@dataclass(frozen=True, slots=True)
class NegatedProduct:
    """A product word said not to be wanted ("no iphone", "not a laptop", "no earbuds"): its
    category key, the words, and the brand they imply (None for most)."""

    key: str
    phrase: str
    brand: str | None


# "no iphone", "not a laptop", "headphones but no earbuds".
_NEGATED_BEFORE = re.compile(
    r"(?<![a-z])(?:but not|not|no|without|except(?: for)?|excluding|isn'?t|aren'?t|nothing|"
    r"never)\s+(?:(?:a|an|the|any)\s+)?$"
)


def parse_categories(
    state: PromptText,
) -> tuple[list[str], list[str], list[str], list[NegatedProduct]]:
    """Category phrases in the text; of two adjacent ones ("laptop backpack") the last is the
    product and the first a description of it, which stays in the keywords. Returns the
    categories, the brands product words imply, the categories of things to be carried, and
    the product words said not to be wanted (their text taken, never a category)."""
    found: list[tuple[int, int, str, str]] = []  # start, end, key, phrase
    text = state.folded
    for phrase, key in _category_phrases():
        pattern = re.compile(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])")
        for match in pattern.finditer(text):
            start, end = match.span()
            if not state.free(start, end) or any(s < end and start < e for s, e, _, _ in found):
                continue
            if phrase in {"watch", "watches"} and (
                _WATCH_VERB_BEFORE.search(text[:start]) or _WATCH_VERB_AFTER.match(text[end:])
            ):
                continue
            found.append((start, end, key, phrase))
    found.extend(_fuzzy_categories(state, found))
    found.sort()
    chosen: list[tuple[int, int, str, str]] = []
    carried: list[str] = []
    skip_next = False
    for index, item in enumerate(found):
        if skip_next:
            skip_next = False
            state.take(item[0], item[1], "category-modifier")
            continue
        following = found[index + 1] if index + 1 < len(found) else None
        gap = text[item[1] : following[0]] if following is not None else ""
        if following is not None and not gap.strip():
            state.take(item[0], item[1], "category-modifier")
            continue
        if _CARRIED_BEFORE.search(text[: item[0]]):
            state.take(item[0], item[1], "category-modifier")
            carried.append(item[2])
            continue
        # "a backpack for my laptop", "mochila para portatil", "a phone with a great camera":
        # the first is the product.
        if following is not None and (_FOR_GAP.fullmatch(gap) or _WITH_GAP.fullmatch(gap)):
            skip_next = True
        chosen.append(item)
    categories: list[str] = []
    implied_brands: list[str] = []
    negated: list[NegatedProduct] = []
    for start, end, key, phrase in chosen:
        cue = _NEGATED_BEFORE.search(text[:start])
        if cue is not None and state.free(cue.start(), start):
            state.take(cue.start(), end, "excluded-product")
            negated.append(NegatedProduct(key, phrase, _BRAND_IMPLYING_WORDS.get(phrase)))
            continue
        descriptive = phrase in _BRAND_IMPLYING_WORDS or phrase in SPECIFIC_PHRASES
        state.take(start, end, "descriptive" if descriptive else "category")
        if key not in categories:
            categories.append(key)
        if phrase in _BRAND_IMPLYING_WORDS:
            implied_brands.append(_BRAND_IMPLYING_WORDS[phrase])
    return categories, implied_brands, carried, negated


def _fuzzy_categories(
    state: PromptText, found: Sequence[tuple[int, int, str, str]]
) -> list[tuple[int, int, str, str]]:
    """Misspelled one-word category names ("headphnes", "televsion", "sneekers")."""
    singles = [(phrase, key) for phrase, key in _category_phrases() if " " not in phrase]
    fuzzy: list[tuple[int, int, str, str]] = []
    for match in TOKEN_RE.finditer(state.folded):
        word = match.group(0)
        start, end = match.span()
        if (
            len(word) < 6
            or word in FUZZY_STOPLIST
            or word in STOPWORDS
            or not state.free(start, end)
            or any(s < end and start < e for s, e, _, _ in found)
        ):
            continue
        allowed = allowed_typos(word)
        best: tuple[int, str, str] | None = None
        for phrase, key in singles:
            if len(phrase) < 6:
                continue
            distance = damerau_distance(word, phrase, allowed)
            if 0 < distance <= allowed and (best is None or distance < best[0]):
                best = (distance, key, phrase)
        if best is not None:
            fuzzy.append((start, end, best[1], best[2]))
    return fuzzy
