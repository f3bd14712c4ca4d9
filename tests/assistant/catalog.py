"""A small hand-written catalog for the assistant's tests, written to both stores the assistant
reads: the Meilisearch index (documents from search_index.documents.build_document, synced with
search_index.indexing.sync_index, with real embeddings when the model is installed) and the
storefront DB (so suggestions get add-to-cart buttons).

Prices are integer minor units; FX rates are units per USD. Each offer's text says what it is
the way real stores do, so semantic and keyword search both have something to work with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import meilisearch
from sqlalchemy.orm import Session

from assistant.embeddings import Embedder, offer_text
from commerce.fx import FxTable
from commerce.models import FxRate, Marketplace, Product
from search_index.documents import build_document, convert_to_usd_minor
from search_index.indexing import sync_index

FX_PER_USD = {"EUR": Decimal("0.92"), "KES": Decimal("129.50"), "NGN": Decimal("1550")}
FX = FxTable(per_usd=FX_PER_USD, as_of=date(2026, 11, 20))
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SCRIPT_TITLE = '<script>alert("pwned")</script> JBL Flip 6 Portable Speaker'

MARKETPLACES: dict[str, dict[str, Any]] = {
    "shopwave": {"name": "ShopWave", "currency": "USD", "kind": "shopify", "country": "US"},
    "kiondo": {"name": "Kiondo Market", "currency": "KES", "kind": "woocommerce", "country": "KE"},
    "fakestore": {"name": "Fake Store Berlin", "currency": "EUR", "kind": "fakestore", "country": "DE"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Offer:
    """One listing of the test catalog."""

    marketplace: str
    external_id: str
    title: str
    description: str
    price_minor: int
    currency: str
    category: str
    brand: str | None
    group_id: str
    rating: Decimal | None = Decimal("4.5")
    available: bool = True

    @property
    def document_id(self) -> str:
        return f"{self.marketplace}--{self.external_id}"


OFFERS: tuple[Offer, ...] = (
    Offer("shopwave", "mug-1", "Thermos Stainless King Vacuum Insulated Travel Mug 16oz",
          "Keeps drinks hot for 12 hours and cold for 24. Leak-proof lid.", 2499, "USD",
          "Insulated Mugs & Flasks", "Thermos", "g-thermos-mug"),
    Offer("kiondo", "KD-MUG", "Thermos Stainless King Travel Mug 16oz (SK1005)",
          "Double-wall vacuum insulation keeps coffee hot on the way to work.", 290000, "KES",
          "Insulated Mugs & Flasks", "Thermos", "g-thermos-mug", Decimal("4.6")),
    Offer("fakestore", "7", "CONTIGO CT123 Vacuum Flask 1.2L Charcoal",
          "Vacuum flask for tea and coffee, stays hot all day.", 2190, "EUR",
          "mugs-flasks", None, "g-contigo-flask", Decimal("4.1")),
    Offer("shopwave", "shoe-1", "Asics Gel-Contend 8 Men's Running Shoes - Black",
          "Responsive foam cushioning for daily miles. Breathable mesh upper.", 3999, "USD",
          "Running Shoes", "Asics", "g-asics-contend"),
    Offer("kiondo", "KD-SHOE", "Nike Revolution 7 Road Running Shoes (DV1234-001)",
          "Lightweight trainers with grip on wet roads.", 899000, "KES",
          "Running Shoes", "Nike", "g-nike-revolution", Decimal("4.2")),
    Offer("shopwave", "tv-1", "Hisense U7K 65-inch QLED 4K Smart TV",
          "4K Ultra HD with HDR10. Variant: 65-inch Black.", 64999, "USD",
          "Televisions", "Hisense", "g-hisense-65", Decimal("4.4")),
    Offer("kiondo", "KD-TV65", "LG UHD UR80 Smart LED TV 65-inch (OLED65UR80)",
          "Built-in streaming apps. Variant: 65-inch Titan Black.", 7990000, "KES",
          "Televisions", "LG", "g-lg-65", Decimal("4.1")),
    Offer("fakestore", "12", "LG OLED65UR80 TV Black", "Variant: 65-inch Titan Black.",
          58000, "EUR", "televisions", None, "g-lg-65", Decimal("3.6")),
    Offer("shopwave", "tv-2", "Samsung Crystal UHD 55-inch Smart TV",
          "Slim bezels. Variant: 55-inch Black.", 42999, "USD", "Televisions", "Samsung",
          "g-samsung-55", Decimal("4.7")),
    Offer("shopwave", "hp-1", "Sony WH-1000XM5 Wireless Noise Cancelling Headphones",
          "Industry-leading noise cancelling for flights and commutes.", 34999, "USD",
          "Headphones", "Sony", "g-sony-xm5", Decimal("4.8")),
    Offer("fakestore", "3", SCRIPT_TITLE, "Waterproof portable bluetooth speaker.", 9999,
          "EUR", "Speakers", "JBL", "g-jbl-flip"),
    Offer("kiondo", "KD-COFFEE", "De'Longhi Dedica Espresso Machine EC685",
          "15-bar pump pressure for rich crema. Steam wand for milk foam.", 2100000, "KES",
          "Coffee Makers", "De'Longhi", "g-delonghi-dedica"),
    Offer("shopwave", "book-1", "Half of a Yellow Sun by Chimamanda Ngozi Adichie (Paperback)",
          "A bestseller loved by book clubs.", 1599, "USD", "Books", "Penguin",
          "g-yellow-sun"),
    Offer("shopwave", "watch-1", "Garmin Forerunner 265 GPS Running Smartwatch",
          "Built-in GPS for runs, heart rate and training readiness.", 44999, "USD",
          "Smartwatches", "Garmin", "g-garmin-265", available=False),
)  # fmt: skip


def group_fields(offers: Sequence[Offer]) -> dict[str, dict[str, Any]]:
    """Group size, marketplaces and cheapest USD price per group, as the pipeline computes."""
    members: dict[str, list[Offer]] = {}
    for offer in offers:
        members.setdefault(offer.group_id, []).append(offer)
    return {
        group_id: {
            "group_id": group_id,
            "group_size": len(items),
            "group_marketplaces": len({item.marketplace for item in items}),
            "group_min_price_usd_minor": min(
                convert_to_usd_minor(i.price_minor, i.currency, FX_PER_USD) for i in items
            ),
        }
        for group_id, items in members.items()
    }


def offer_row(offer: Offer) -> dict[str, Any]:
    """The warehouse-style row build_document reads."""
    return {
        "marketplace": offer.marketplace,
        "external_id": offer.external_id,
        "title": offer.title,
        "description": offer.description,
        "price_minor": offer.price_minor,
        "currency": offer.currency,
        "image_url": None,
        "product_url": f"https://{offer.marketplace}.example/{offer.external_id}",
        "category": offer.category,
        "brand": offer.brand,
        "model": None,
        "gtin": None,
        "rating": offer.rating,
        "rating_count": 10,
        "available": offer.available,
        "updated_at": NOW,
        "content_hash": f"h-{offer.marketplace}-{offer.external_id}",
    }


def search_documents(offers: Sequence[Offer] = OFFERS) -> list[dict[str, Any]]:
    """The contract's search documents of the offers."""
    groups = group_fields(offers)
    return [
        build_document(
            offer_row(offer),
            marketplace={"slug": offer.marketplace, **MARKETPLACES[offer.marketplace]},
            group=groups[offer.group_id],
            fx_usd_rates=FX_PER_USD,
            history=None,
        )
        for offer in offers
    ]


def catalog_vectors(embedder: Embedder, offers: Sequence[Offer] = OFFERS) -> dict[str, list[float]]:
    """Real embeddings of every offer's text (the same text the pipeline embeds)."""
    texts = [offer_text(offer_row(offer)) for offer in offers]
    vectors = embedder.embed_documents(texts)
    return {offer.document_id: vector for offer, vector in zip(offers, vectors, strict=True)}


def index_catalog(
    client: meilisearch.Client,
    index_uid: str,
    vectors: Mapping[str, list[float]] | None,
    offers: Sequence[Offer] = OFFERS,
) -> None:
    """Build the index from scratch (with vectors when given)."""
    sync_index(client, index_uid, search_documents(offers), full_rebuild=True, vectors=vectors)


def insert_catalog(session: Session, offers: Sequence[Offer] = OFFERS) -> dict[str, Product]:
    """Marketplaces, FX rates and products in the storefront DB; returns products by doc id."""
    markets: dict[str, Marketplace] = {}
    for slug, fields in MARKETPLACES.items():
        market = Marketplace(
            slug=slug,
            name=fields["name"],
            kind=fields["kind"],
            api_base_url=f"http://127.0.0.1:9/{slug}",
            currency=fields["currency"],
            country=fields["country"],
            capabilities=["catalog", "order"],
        )
        session.add(market)
        markets[slug] = market
    for currency, rate in FX_PER_USD.items():
        session.add(FxRate(currency=currency, rate=rate, as_of=date(2026, 11, 20), source="test"))
    session.flush()
    products: dict[str, Product] = {}
    for offer in offers:
        product = Product(
            marketplace_id=markets[offer.marketplace].id,
            external_id=offer.external_id,
            title=offer.title,
            description=offer.description,
            price_minor=offer.price_minor,
            currency=offer.currency,
            category=offer.category,
            brand=offer.brand,
            rating=offer.rating,
            available=offer.available,
            relation_token=offer.group_id,
            match_method="gtin",
            match_confidence=Decimal("1.00"),
        )
        session.add(product)
        products[offer.document_id] = product
    session.commit()
    return products
