"""One canonical display name per product category, whatever the marketplace called it.

Marketplaces spell the same category differently ("Running Shoes", "running-shoes", "running
shoes", a feed path "Sports > Footwear > Running Shoes"); without this the storefront lists each
spelling as its own category. The known spellings live in warehouse/categories.toml, so adding a
marketplace's spelling is a data change, not a code change.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

CATEGORIES_FILE = Path(__file__).with_name("categories.toml")

_SEPARATORS = re.compile(r"[\s\-_/|]+")
_AMPERSAND = re.compile(r"\s*&\s*|\s*\+\s*")
_PATH_SEPARATOR = ">"


class CategoryMappingError(ValueError):
    """The checked-in category mapping is malformed or maps one spelling to two categories."""


def category_key(text: str) -> str:
    """The matching key of a category spelling: case-folded, separators and "&" normalized.

    "Beauty & Personal Care", "beauty-and-personal-care" and "BEAUTY_AND_PERSONAL CARE" share a
    key, so the mapping lists each spelling once.
    """
    spaced = _AMPERSAND.sub(" and ", text.casefold())
    return _SEPARATORS.sub(" ", spaced).strip()


def cleaned_category(text: str) -> str:
    """An unknown category made presentable, so spellings of it still collapse into one.

    A slug ("garden-tools", "garden_tools") becomes words; lower-case words are capitalized and
    words the marketplace capitalized itself ("iPad", "TV") are kept as written.
    """
    words = text.split() if re.search(r"\s", text.strip()) else _SEPARATORS.split(text.strip())
    return " ".join(word.capitalize() if word.islower() else word for word in words if word)


def parse_category_mapping(table: Mapping[str, object]) -> dict[str, str]:
    """Spelling key → canonical name, from the `[categories]` table of categories.toml.

    Raises CategoryMappingError when the table is malformed or a spelling would mean two
    categories (a silent last-one-wins would move offers between categories unnoticed).
    """
    categories = table.get("categories")
    if not isinstance(categories, Mapping):
        raise CategoryMappingError("categories.toml needs a [categories] table")
    mapping: dict[str, str] = {}
    for canonical, spellings in categories.items():
        if not isinstance(canonical, str) or not canonical.strip():
            raise CategoryMappingError(f"empty canonical category name: {canonical!r}")
        if not isinstance(spellings, list) or not all(isinstance(s, str) for s in spellings):
            raise CategoryMappingError(f"{canonical!r}: spellings must be a list of strings")
        for spelling in (canonical, *spellings):
            key = category_key(spelling)
            if not key:
                raise CategoryMappingError(f"{canonical!r}: empty spelling")
            claimed = mapping.get(key)
            if claimed is not None and claimed != canonical:
                raise CategoryMappingError(
                    f"spelling {spelling!r} maps to both {claimed!r} and {canonical!r}"
                )
            mapping[key] = canonical
    return mapping


@lru_cache(maxsize=1)
def category_mapping() -> dict[str, str]:
    """The checked-in mapping, read once per process (it only changes with a deploy)."""
    with CATEGORIES_FILE.open("rb") as handle:
        return parse_category_mapping(tomllib.load(handle))


def canonical_category(raw: str | None, mapping: Mapping[str, str] | None = None) -> str | None:
    """The display name of a marketplace's category, or None when it gave none.

    A path ("Sports > Footwear > Running Shoes") is tried whole, then by its last segment (never
    a parent: "Footwear" must not claim every shoe); an unknown category keeps a cleaned form of
    its last segment.
    """
    if raw is None:
        return None
    known = category_mapping() if mapping is None else mapping
    segments = [segment.strip() for segment in raw.split(_PATH_SEPARATOR)]
    segments = [segment for segment in segments if segment]
    if not segments:
        return None
    whole = known.get(category_key(raw))
    if whole is not None:
        return whole
    leaf = known.get(category_key(segments[-1]))
    if leaf is not None:
        return leaf
    return cleaned_category(segments[-1])
