"""What a product must not contain or be: "BPA-free bottle", "shampoo without sulfates", "no added
sugar"; "running shoes but not the Revolution", "without noise cancelling", "not Samsung or
Pixel". A substance is excluded, never searched for (as a search word "sulfate" ranks the
shampoos that list sulfates first), and a suggestion whose title or description names it, other
than as "sulfate-free", "no sulfates" or the like, breaks the request. Other words and phrases
are excluded the same way (and compared with: "brighter than OLED" is no OLED), and the index
leaves them out too, as negative terms of the query (assistant.retrieval).

Only substances are read as substances: "hands-free", "hassle-free" or "screen-free" describe a
feature the shopper wants, and stay search words. Brands written so ("apple-free") are
exclusions of the brand (assistant.mentions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from assistant.glossary import use_spans
from assistant.prompt_text import PromptText
from assistant.vocabulary import STOPWORDS, fold

# Canonical (singular) form -> how a label writes it.
SUBSTANCES: Final[Mapping[str, str]] = {
    "alcohol": "alcohol",
    "bpa": "BPA",
    "caffeine": "caffeine",
    "dairy": "dairy",
    "egg": "egg",
    "fat": "fat",
    "fluoride": "fluoride",
    "formaldehyde": "formaldehyde",
    "fragrance": "fragrance",
    "gluten": "gluten",
    "gmo": "GMO",
    "lactose": "lactose",
    "latex": "latex",
    "nickel": "nickel",
    "nut": "nut",
    "palm oil": "palm oil",
    "paraben": "paraben",
    "peanut": "peanut",
    "perfume": "perfume",
    "phthalate": "phthalate",
    "plastic": "plastic",
    "pvc": "PVC",
    "silicone": "silicone",
    "soy": "soy",
    "sugar": "sugar",
    "sulfate": "sulfate",
    "sulphate": "sulphate",
    "wheat": "wheat",
}

_TERM = "|".join(re.escape(t) for t in sorted(SUBSTANCES, key=len, reverse=True))
# "sulfates", "dairies" is never written; "-es" and "-s" plurals are.
_NAMED = rf"(?<![a-z0-9])(?P<t>{_TERM})(?:e?s)?(?![a-z0-9])"
_FREE_AFTER_RE = re.compile(rf"{_NAMED}\s*-?\s*free(?![a-z])")
_NO_BEFORE_RE = re.compile(
    rf"(?<![a-z])(?:without|no|not|nothing|zero|nothing with|free (?:of|from)|avoid(?:ing)?|"
    rf"(?:does|do)(?:n'?t| not) (?:contain|have))\s+(?:any\s+|added\s+)?{_NAMED}"
)
# "without sulfates or parabens": the list goes on with the same negation.
_LIST_NEXT_RE = re.compile(rf"\s*(?:,|or|and|nor|/)\s*(?:(?:any|added|no)\s+)?{_NAMED}")
# How a product says it is free of the substance: what is not a mention of containing it.
_FREE_MENTION = (
    r"(?:{t})(?:e?s)?\s*-?\s*free|(?:no|zero|without|non|free (?:of|from)|0\s*%)"
    r"\s*-?\s*(?:added\s+)?(?:{t})"
)


def parse_excluded_substances(state: PromptText) -> list[str]:
    """The substances the request excludes, their words taken (in the order said)."""
    found: list[tuple[int, str]] = []
    text = state.folded
    for pattern in (_FREE_AFTER_RE, _NO_BEFORE_RE):
        for match in pattern.finditer(text):
            if not state.free(match.start(), match.end()):
                continue
            state.take(match.start(), match.end(), "excluded-substance")
            found.append((match.start(), match.group("t")))
            end = match.end()
            while pattern is _NO_BEFORE_RE:
                following = _LIST_NEXT_RE.match(text, end)
                if following is None or not state.free(following.start(), following.end()):
                    break
                state.take(following.start(), following.end(), "excluded-substance")
                found.append((following.start(), following.group("t")))
                end = following.end()
    terms: list[str] = []
    for _start, term in sorted(found):
        if term not in terms:
            terms.append(term)
    return terms


def substance_label(term: str) -> str:
    """ "bpa" -> "BPA-free"."""
    return f"{SUBSTANCES.get(term, term)}-free"


def names_substance(document: Mapping[str, Any], term: str) -> bool:
    """True when the title or description names the substance other than as free of it
    ("Contains sulfates" does, "Sulfate-free formula" and "No added sugar" do not)."""
    text = fold(f"{document.get('title') or ''} {document.get('description') or ''}")
    escaped = re.escape(term)
    without_free = re.sub(_FREE_MENTION.format(t=escaped), " ", text)
    return bool(re.search(rf"(?<![a-z0-9]){escaped}(?:e?s)?(?![a-z0-9])", without_free))


# A word after a negation that no other rule read ("not the revolution", "without laces"): the
# shopper does not want a product it names. One word, so "not too expensive" (read before as a
# price wish) or "not sure" stays what it is: words of degree and doubt are no product's.
_NEGATED_WORD_RE = re.compile(
    r"(?<![a-z])(?:but not|not|without|except(?: for)?|excluding|isn'?t|aren'?t|never|nothing|"
    r"no)\s+(?P<for>(?:meant |made )?for\s+)?(?:(?:a|an|the|any)\s+)?"
    r"(?P<w>[a-z0-9][a-z0-9'-]*[a-z0-9])(?![a-z0-9'-])"
)
# After a comma alone, only where the list goes on or ends with the word ("not Sony, Bose or
# JBL"; "not Sony, black please" wants black).
_NEXT_WORD_RE = re.compile(
    r"\s*(?:,\s*(?:or\s|nor\s)|or\s|nor\s|,(?=\s*(?:(?:not|no)\s+)?(?:(?:a|an|the|any)\s+)?"
    r"[a-z][a-z0-9'-]*[a-z0-9]\s*(?:,|or\b|nor\b|$|[.;!?])))\s*(?:(?:not|no)\s+)?"
    r"(?:(?:a|an|the|any)\s+)?(?P<w>[a-z][a-z0-9'-]*[a-z0-9])(?![a-z0-9'-])"
)
_NOT_PRODUCT_WORDS: Final = frozenset(
    [
        "too",
        "very",
        "so",
        "that",
        "sure",
        "really",
        "much",
        "more",
        "less",
        "longer",
        "bigger",
        "smaller",
        "heavier",
        "cheaper",
        "expensive",
        "pricey",
        "costly",
        "needed",
        "necessary",
        "important",
        "required",
    ]
)


def _product_word(word: str, *, after_for: bool = False) -> bool:
    # "without using the stove": a verb's -ing form says how, not what; after "not for" it
    # names a use ("not for gaming").
    verb = len(word) >= 5 and word.endswith("ing") and not after_for
    # "not 4k" names a kind of product; "not 65" (inches) or "no 2" says nothing by itself.
    named = (
        len(word) >= 2 and bool(re.search(r"[a-z]", word)) and (len(word) >= 3 or word[0].isdigit())
    )
    return named and not verb and word not in STOPWORDS and word not in _NOT_PRODUCT_WORDS


# A negated phrase goes on over the words that follow it ("not the pro max", "without noise
# cancelling"), up to MAX_PHRASE_WORDS, until a word no product is named by.
MAX_PHRASE_WORDS: Final = 3
_PHRASE_NEXT_RE = re.compile(r"[ -](?P<w>[a-z0-9][a-z0-9'-]*[a-z0-9])(?![a-z0-9'-])")
# Words that say "the feature of" and name nothing by themselves: "without smart features" is
# without "smart".
_FEATURE_WORDS: Final = frozenset(
    {"feature", "features", "function", "functions", "functionality", "option", "options",
     "support", "mode", "technology", "tech", "capability", "capabilities"}
)  # fmt: skip
# Spans other rules took as excluded (a brand, a product word): a list goes on after them
# ("not Samsung or Pixel" where the index knows no Pixel).
_EXCLUDED_OWNERS: Final = frozenset({"excluded-brand", "excluded-product"})


def _phrase(state: PromptText, word: str, end: int) -> tuple[str, int]:
    """The negated word and the words after it that go with it, and where they end."""
    words = [word]
    while len(words) < MAX_PHRASE_WORDS:
        following = _PHRASE_NEXT_RE.match(state.folded, end)
        if following is None or not state.free(following.start(), following.end()):
            break
        # "noise cancelling": an -ing word after the first names a feature, not how.
        next_word = following.group("w")
        if not _product_word(next_word, after_for=True) and next_word not in _FEATURE_WORDS:
            break
        words.append(following.group("w"))
        end = following.end()
    while len(words) > 1 and words[-1] in _FEATURE_WORDS:
        words.pop()
    return " ".join(words), end


def _list_goes_on(state: PromptText, end: int, words: list[str]) -> None:
    """ "…, or X", "nor X" after an excluded word or name: X is excluded too."""
    text = state.folded
    while (following := _NEXT_WORD_RE.match(text, end)) is not None:
        word = following.group("w")
        if not state.free(following.start(), following.end()) or not _product_word(word):
            return
        phrase, end = _phrase(state, word, following.end())
        state.take(following.start(), end, "excluded-word")
        words.append(phrase)


def parse_excluded_words(state: PromptText) -> list[str]:
    """Words and phrases said not to be wanted that no other rule read, their words (and cue)
    taken; not those of a use ("chicken wings without oil" asks for an air fryer,
    assistant.glossary)."""
    text = state.folded
    uses = use_spans(text)
    words: list[str] = []
    for match in _NEGATED_WORD_RE.finditer(text):
        word = match.group("w")
        if not state.free(match.start(), match.end()):
            continue
        if not _product_word(word, after_for=bool(match.group("for"))):
            continue
        if any(start < match.end() and match.start() < end for start, end in uses):
            continue
        phrase, end = _phrase(state, word, match.end())
        state.take(match.start(), end, "excluded-word")
        words.append(phrase)
        _list_goes_on(state, end, words)
    for index in range(1, len(state.owner) + 1):
        owner = state.owner[index - 1]
        ends_here = index == len(state.owner) or state.owner[index] != owner
        if owner in _EXCLUDED_OWNERS and ends_here:
            _list_goes_on(state, index, words)
    return list(dict.fromkeys(words))


# How a description names a thing without being it: "brighter than OLED", "unlike Bluetooth".
_COMPARED = r"(?:than|vs\.?|versus|unlike|compared (?:to|with)|instead of|no need for)\s+(?:{t})"


def names_word(document: Mapping[str, Any], phrase: str) -> bool:
    """True when the title or description names the word other than as free of it, without
    it, or compared with it ("brighter than OLED"); a phrase when it names each of its words
    ("not the 4k qled": "QLED 4K Smart TV"; "noise cancelling": "noise-cancelling")."""
    text = fold(f"{document.get('title') or ''} {document.get('description') or ''}")
    for word in phrase.split():
        escaped = re.escape(word)
        kept = re.sub(_FREE_MENTION.format(t=escaped), " ", text)
        kept = re.sub(_COMPARED.format(t=escaped), " ", kept)
        if not re.search(rf"(?<![a-z0-9]){escaped}(?:e?s)?(?![a-z0-9])", kept):
            return False
    return True


def negative_terms(words: Sequence[str]) -> str:
    """The excluded words as Meilisearch negative phrases ('-"pro max" -"oled"'), so the index
    leaves out what names them and they do not take the places of products that fit."""
    return " ".join(f'-"{word}"' for word in words if '"' not in word)
