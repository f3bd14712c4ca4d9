"""The words shoppers use for categories, and what the index calls brands, categories and stores.

Categories are a fixed lexicon: each canonical category has the phrases that name it in a request
(singular and plural, common synonyms and a few product words from other languages), and the
slugs its values take in the index (marketplaces spell "Insulated Mugs & Flasks" or
"mugs-flasks"). Brands and marketplaces come from the index itself (:class:`CatalogVocabulary`),
so a new brand is recognised as soon as it is indexed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True, slots=True)
class CategoryTerms:
    """One canonical category: its label, the phrases naming it and its index value slugs."""

    key: str
    label: str
    phrases: tuple[str, ...]
    value_slugs: tuple[str, ...] = ()


# Phrases are lower-case and accent-free; longer phrases win over shorter ones that overlap
# ("coffee maker" over nothing, "laptop backpack" ends on "backpack"). "coffee" alone, "runner"
# and "gift" are deliberately not here: they describe a need, not a category.
CATEGORIES: Final[tuple[CategoryTerms, ...]] = (
    CategoryTerms(
        "smartphones",
        "Smartphones",
        (
            "smartphone",
            "smartphones",
            "smart phone",
            "smart phones",
            "phone",
            "phones",
            "mobile phone",
            "mobile phones",
            "mobile",
            "mobiles",
            "cell phone",
            "cell phones",
            "cellphone",
            "cellphones",
            "android phone",
            "iphone",
            "iphones",
            "telefono",
            "celular",
        ),
    ),
    CategoryTerms(
        "laptops",
        "Laptops",
        (
            "laptop",
            "laptops",
            "notebook computer",
            "notebook",
            "notebooks",
            "macbook",
            "macbooks",
            "ultrabook",
            "portatil",
            "ordinateur portable",
        ),
    ),
    CategoryTerms(
        "headphones",
        "Headphones",
        (
            "headphones",
            "headphone",
            "earphones",
            "earphone",
            "earbuds",
            "earbud",
            "ear buds",
            "headset",
            "headsets",
            "airpods",
            "kopfhorer",
            "auriculares",
            "ecouteurs",
            "casque audio",
        ),
    ),
    CategoryTerms(
        "televisions",
        "Televisions",
        (
            "tv",
            "tvs",
            "television",
            "televisions",
            "telly",
            "smart tv",
            "smart tvs",
            "fernseher",
            "televisor",
            "televiseur",
            "television set",
        ),
    ),
    CategoryTerms(
        "speakers",
        "Speakers",
        (
            "speaker",
            "speakers",
            "loudspeaker",
            "loudspeakers",
            "bluetooth speaker",
            "party speaker",
            "lautsprecher",
            "altavoz",
        ),
    ),
    CategoryTerms(
        "cameras",
        "Cameras",
        (
            "camera",
            "cameras",
            "action camera",
            "action cam",
            "mirrorless",
            "dslr",
            "camcorder",
            "kamera",
            "camara",
        ),
    ),
    CategoryTerms(
        "smartwatches",
        "Smartwatches",
        (
            "smartwatch",
            "smartwatches",
            "smart watch",
            "smart watches",
            "watch",
            "watches",
            "fitness tracker",
            "fitness trackers",
            "activity tracker",
            "fitness band",
            "reloj",
        ),
    ),
    CategoryTerms(
        "running-shoes",
        "Running Shoes",
        (
            "running shoes",
            "running shoe",
            "running trainers",
            "trainers",
            "sneakers",
            "sneaker",
            "jogging shoes",
            "shoes",
            "laufschuhe",
            "zapatillas",
            "zapatillas de correr",
            "chaussures de course",
        ),
        ("running-shoes",),
    ),
    CategoryTerms(
        "sports-apparel",
        "Sports Apparel",
        (
            "sports apparel",
            "sportswear",
            "activewear",
            "gym clothes",
            "t-shirt",
            "t-shirts",
            "tshirt",
            "tee",
            "tees",
            "hoodie",
            "hoodies",
            "sweatshirt",
            "track jacket",
            "jacket",
            "jackets",
            "shorts",
            "running shorts",
            "joggers",
            "sweatpants",
        ),
        ("sports-apparel",),
    ),
    CategoryTerms(
        "kitchen-appliances",
        "Kitchen Appliances",
        (
            "kitchen appliance",
            "kitchen appliances",
            "kettle",
            "kettles",
            "electric kettle",
            "air fryer",
            "air fryers",
            "airfryer",
            "blender",
            "blenders",
            "toaster",
            "toasters",
            "microwave",
            "microwaves",
            "microwave oven",
            "rice cooker",
            "rice cookers",
        ),
        ("kitchen-appliances",),
    ),
    CategoryTerms(
        "coffee-makers",
        "Coffee Makers",
        (
            "coffee maker",
            "coffee makers",
            "coffeemaker",
            "coffee machine",
            "coffee machines",
            "espresso machine",
            "espresso machines",
            "espresso maker",
            "capsule machine",
            "pod machine",
            "cafetera",
            "kaffeemaschine",
        ),
        ("coffee-makers",),
    ),
    CategoryTerms(
        "mugs-flasks",
        "Insulated Mugs & Flasks",
        (
            "insulated mug",
            "insulated mugs",
            "travel mug",
            "travel mugs",
            "mug",
            "mugs",
            "flask",
            "flasks",
            "vacuum flask",
            "thermos",
            "thermoses",
            "tumbler",
            "tumblers",
            "water bottle",
            "water bottles",
            "insulated bottle",
            "thermosflasche",
            "termo",
        ),
        ("mugs-flasks", "insulated-mugs-flasks"),
    ),
    CategoryTerms(
        "backpacks",
        "Backpacks",
        (
            "backpack",
            "backpacks",
            "rucksack",
            "rucksacks",
            "daypack",
            "school bag",
            "laptop bag",
            "rucksacke",
            "mochila",
        ),
    ),
    CategoryTerms(
        "books",
        "Books",
        ("book", "books", "novel", "novels", "paperback", "hardcover", "libro", "livre"),
    ),
    CategoryTerms(
        "toys",
        "Toys & Games",
        (
            "toy",
            "toys",
            "board game",
            "board games",
            "building set",
            "toy car",
            "toy cars",
            "juguete",
            "spielzeug",
        ),
        ("toys", "toys-games"),
    ),
    CategoryTerms(
        "beauty",
        "Beauty",
        (
            "beauty",
            "skincare",
            "skin care",
            "moisturiser",
            "moisturizer",
            "moisturising cream",
            "body lotion",
            "lotion",
            "mascara",
            "makeup",
            "make-up",
            "cosmetics",
            "micellar water",
            "cleanser",
        ),
        ("beauty", "beauty-personal-care"),
    ),
)
CATEGORIES_BY_KEY: Final[Mapping[str, CategoryTerms]] = {c.key: c for c in CATEGORIES}

# Phrases that name a kind of product *within* a category ("electric kettle" among kitchen
# appliances): they set the category and also stay in the words the search ranks by, or the
# answer would show toasters to someone who asked for a kettle.
SPECIFIC_PHRASES: Final = frozenset(
    {
        "iphone", "iphones", "macbook", "macbooks", "airpods", "android phone",
        "earbuds", "earbud", "ear buds", "smart tv", "smart tvs", "bluetooth speaker",
        "party speaker", "action camera", "action cam", "mirrorless", "dslr", "camcorder",
        "fitness tracker", "fitness trackers", "activity tracker", "fitness band",
        "running trainers", "t-shirt", "t-shirts", "tshirt", "tee", "tees", "hoodie", "hoodies",
        "sweatshirt", "track jacket", "jacket", "jackets", "shorts", "running shorts", "joggers",
        "sweatpants", "kettle", "kettles", "electric kettle", "air fryer", "air fryers",
        "airfryer", "blender", "blenders", "toaster", "toasters", "microwave", "microwaves",
        "microwave oven", "rice cooker", "rice cookers", "espresso machine", "espresso machines",
        "espresso maker", "capsule machine", "pod machine", "travel mug", "travel mugs",
        "vacuum flask", "tumbler", "tumblers", "water bottle", "water bottles",
        "insulated bottle", "daypack", "school bag", "laptop bag", "paperback", "hardcover",
        "board game", "board games", "building set", "toy car", "toy cars", "mascara",
        "body lotion", "lotion", "moisturiser", "moisturizer", "moisturising cream",
        "micellar water", "cleanser", "makeup", "make-up",
    }
)  # fmt: skip

# Words that carry no product meaning in a request; removed from the keyword query only.
STOPWORDS: Final = frozenset(
    [
        # "what about a backpack", "a book about birds": no product mentions "about" for them
        # (an amount after it, "about $30", is the budget's).
        "about",
        "a",
        "an",
        "the",
        "i",
        "i'm",
        "im",
        "me",
        "my",
        "mine",
        "we",
        "our",
        "us",
        "you",
        "your",
        "please",
        "pls",
        "show",
        "find",
        "get",
        "buy",
        "give",
        "want",
        "wants",
        "need",
        "needs",
        "needed",
        "looking",
        "look",
        "search",
        "for",
        "to",
        "of",
        "in",
        "on",
        "at",
        "with",
        "and",
        "or",
        "but",
        "that",
        "which",
        "who",
        "is",
        "are",
        "was",
        "be",
        "been",
        "some",
        "something",
        "anything",
        # Asking for help or for everything names nothing to search ("help" was said missing).
        "everything",
        "help",
        "hello",
        "hi",
        "hey",
        "thing",
        "things",
        "stuff",
        "one",
        "ones",
        "any",
        "would",
        "like",
        "could",
        "should",
        "can",
        "recommend",
        "suggest",
        "suggestion",
        "me?",
        "what",
        "whats",
        "what's",
        "there",
        "good",
        "nice",
        "great",
        "new",
        "really",
        "very",
        "just",
        "also",
        "so",
        "it",
        "its",
        "it's",
        "this",
        "these",
        "those",
        "kind",
        "sort",
        "type",
    ]
)

# Tokens never taken for a misspelled brand or category (colours, common words).
FUZZY_STOPLIST: Final = frozenset(
    [
        "matte",
        "black",
        "white",
        "green",
        "brown",
        "cream",
        "silver",
        "charcoal",
        "graphite",
        "under",
        "about",
        "above",
        "below",
        "phone",
        "phones",
        "watch",
        "games",
        "lotion",
        "cheap",
        "price",
        "prices",
        "rated",
        "stars",
        "apples",
        "ocean",
        "plays",
        "there",
        "their",
        "where",
        "other",
        "these",
        "those",
        "things",
        "thing",
        "would",
        "could",
        "should",
        "little",
        "large",
        "small",
        "great",
        "about",
        "after",
        "before",
        "under",
        "while",
        "which",
        "whose",
        "quiet",
        "music",
        "movies",
        "gifts",
        "presents",
        "sport",
        "sports",
        "brand",
        "brands",
        # "size does not matter" was the brand Mattel, excluded.
        "matter",
        "matters",
        "mattered",
    ]
)

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower-case, accents removed, typographic quotes and dashes made plain: the form every
    comparison in the assistant uses ("L’Oréal" -> "l'oreal")."""
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = text.replace("–", "-").replace("—", "-")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.lower()


def slugify(text: str) -> str:
    """ "Insulated Mugs & Flasks" -> "insulated-mugs-flasks" (how index values are compared)."""
    return _NOT_SLUG.sub("-", fold(text)).strip("-")


def category_key_for_value(value: str) -> str | None:
    """The canonical category an index value belongs to, or None when the lexicon has none."""
    slug = slugify(value)
    for category in CATEGORIES:
        if slug == category.key or slug in category.value_slugs:
            return category.key
        if slug in {slugify(phrase) for phrase in category.phrases}:
            return category.key
    return None


def category_label(key: str) -> str:
    """The label a shopper reads for a canonical category key."""
    category = CATEGORIES_BY_KEY.get(key)
    return category.label if category else key


@dataclass(frozen=True, slots=True)
class CatalogVocabulary:
    """What the index holds right now: brand values, marketplaces (slug -> name) and, per
    canonical category, the category values to filter on.

    Built from the index's facets by :func:`assistant.index_profile.load_index_profile`; plain data so
    the intent parser stays a pure function of (text, vocabulary).
    """

    brands: tuple[str, ...] = ()
    marketplaces: Mapping[str, str] = field(default_factory=dict)
    category_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_facets(
        cls,
        *,
        brands: Iterable[str],
        categories: Iterable[str],
        marketplaces: Mapping[str, str],
    ) -> CatalogVocabulary:
        """Group the index's category values under the lexicon's keys (unknown ones are left
        out: they can still be found by free text)."""
        grouped: dict[str, list[str]] = {}
        for value in sorted(set(categories)):
            key = category_key_for_value(value)
            if key is not None:
                grouped.setdefault(key, []).append(value)
        return cls(
            brands=tuple(sorted({b for b in brands if b and b.strip()}, key=str.lower)),
            marketplaces=dict(sorted(marketplaces.items())),
            category_values={key: tuple(values) for key, values in sorted(grouped.items())},
        )

    def marketplace_name(self, slug: str) -> str:
        """The display name of a marketplace slug (the slug itself when unknown)."""
        return self.marketplaces.get(slug, slug)
