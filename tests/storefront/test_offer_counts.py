"""How many offers a product has, as the listing card, the product page and the assistant say
it: the offers a shopper can buy now, on how many marketplaces, and how many more are listed
but unavailable. Shopper QA (shop20): the card read "4 offers on 4 marketplaces" over a product
one of whose offers was out of stock, and the product page said the same over a table with an
"Unavailable" row.

The real storefront DB and a real Meilisearch index of the sample catalog, built by the
pipeline's document code (search_documents, sync_group_index): the count is the product
document's, read with the card's other fields, not worked out per card or per request."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Product
from search_index.groups import build_group_documents
from search_index.indexing import connect
from tests.storefront.conftest import text_of
from tests.storefront.sample_catalog import SONY_GROUP, TV_GROUP, search_documents

# The Hisense TV: ShopWave and DummyMart in stock, FakeStore's offer out of stock.
TV_OFFERS = "2 offers in stock on 2 marketplaces, 1 unavailable"
# The Sony headphones: four offers, each in stock, on four marketplaces.
SONY_OFFERS = "4 offers on 4 marketplaces"


@pytest.fixture
def app_config_overrides(meili_server: str, sample_index: str) -> dict[str, Any]:
    return {"MEILI_URL": meili_server, "MEILI_INDEX": sample_index, "FX_CACHE_SECONDS": 0}


def _card_text(html: str, group_id: str) -> str:
    card = re.search(
        rf'<article class="product-card[^"]*">\s*<h3 class="product-card-title"><a '
        rf'class="product-card-link" href="/product/{group_id}[^"]*">.*?</article>',
        html,
        re.S,
    )
    assert card, group_id
    return text_of(card.group(0))


def test_the_product_document_counts_the_offers_that_can_be_bought() -> None:
    documents = {d["id"]: d for d in build_group_documents(search_documents())}

    tv = documents[TV_GROUP]
    assert (tv["offer_count"], tv["available_offer_count"]) == (3, 2)
    assert (tv["marketplace_count"], tv["available_marketplace_count"]) == (3, 2)


def test_the_listing_card_and_the_product_page_say_the_same_count(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    listing = client.get("/search", query_string={"q": "hisense"}).get_data(as_text=True)
    assert TV_OFFERS in _card_text(listing, TV_GROUP)
    sony = client.get("/search", query_string={"q": "sony"}).get_data(as_text=True)
    assert SONY_OFFERS in _card_text(sony, SONY_GROUP)

    product = text_of(client.get(f"/product/{TV_GROUP}").get_data(as_text=True))
    assert f"{TV_OFFERS}; prices shown in" in product
    assert product.count("Unavailable") == 1  # the one unavailable offer's row

    api = client.get("/api/search", query_string={"q": "hisense"}).get_json()
    hit = next(h for h in api["hits"] if h["id"] == TV_GROUP)
    assert (hit["offers"], hit["offers_in_stock"], hit["offers_text"]) == (3, 2, TV_OFFERS)


def test_the_assistant_says_the_same_count(
    catalog: dict[str, Product], db_session: Session, sample_index: str
) -> None:
    from assistant.retrieval import MODE_KEYWORD
    from assistant.service import answer_prompt
    from commerce.fx import load_fx_table

    answer = answer_prompt(
        "hisense television",
        client=connect(),
        index_uid=sample_index,
        fx=load_fx_table(db_session),
        mode=MODE_KEYWORD,
        use_llm=False,
    )

    suggestion = next(s for s in answer.suggestions if s.group_id == TV_GROUP)
    assert suggestion.offers_text == TV_OFFERS
