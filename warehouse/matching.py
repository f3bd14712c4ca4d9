"""Cross-marketplace product matching: which offers are the same real product.

The result is a product group per offer (the "product relation token"), formed by the strongest
evidence available, strongest first:

1. **gtin** (confidence 1.00): the same valid GTIN (checksum verified, canonical form).
2. **brand_model** (0.90): the same normalized brand and model number ("WH-1000XM5" ==
   "WH1000XM5"). An offer without a GTIN joins the GTIN group whose offers carry its brand and
   model, when exactly one such group exists. A model number found in the title of an offer that
   has none in its own fields counts too, at 0.85, but only when it equals a model the same brand
   already has elsewhere.
3. **title** (at most 0.75): the same brand and nearly the same significant title words
   (Jaccard >= 0.85), with identical numbers (sizes, capacities, generations) and no variant word
   (format, condition, colour) on one side only, across different marketplaces; never into a
   group that already holds an offer of the same marketplace. The most similar pairs are accepted
   first, so a weak pair never takes the place a stronger one needs.
4. **single**: everything else is a group of one.

Being wrong costs more than missing a match (a shopper would be offered a different product as a
"cheaper offer of the same thing"), so every rule prefers to leave offers apart. Group ids are
stable across runs: `g-` + the first 16 hex digits of sha256 of the matching key.

Everything here is pure: no I/O, and the same offers give the same groups and ids whatever
their order and whatever the hash seed (PYTHONHASHSEED): sets are only ever iterated sorted.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from adapters.gtin import normalize_gtin

METHOD_GTIN = "gtin"
METHOD_BRAND_MODEL = "brand_model"
METHOD_TITLE = "title"
METHOD_SINGLE = "single"

CONFIDENCE_GTIN = Decimal("1.00")
CONFIDENCE_BRAND_MODEL = Decimal("0.90")
CONFIDENCE_TITLE_MODEL = Decimal("0.85")
CONFIDENCE_TITLE_MAX = Decimal("0.75")
CONFIDENCE_SINGLE = Decimal("1.00")

# Jaccard similarity of significant title tokens required for a title match.
TITLE_MIN_SIMILARITY = 0.85
# Fewer significant tokens than this says too little about a product to match on.
TITLE_MIN_TOKENS = 3
MODEL_MIN_CHARS = 3
PURE_NUMBER_MODEL_MIN_DIGITS = 6

# Brands written differently by different stores, after normalization.
BRAND_ALIASES = {
    "hewlettpackard": "hp",
    "lgelectronics": "lg",
    "samsungelectronics": "samsung",
    "sonycorporation": "sony",
    "applecomputer": "apple",
}

# Words that say nothing about which product it is.
STOPWORDS = frozenset({
    "a", "an", "and", "the", "of", "for", "with", "in", "on", "by", "to", "from", "new", "brand",
    "genuine", "original", "official", "edition", "version", "model", "item", "product", "set",
    "free", "fast", "shipping", "sale", "deal", "best", "top", "quality",
})  # fmt: skip

# Words that tell variants of one product apart (format, condition, colour). Two titles that
# differ by one of them (or where only one names it) are not known to be the same product.
VARIANT_WORDS = frozenset({
    "hardcover", "hardback", "paperback", "kindle", "ebook", "audiobook", "boxed",
    "refurbished", "renewed", "used", "openbox", "pack", "bundle",
    "black", "white", "silver", "grey", "gray", "gold", "blue", "red", "green", "pink", "purple",
    "yellow", "orange", "brown", "beige", "graphite", "navy", "rose", "midnight", "starlight",
    "cream", "titanium",
})  # fmt: skip

# Number-with-unit tokens are sizes and capacities, not model numbers.
_UNIT_TOKEN = re.compile(
    r"^\d+(?:INCH|INCHES|IN|CM|MM|M|GB|TB|MB|MAH|W|KW|L|ML|OZ|K|HZ|MP|V|PCS|PC|X|G|KG|LB|LBS|HR|H)$"
)
_SPLIT = re.compile(r"[\s,;:()\[\]{}|/+&\"!?*]+")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_NOT_ALNUM_UPPER = re.compile(r"[^A-Z0-9]+")


@dataclass(frozen=True, slots=True)
class OfferForMatching:
    """The fields of one offer that matching looks at."""

    marketplace: str
    external_id: str
    title: str
    brand: str | None = None
    model: str | None = None
    gtin: str | None = None
    mpn: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.marketplace, self.external_id)


@dataclass(frozen=True, slots=True)
class GroupAssignment:
    """The group one offer belongs to, how it got there, and how sure we are."""

    marketplace: str
    external_id: str
    group_id: str
    method: str
    confidence: Decimal
    matching_key: str


# --- Normalization --------------------------------------------------------------------------


def fold_text(text: str) -> str:
    """Compatibility-decomposed text without accents ("Déjà" -> "Deja"), for comparisons only."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_gtin_key(value: object) -> str | None:
    """The canonical GTIN when `value` is a valid one (GS1 checksum), else None.

    An invalid GTIN must never group offers: two unrelated products would become one.
    """
    return normalize_gtin(value)


def normalize_brand(value: object) -> str | None:
    """Brand as a comparison key: accents, case, spaces and punctuation ignored ("De'Longhi" ==
    "DeLonghi" == "DELONGHI"), known aliases folded; None when nothing is left."""
    if not isinstance(value, str):
        return None
    key = _NOT_ALNUM.sub("", fold_text(value).lower())
    if not key:
        return None
    return BRAND_ALIASES.get(key, key)


def normalize_model(value: object) -> str | None:
    """Model number as a comparison key: upper case, separators dropped ("WH-1000XM5" ==
    "wh1000xm5" == "WH 1000 XM5"). None unless it looks like a model number: at least three
    characters and a digit, since words like "Pro" or "Black" identify nothing."""
    if not isinstance(value, str):
        return None
    key = _NOT_ALNUM_UPPER.sub("", fold_text(value).upper())
    if len(key) < MODEL_MIN_CHARS or not any(ch.isdigit() for ch in key):
        return None
    if _UNIT_TOKEN.match(key) or (key.isdigit() and len(key) < 5):
        return None
    return key


def _raw_title_tokens(title: str) -> list[str]:
    return [token for token in _SPLIT.split(fold_text(title)) if token]


def model_candidates_in_title(title: str) -> set[str]:
    """Every normalized token (and pair of adjacent tokens) of a title that could be a model
    number: "Sony WH-1000XM5 Black" -> {"WH1000XM5", ...}; "WH 1000XM5" -> {"WH1000XM5", ...}."""
    tokens = [
        token
        for token in (_NOT_ALNUM_UPPER.sub("", t.upper()) for t in _raw_title_tokens(title))
        if token
    ]
    candidates: set[str] = set()
    for index, token in enumerate(tokens):
        for text in (token, token + tokens[index + 1] if index + 1 < len(tokens) else ""):
            key = normalize_model(text)
            # Pure numbers count only when long (part numbers like "010-85732-99"), never years.
            if key and (
                any(ch.isalpha() for ch in key) or len(key) >= PURE_NUMBER_MODEL_MIN_DIGITS
            ):
                candidates.add(key)
    return candidates


def title_tokens(title: str, *, brand: str | None = None) -> frozenset[str]:
    """The significant words of a title: folded, lower case, hyphens inside words dropped,
    without stop words and without the brand itself."""
    tokens: set[str] = set()
    brand_key = normalize_brand(brand) if brand else None
    for raw in _raw_title_tokens(title):
        token = _NOT_ALNUM.sub("", raw.lower())
        if not token or token in STOPWORDS or token == brand_key or token == "-":
            continue
        if len(token) == 1 and not token.isdigit():
            continue
        tokens.add(token)
    return frozenset(tokens)


def numeric_tokens(tokens: Iterable[str]) -> frozenset[str]:
    """Tokens that contain a digit: sizes, capacities, generations and model numbers."""
    return frozenset(token for token in tokens if any(ch.isdigit() for ch in token))


def title_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two token sets, but 0.0 when their numbers differ at all ("65-inch"
    is not "55-inch", "iPhone 15" is not "iPhone 14") or when a variant word (format, condition,
    colour) is on one side only ("Paperback" is not the hardcover, "Black" not the white one)."""
    if not a or not b or numeric_tokens(a) != numeric_tokens(b):
        return 0.0
    if (a ^ b) & VARIANT_WORDS:
        return 0.0
    return len(a & b) / len(a | b)


def title_match_confidence(similarity: float) -> Decimal:
    """Confidence of a title match: never above 0.75, lower as the titles differ more."""
    value = (CONFIDENCE_TITLE_MAX * Decimal(str(similarity))).quantize(Decimal("0.01"))
    return min(value, CONFIDENCE_TITLE_MAX)


def infer_brand(title: str, known_brands: set[str]) -> str | None:
    """The brand an offer without one names first in its title ("SONY WH1000XM5 …" -> "sony"),
    when that brand is known from other offers. Only the first one or two words are looked at:
    "Case for Apple iPhone 15" must not become an Apple product."""
    words = [_NOT_ALNUM.sub("", fold_text(t).lower()) for t in _raw_title_tokens(title)[:2]]
    words = [w for w in words if w]
    for candidate in (words[0] if words else "", "".join(words[:2])):
        key = BRAND_ALIASES.get(candidate, candidate)
        if key and key in known_brands:
            return key
    return None


def group_id_for(matching_key: str) -> str:
    """The stable group id (product relation token) of a matching key."""
    return "g-" + hashlib.sha256(matching_key.encode("utf-8")).hexdigest()[:16]


# --- Grouping -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Prepared:
    offer: OfferForMatching
    gtin: str | None
    brand: str | None
    brand_inferred: bool
    model: str | None


@dataclass(slots=True)
class _Membership:
    matching_key: str
    method: str
    confidence: Decimal


class ConflictingOffersError(ValueError):
    """The same (marketplace, external_id) came twice with different matching fields.

    Keeping either one would make the groups depend on which was read first; the products table's
    primary key rules this out, so it means a caller bug.
    """


def _prepare(offers: Iterable[OfferForMatching]) -> list[_Prepared]:
    unique: dict[tuple[str, str], OfferForMatching] = {}
    for offer in offers:
        kept = unique.setdefault(offer.key, offer)
        if kept != offer:
            raise ConflictingOffersError(
                f"offer {offer.key!r} given twice with different matching fields: "
                f"{kept!r} and {offer!r}"
            )
    ordered = [unique[key] for key in sorted(unique)]
    prepared = [
        _Prepared(
            offer=offer,
            gtin=normalize_gtin_key(offer.gtin),
            brand=normalize_brand(offer.brand),
            brand_inferred=False,
            model=normalize_model(offer.model) or normalize_model(offer.mpn),
        )
        for offer in ordered
    ]
    known_brands = {p.brand for p in prepared if p.brand}
    for p in prepared:
        if p.brand is None:
            p.brand = infer_brand(p.offer.title, known_brands)
            p.brand_inferred = p.brand is not None
    return prepared


def assign_groups(offers: Iterable[OfferForMatching]) -> list[GroupAssignment]:
    """Put every offer in exactly one product group (see the module docstring for the rules).

    Returns one assignment per distinct (marketplace, external_id), sorted by that key.
    """
    prepared = _prepare(offers)
    members: dict[tuple[str, str], _Membership] = {}

    # 1. GTIN groups.
    for p in prepared:
        if p.gtin:
            members[p.offer.key] = _Membership(f"gtin:{p.gtin}", METHOD_GTIN, CONFIDENCE_GTIN)

    # Which GTIN groups carry each explicit brand + model.
    gtin_groups_by_model: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in prepared:
        if p.gtin and p.brand and p.model and not p.brand_inferred:
            gtin_groups_by_model[(p.brand, p.model)].add(f"gtin:{p.gtin}")

    def target_for_model(brand: str, model: str) -> str:
        groups = gtin_groups_by_model.get((brand, model), set())
        return next(iter(groups)) if len(groups) == 1 else f"bm:{brand}|{model}"

    # 2. Explicit brand + model number.
    known_models: dict[str, set[str]] = defaultdict(set)
    for p in prepared:
        if p.brand and p.model and not p.brand_inferred:
            known_models[p.brand].add(p.model)
    for p in prepared:
        if p.offer.key in members or not (p.brand and p.model):
            continue
        confidence = CONFIDENCE_TITLE_MODEL if p.brand_inferred else CONFIDENCE_BRAND_MODEL
        members[p.offer.key] = _Membership(
            target_for_model(p.brand, p.model), METHOD_BRAND_MODEL, confidence
        )

    # 2b. A model number of the same brand written in the title.
    for p in prepared:
        if p.offer.key in members or not p.brand or p.model:
            continue
        found = model_candidates_in_title(p.offer.title) & known_models.get(p.brand, set())
        if len(found) == 1:
            (model,) = found
            members[p.offer.key] = _Membership(
                target_for_model(p.brand, model), METHOD_BRAND_MODEL, CONFIDENCE_TITLE_MODEL
            )

    # 3. Conservative title matching within a brand.
    _match_titles(prepared, members)

    # 4. Everything else: a group of its own, keyed so it stays stable if others join later.
    for p in prepared:
        if p.offer.key in members:
            continue
        if p.gtin:
            key = f"gtin:{p.gtin}"
        elif p.brand and p.model:
            key = f"bm:{p.brand}|{p.model}"
        else:
            key = f"offer:{p.offer.marketplace}|{p.offer.external_id}"
        members[p.offer.key] = _Membership(key, METHOD_SINGLE, CONFIDENCE_SINGLE)

    sizes = Counter(m.matching_key for m in members.values())
    assignments = []
    for key in sorted(members):
        membership = members[key]
        method, confidence = membership.method, membership.confidence
        if sizes[membership.matching_key] == 1:
            method, confidence = METHOD_SINGLE, CONFIDENCE_SINGLE
        assignments.append(
            GroupAssignment(
                marketplace=key[0],
                external_id=key[1],
                group_id=group_id_for(membership.matching_key),
                method=method,
                confidence=confidence,
                matching_key=membership.matching_key,
            )
        )
    return assignments


def _rarest_prefix(tokens: frozenset[str], frequency: Counter[str]) -> list[str]:
    """The rarest tokens that any title with Jaccard >= the threshold must share with this one."""
    ordered = sorted(tokens, key=lambda t: (frequency[t], t))
    length = len(ordered) - math.ceil(TITLE_MIN_SIMILARITY * len(ordered)) + 1
    return ordered[:length]


def _match_titles(prepared: list[_Prepared], members: dict[tuple[str, str], _Membership]) -> None:
    """Attach offers no stronger rule grouped to similar offers of the same brand on other
    marketplaces, best pairs first.

    Every admissible pair (same brand, different marketplaces, Jaccard >= the threshold, at least
    one side not grouped yet) is collected first, then accepted from the most similar down, ties
    going to the smallest keys. A pair joins a lone offer to the other's group, or makes a new
    title group of two lone offers; two existing groups are never merged, and a group never takes
    a second offer of one marketplace. Because no pair is accepted before every stronger one was
    considered, which offers end up together depends on the offers alone: not on the input order,
    not on hash seeds, and not on which of two competing offers happens to sort first (the first
    come, first served version let a weak early pair take the place a stronger one needed).

    Candidates come from prefix filtering on the rarest tokens (a pair with Jaccard >= t must share
    one of the first k - ceil(t*k) + 1 rarest tokens of either title), so big brands stay cheap.
    """
    by_brand: dict[str, list[tuple[_Prepared, frozenset[str]]]] = defaultdict(list)
    for p in prepared:
        if p.brand:
            tokens = title_tokens(p.offer.title, brand=p.brand)
            if len(tokens) >= TITLE_MIN_TOKENS:
                by_brand[p.brand].append((p, tokens))

    marketplaces_by_group: dict[str, set[str]] = defaultdict(set)
    for key, membership in members.items():
        marketplaces_by_group[membership.matching_key].add(key[0])

    # (similarity, smaller key, larger key, brand) of every admissible pair.
    pairs: list[tuple[float, tuple[str, str], tuple[str, str], str]] = []
    tokens_by_key: dict[tuple[str, str], frozenset[str]] = {}
    for brand, entries in by_brand.items():
        if not any(p.offer.key not in members for p, _ in entries):
            continue
        frequency: Counter[str] = Counter()
        for _, tokens in entries:
            frequency.update(tokens)

        index: dict[str, list[int]] = defaultdict(list)
        for position, (_, tokens) in enumerate(entries):
            for token in _rarest_prefix(tokens, frequency):
                index[token].append(position)

        # Titles whose numbers differ never match: comparing these first skips most pairs.
        numbers = [numeric_tokens(tokens) for _, tokens in entries]
        for position, (p, tokens) in enumerate(entries):
            if p.offer.key in members:
                continue
            tokens_by_key[p.offer.key] = tokens
            candidates = {
                other for token in _rarest_prefix(tokens, frequency) for other in index[token]
            }
            for other in candidates:
                q, other_tokens = entries[other]
                if (
                    other == position
                    or q.offer.marketplace == p.offer.marketplace
                    or numbers[other] != numbers[position]
                ):
                    continue
                group = members.get(q.offer.key)
                if group is None and q.offer.key < p.offer.key:
                    continue  # two lone offers: the pair is collected from the smaller key
                # A store rarely lists one product twice: if the group already has an offer of
                # this marketplace, this offer is more likely a variant than the same product.
                if group and p.offer.marketplace in marketplaces_by_group[group.matching_key]:
                    continue
                similarity = title_similarity(tokens, other_tokens)
                if similarity >= TITLE_MIN_SIMILARITY:
                    low, high = sorted((p.offer.key, q.offer.key))
                    pairs.append((similarity, low, high, brand))

    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    for similarity, low, high, brand in pairs:
        low_group, high_group = members.get(low), members.get(high)
        if low_group is not None and high_group is not None:
            continue
        confidence = title_match_confidence(similarity)
        group = low_group if low_group is not None else high_group
        joining = high if low_group is not None else low
        if group is None:
            matching_key = f"title:{brand}|{' '.join(sorted(tokens_by_key[low]))}"
            members[low] = _Membership(matching_key, METHOD_TITLE, confidence)
            members[high] = _Membership(matching_key, METHOD_TITLE, confidence)
            marketplaces_by_group[matching_key].update({low[0], high[0]})
        elif joining[0] not in marketplaces_by_group[group.matching_key]:
            members[joining] = _Membership(group.matching_key, METHOD_TITLE, confidence)
            marketplaces_by_group[group.matching_key].add(joining[0])
