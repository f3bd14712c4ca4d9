"""Which of a request's search words a suggestion's own text mentions, so an answer says only
what is true of it: Meilisearch ranks by as many words as match and drops the rest
("frequency" matching strategy), so being found is no proof of mentioning every word.

A word is mentioned as the index would match it: at the start of a word of the searchable
text (the index matches prefixes), within the typo allowance of assistant.spelling, or through
one of the index's synonyms (search_index.settings.SYNONYM_GROUPS).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from assistant.spelling import allowed_typos, damerau_distance
from assistant.vocabulary import fold
from search_index.settings import SEARCHABLE_ATTRIBUTES, SYNONYM_GROUPS, mutual_synonyms

_WORD_RE: Final = re.compile(r"[^\W_]+")
_SYNONYMS: Final = mutual_synonyms(SYNONYM_GROUPS)


def searchable_text(*documents: Mapping[str, Any]) -> str:
    """The folded text the index searches in these documents (a product and its offer)."""
    return " ".join(
        fold(str(document.get(name) or ""))
        for document in documents
        for name in SEARCHABLE_ATTRIBUTES
    )


def _mentions(text: str, tokens: Iterable[str], word: str) -> bool:
    if re.search(rf"(?<![^\W_]){re.escape(word)}", text):
        return True
    allowed = allowed_typos(word)
    if allowed and any(damerau_distance(word, token, allowed) <= allowed for token in tokens):
        return True
    return any(
        re.search(rf"(?<![^\W_]){re.escape(fold(other))}(?![^\W_])", text)
        for other in _SYNONYMS.get(word, ())
    )


def words_mentioned(keywords: str, text: str) -> tuple[list[str], list[str]]:
    """The words of `keywords` that `text` (folded) mentions, and those it does not, each in
    the order said."""
    tokens = set(_WORD_RE.findall(text))
    found: list[str] = []
    missing: list[str] = []
    for word in _WORD_RE.findall(fold(keywords)):
        (found if _mentions(text, tokens, word) else missing).append(word)
    return found, missing
