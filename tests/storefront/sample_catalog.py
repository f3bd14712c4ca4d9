"""A small, hand-checked catalog for the storefront tests, written to BOTH stores the site reads:
the Meilisearch index (documents built by search_index.documents.build_document, indexed by
search_index.indexing.sync_index with the contract's settings) and the storefront DB (ORM rows).

Every number here is chosen so tests can state exact expectations: FX rates are units per USD,
prices are integer minor units.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import meilisearch
from sqlalchemy.orm import Session

from commerce.models import FxRate, Marketplace, PricePoint, Product
from search_index.documents import build_document, convert_to_usd_minor
from search_index.groups import sync_group_index
from search_index.indexing import index_exists, sync_index
from search_index.settings import group_index_uid

FX_PER_USD = {
    "EUR": Decimal("0.92"),
    "KES": Decimal("129.50"),
    "NGN": Decimal("1550"),
    "GBP": Decimal("0.79"),
}
FX_AS_OF = date(2026, 11, 20)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

MARKETPLACES: dict[str, dict[str, Any]] = {
    "shopwave": {
        "name": "ShopWave",
        "kind": "shopify",
        "currency": "USD",
        "country": "US",
        "rating": Decimal("4.6"),
        "capabilities": ["catalog", "live_offer", "order", "track", "cancel"],
        "description": "A Shopify electronics and outdoor store.",
    },
    "kiondo": {
        "name": "Kiondo Market",
        "kind": "woocommerce",
        "currency": "KES",
        "country": "KE",
        "rating": Decimal("4.3"),
        "capabilities": ["catalog", "live_offer", "order", "track", "cancel"],
        "description": "Nairobi's WooCommerce home, kitchen and phone shop.",
    },
    "dummymart": {
        "name": "DummyMart",
        "kind": "dummyjson",
        "currency": "USD",
        "country": "US",
        "rating": Decimal("4.1"),
        "capabilities": ["catalog", "live_search", "live_offer", "order"],
        "description": "A general store with a DummyJSON-style API.",
    },
    "fakestore": {
        "name": "Fake Store Berlin",
        "kind": "fakestore",
        "currency": "EUR",
        "country": "DE",
        "rating": Decimal("3.9"),
        "capabilities": ["catalog", "live_offer", "order"],
        "description": "Fashion, sports and gadgets from Berlin.",
    },
    "naijamall": {
        "name": "NaijaMall",
        "kind": "google_feed",
        "currency": "NGN",
        "country": "NG",
        "rating": Decimal("4.0"),
        "capabilities": ["catalog"],
        "description": "Lagos affiliate catalog; checkout happens on NaijaMall.",
    },
    "bazaar": {
        "name": "Euro Bazaar",
        "kind": "declarative",
        "currency": "EUR",
        "country": "FR",
        "rating": Decimal("4.4"),
        "capabilities": ["catalog"],
        "description": "A Paris marketplace read through the declarative adapter.",
    },
}

SONY_GROUP = "g-sonyxm5"
TV_GROUP = "g-hisense65"
FLASK_GROUP = "g-thermosking"
SCRIPT_TITLE = '<script>alert("pwned")</script> JBL Flip 6 Portable Speaker'


@dataclass(frozen=True, slots=True)
class SampleOffer:
    marketplace: str
    external_id: str
    title: str
    price_minor: int
    currency: str
    category: str
    brand: str | None
    group_id: str | None = None
    rating: Decimal | None = None
    rating_count: int | None = None
    available: bool = True
    previous_price_minor: int | None = None
    price_dropped_at: datetime | None = None
    description: str = ""

    @property
    def usd_minor(self) -> int:
        return convert_to_usd_minor(self.price_minor, self.currency, FX_PER_USD)

    @property
    def document_group_id(self) -> str:
        """Ungrouped offers stand alone: their group is themselves (as the pipeline does)."""
        return self.group_id or f"g-single-{self.marketplace}-{self.external_id}"


OFFERS: tuple[SampleOffer, ...] = (
    # Sony headphones on four marketplaces; cheapest in USD terms is KES 42,000.00 ≈ $324.32.
    SampleOffer("shopwave", "1001", "Sony WH-1000XM5 Wireless Noise Cancelling Headphones - Black",
                34999, "USD", "headphones", "Sony", SONY_GROUP, Decimal("4.7"), 1200),
    SampleOffer("kiondo", "KD-55", "SONY WH1000XM5 Headphones Black", 4200000, "KES",
                "headphones", "Sony", SONY_GROUP, Decimal("4.5"), 87),
    SampleOffer("bazaar", "BZ-XM5", "Casque Sony WH-1000XM5 headphones", 31999, "EUR",
                "headphones", "Sony", SONY_GROUP, Decimal("4.6"), 300),
    SampleOffer("naijamall", "NM-77", "Sony WH-1000XM5 Noise Cancelling Headphones", 52000000,
                "NGN", "headphones", "Sony", SONY_GROUP, None, None),
    # A TV on three marketplaces, one out of stock.
    SampleOffer("shopwave", "2001", "Hisense 65-inch 4K UHD Smart Television", 59999, "USD",
                "televisions", "Hisense", TV_GROUP, Decimal("4.4"), 510),
    SampleOffer("dummymart", "31", "Hisense 65 inch 4K Smart TV 65A6", 54999, "USD",
                "televisions", "Hisense", TV_GROUP, Decimal("4.2"), 75),
    SampleOffer("fakestore", "8", "Hisense 65A6 65-inch television", 61000, "EUR",
                "televisions", "Hisense", TV_GROUP, Decimal("3.8"), 12, available=False),
    # A flask on two marketplaces.
    SampleOffer("kiondo", "KD-90", "Thermos Stainless King Vacuum Flask 470ml", 350000, "KES",
                "flasks", "Thermos", FLASK_GROUP, Decimal("4.8"), 40),
    SampleOffer("bazaar", "BZ-TH1", "Thermos Stainless King flask 0.47 l", 2999, "EUR",
                "flasks", "Thermos", FLASK_GROUP, Decimal("4.5"), 22),
    # Single offers.
    SampleOffer("dummymart", "44", "Asics Gel-Contend 8 Running Shoes", 3999, "USD",
                "running shoes", "Asics", None, Decimal("4.9"), 950),
    SampleOffer("fakestore", "3", SCRIPT_TITLE, 9999, "EUR", "speakers", "JBL", None,
                Decimal("4.0"), 10),
    SampleOffer("bazaar", "BZ-MUG", "Contigo West Loop Travel Mug", 1800, "GBP", "mugs",
                "Contigo", None, Decimal("4.1"), 61),
    SampleOffer("shopwave", "3001", "Anker PowerCore 10000 Portable Charger", 1999, "USD",
                "chargers", "Anker", None, Decimal("4.3"), 2000,
                previous_price_minor=2999, price_dropped_at=NOW - timedelta(days=1)),
    SampleOffer("fakestore", "9", 'O"Neill Logo Hoodie', 4500, "EUR", "sports apparel",
                'O"Neill', None, Decimal("3.5"), 4),
)  # fmt: skip


def by_external_id(external_id: str) -> SampleOffer:
    return next(offer for offer in OFFERS if offer.external_id == external_id)


def group_stats(offers: Iterable[SampleOffer]) -> dict[str, dict[str, Any]]:
    """group_size / group_marketplaces / group_available(_marketplaces) /
    group_min_price_usd_minor, as the pipeline computes."""
    members: dict[str, list[SampleOffer]] = {}
    for offer in offers:
        members.setdefault(offer.document_group_id, []).append(offer)
    return {
        group_id: {
            "group_id": group_id,
            "group_size": len(items),
            "group_marketplaces": len({item.marketplace for item in items}),
            "group_available": sum(1 for item in items if item.available),
            "group_available_marketplaces": len(
                {item.marketplace for item in items if item.available}
            ),
            "group_min_price_usd_minor": min(item.usd_minor for item in items),
        }
        for group_id, items in members.items()
    }


def search_documents(offers: Iterable[SampleOffer] = OFFERS) -> list[dict[str, Any]]:
    """The contract's documents for the sample offers."""
    offers = list(offers)
    groups = group_stats(offers)
    documents = []
    for number, offer in enumerate(offers):
        market = MARKETPLACES[offer.marketplace]
        row = {
            "marketplace": offer.marketplace,
            "external_id": offer.external_id,
            "title": offer.title,
            "description": offer.description or f"{offer.title}. Sold by {market['name']}.",
            "price_minor": offer.price_minor,
            "currency": offer.currency,
            "image_url": None,
            "product_url": f"http://127.0.0.1:9/{offer.marketplace}/{offer.external_id}",
            "category": offer.category,
            "brand": offer.brand,
            "model": None,
            "gtin": None,
            "rating": offer.rating,
            "rating_count": offer.rating_count,
            "available": offer.available,
            "content_hash": f"hash-{offer.marketplace}-{offer.external_id}",
            "updated_at": NOW - timedelta(hours=number),
        }
        history = None
        if offer.previous_price_minor is not None:
            history = {
                "previous_price_minor": offer.previous_price_minor,
                "price_dropped_at": offer.price_dropped_at,
            }
        documents.append(
            build_document(
                row,
                marketplace={
                    "slug": offer.marketplace,
                    "name": market["name"],
                    "logo": f"/static/logos/{offer.marketplace}.svg",
                },
                group=groups[offer.document_group_id],
                fx_usd_rates=FX_PER_USD,
                history=history,
            )
        )
    return documents


def index_sample_catalog(client: meilisearch.Client, index_uid: str) -> None:
    """Build `index_uid` from the sample offers with the contract's settings (a real rebuild),
    and its product index `<index_uid>_groups` from the same documents."""
    documents = search_documents()
    sync_index(client, index_uid, documents, full_rebuild=True, task_timeout=120)
    sync_group_index(client, index_uid, documents, full_rebuild=True, task_timeout=120)


def insert_sample_catalog(session: Session) -> dict[str, Product]:
    """Marketplaces, offers, FX rates and a price history in the storefront DB.

    Returns the products by external id. The Sony offer on ShopWave has three price points.
    """
    markets: dict[str, Marketplace] = {}
    for slug, facts in MARKETPLACES.items():
        market = Marketplace(
            slug=slug,
            name=facts["name"],
            kind=facts["kind"],
            api_base_url=f"http://127.0.0.1:9/{slug}",
            description=facts["description"],
            logo=f"/static/logos/{slug}.svg",
            rating=facts["rating"],
            active=True,
            country=facts["country"],
            currency=facts["currency"],
            capabilities=list(facts["capabilities"]),
        )
        session.add(market)
        markets[slug] = market
    session.flush()
    products: dict[str, Product] = {}
    for offer in OFFERS:
        product = Product(
            marketplace_id=markets[offer.marketplace].id,
            external_id=offer.external_id,
            title=offer.title,
            description=offer.description or f"{offer.title}. Sold by {offer.marketplace}.",
            price_minor=offer.price_minor,
            currency=offer.currency,
            image_url=None,
            product_url=f"http://127.0.0.1:9/{offer.marketplace}/{offer.external_id}",
            category=offer.category,
            brand=offer.brand,
            rating=offer.rating,
            rating_count=offer.rating_count,
            available=offer.available,
            relation_token=offer.document_group_id,
        )
        session.add(product)
        products[offer.external_id] = product
    for currency, rate in FX_PER_USD.items():
        session.add(FxRate(currency=currency, rate=rate, as_of=FX_AS_OF, source="test"))
    session.flush()
    sony = products["1001"]
    for days_ago, price in ((30, 39999), (10, 37999), (2, 34999)):
        session.add(
            PricePoint(
                product_id=sony.id,
                price_minor=price,
                currency="USD",
                available=True,
                observed_at=NOW - timedelta(days=days_ago),
            )
        )
    session.flush()
    return products


def delete_sample_catalog(client: meilisearch.Client, index_uid: str) -> None:
    """Delete the offers index and its product index (whichever exist)."""
    for uid in (index_uid, group_index_uid(index_uid)):
        if index_exists(client, uid):
            client.wait_for_task(client.delete_index(uid).task_uid, timeout_in_ms=30_000)
