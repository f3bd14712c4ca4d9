"""The sandbox's marketplaces: who they are, what API they speak, their currency and habits.

Six marketplaces share the world's products (``MARKETPLACES``); the affiliate ones list a curated
slice of them (``AFFILIATE_MARKETPLACES``). sandbox.world computes their offers.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class MarketplaceProfile:
    """What the world needs to know about one sandbox marketplace."""

    slug: str
    name: str
    api_format: str
    currency: str
    # Units of `currency` per US dollar.
    usd_rate: Decimal
    # Per-mille markup over the world's base price (1000 = none).
    markup_permille: int
    # Multipliers on category weights for the marketplace's own (unshared) products.
    category_bias: tuple[tuple[str, float], ...]
    position: int


MARKETPLACES: tuple[MarketplaceProfile, ...] = (
    MarketplaceProfile(
        "shopwave",
        "ShopWave",
        "shopify",
        "USD",
        Decimal("1"),
        1000,
        (
            ("smartphones", 2),
            ("laptops", 2),
            ("headphones", 2),
            ("televisions", 2),
            ("speakers", 2),
            ("cameras", 2),
            ("smartwatches", 2),
            ("backpacks", 2),
            ("mugs-flasks", 1.5),
            ("running-shoes", 1.5),
            ("books", 0.3),
            ("beauty", 0.3),
        ),
        0,
    ),
    MarketplaceProfile(
        "kiondo",
        "Kiondo Market",
        "woocommerce",
        "KES",
        Decimal("129.5"),
        1060,
        (
            ("smartphones", 3),
            ("kitchen-appliances", 3),
            ("coffee-makers", 2),
            ("mugs-flasks", 2),
            ("televisions", 1.5),
            ("sports-apparel", 0.5),
            ("running-shoes", 0.5),
        ),
        1,
    ),
    MarketplaceProfile("dummymart", "DummyMart", "dummyjson", "USD", Decimal("1"), 960, (), 2),
    MarketplaceProfile(
        "fakestore",
        "Fake Store Berlin",
        "fakestore",
        "EUR",
        Decimal("0.92"),
        1030,
        (
            ("running-shoes", 3),
            ("sports-apparel", 3),
            ("backpacks", 2),
            ("smartwatches", 2),
            ("headphones", 1.5),
            ("kitchen-appliances", 0.3),
            ("televisions", 0.3),
        ),
        3,
    ),
    MarketplaceProfile(
        "naijamall",
        "NaijaMall",
        "google_feed",
        "NGN",
        Decimal("1580"),
        1080,
        (("smartphones", 3), ("televisions", 2), ("sports-apparel", 2), ("beauty", 2)),
        4,
    ),
    MarketplaceProfile(
        "bazaar",
        "Euro Bazaar",
        "declarative",
        "EUR",
        Decimal("0.92"),
        1010,
        (
            ("kitchen-appliances", 2),
            ("coffee-makers", 2),
            ("books", 2),
            ("beauty", 2),
            ("toys", 2),
        ),
        5,
    ),
)
MARKETPLACE_SLUGS: tuple[str, ...] = tuple(m.slug for m in MARKETPLACES)

# Marketplaces added on top of the six above without changing a byte of their catalogs: they sell
# the six's shared products (so their offers group with them by GTIN) plus products of their own,
# numbered in a serial range of their own. Neither takes orders through an API (hand-off only).
AFFILIATE_MARKETPLACES: tuple[MarketplaceProfile, ...] = (
    MarketplaceProfile(
        "amazon",
        "Amazon",
        "amazon",
        "USD",
        Decimal("1"),
        990,
        (
            ("headphones", 2),
            ("smartphones", 2),
            ("books", 2),
            ("toys", 2),
            ("mugs-flasks", 1.5),
            ("speakers", 1.5),
        ),
        6,
    ),
    MarketplaceProfile(
        "sokoni",
        "Sokoni",
        "csv_feed",
        "KES",
        Decimal("129.5"),
        1070,
        (("smartphones", 3), ("televisions", 2), ("beauty", 2), ("kitchen-appliances", 2)),
        7,
    ),
)
AFFILIATE_SLUGS: tuple[str, ...] = tuple(m.slug for m in AFFILIATE_MARKETPLACES)
# Every marketplace the sandbox serves, the six first.
SERVED_MARKETPLACES: tuple[MarketplaceProfile, ...] = MARKETPLACES + AFFILIATE_MARKETPLACES
SERVED_SLUGS: tuple[str, ...] = tuple(m.slug for m in SERVED_MARKETPLACES)
MARKETPLACES_BY_SLUG: dict[str, MarketplaceProfile] = {m.slug: m for m in SERVED_MARKETPLACES}
# An affiliate marketplace lists this share of one of the six's offer count (Amazon's search API
# reaches at most 100 items per query, so its demo catalog is a curated slice, not a warehouse).
AFFILIATE_COUNT_DIVISOR = 3
# In each block of 10 affiliate offers, this many are products the six share.
AFFILIATE_SHARED_PER_BLOCK = 5
# Sokoni's feed covers Jumia-style storefronts in Kenya (KES) and Nigeria (NGN).
SOKONI_NGN_SHARE = 0.25
NGN_PER_USD = Decimal("1580")

# Bazaar lists a few items in pounds (a UK seller on a euro marketplace).
BAZAAR_GBP_SHARE = 0.03
GBP_PER_USD = Decimal("0.79")
