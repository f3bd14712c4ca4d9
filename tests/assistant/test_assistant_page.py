"""The assistant page through Flask's test client, on the real Meilisearch, Redis and storefront
DB: success, empty, too long, no results, model missing, escaping, CSRF, rate limits, and the
signed-in shopper's history with re-run and per-user isolation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from commerce.assistant_models import AIPrompt
from commerce.models import CartItem, User
from tests.assistant.catalog import SCRIPT_TITLE
from tests.assistant.conftest import MISSING_MODEL, log_in


def _html(response: Any) -> str:
    return response.get_data(as_text=True)


def test_the_page_offers_the_request_box_and_examples(keyword_app: Flask) -> None:
    response = keyword_app.test_client().get("/assistant")
    html = _html(response)
    assert response.status_code == 200
    assert 'name="prompt"' in html
    assert "something to keep my coffee hot" in html
    assert "Log in</a> to keep a history" in html


def test_a_request_gets_grounded_suggestions_with_add_to_cart(
    keyword_app: Flask, catalog_rows: dict[str, Any]
) -> None:
    client = keyword_app.test_client()
    response = client.post("/assistant", data={"prompt": "thermos travel mug under 30 dollars"})
    html = _html(response)
    assert response.status_code == 200
    # The Thermos mug is sold on ShopWave ($24.99) and Kiondo (2,900 KES ≈ $22.39): the
    # cheaper offer is the one suggested.
    assert "Thermos Stainless King Travel Mug 16oz (SK1005)" in html
    assert "Cheapest fitting offer on Kiondo Market" in html
    assert "at most $30.00" in html
    product = catalog_rows["kiondo--KD-MUG"]
    form = re.search(r'<form method="post" action="/cart/add".*?</form>', html, re.S)
    assert form, "no add-to-cart form"
    assert f'value="{product.id}"' in form.group(0)


def test_add_to_cart_from_an_answer_puts_the_offer_in_the_cart(
    keyword_app: Flask, catalog_rows: dict[str, Any], make_user: Callable[..., User], db: Session
) -> None:
    user = make_user()
    client = keyword_app.test_client()
    log_in(client, user)
    html = _html(client.post("/assistant", data={"prompt": "two thermos travel mugs"}))
    product_id = catalog_rows["kiondo--KD-MUG"].id
    assert 'name="quantity" type="number" min="1" max="99" value="2"' in html
    response = client.post(
        "/cart/add", data={"product_id": str(product_id), "quantity": "2", "next": "/assistant"}
    )
    assert response.status_code == 303
    line = db.scalars(sa.select(CartItem).where(CartItem.user_id == user.id)).one()
    assert (line.product_id, line.quantity) == (product_id, 2)


def test_adding_a_suggestion_comes_back_to_the_same_answer(
    keyword_app: Flask, catalog_rows: dict[str, Any], make_user: Callable[..., User], db: Session
) -> None:
    # The shopper adds one suggestion and wants a second one of the same answer: the cart comes
    # back to it (it came back to an empty assistant, the answer gone).
    user = make_user()
    client = keyword_app.test_client()
    log_in(client, user)
    html = _html(client.post("/assistant", data={"prompt": "thermos travel mug under 30 dollars"}))
    form = re.search(r'<form method="post" action="/cart/add".*?</form>', html, re.S)
    assert form, "no add-to-cart form"
    back = unescape(re.search(r'name="next" type="hidden" value="([^"]*)"', form.group(0))[1])
    assert back == "/assistant?q=thermos+travel+mug+under+30+dollars"
    product_id = catalog_rows["kiondo--KD-MUG"].id

    added = client.post("/cart/add", data={"product_id": str(product_id), "next": back})
    again = client.get(added.headers["Location"])

    assert added.status_code == 303 and added.headers["Location"] == back
    page = _html(again)
    assert again.status_code == 200
    assert "Answer to “<bdi>thermos travel mug under 30 dollars</bdi>”" in page
    assert "Thermos Stainless King Travel Mug 16oz (SK1005)" in page
    # Shown again, not asked again: the history holds the request once.
    count = db.scalar(sa.select(sa.func.count()).where(AIPrompt.user_id == user.id))
    assert count == 1


def test_a_request_in_the_address_is_bounded_like_the_form(keyword_app: Flask) -> None:
    client = keyword_app.test_client()
    too_long = client.get("/assistant", query_string={"q": "mug " * 200})
    blank = client.get("/assistant", query_string={"q": "   "})

    assert too_long.status_code == 422 and "Please keep your request under" in _html(too_long)
    assert blank.status_code == 200 and "Answer to" not in _html(blank)


def test_an_empty_request_is_refused_with_a_message(keyword_app: Flask) -> None:
    response = keyword_app.test_client().post("/assistant", data={"prompt": "   "})
    assert response.status_code == 422
    assert "Tell the assistant what you are looking for." in _html(response)
    # The refused box is marked invalid and takes focus (it was left unmarked, with focus at the
    # top of the page): a keyboard user types the request again at once.
    box = re.search(r"<textarea[^>]*>", _html(response))
    assert box and 'aria-invalid="true"' in box[0] and "autofocus" in box[0]


def test_a_too_long_request_is_refused_with_a_message(keyword_app: Flask) -> None:
    response = keyword_app.test_client().post("/assistant", data={"prompt": "mug " * 200})
    assert response.status_code == 422
    assert "under 500 characters" in _html(response)


def test_no_results_say_which_constraint_to_relax(keyword_app: Flask) -> None:
    response = keyword_app.test_client().post(
        "/assistant", data={"prompt": "Sony headphones under 5 dollars"}
    )
    html = _html(response)
    assert response.status_code == 200
    assert "Nothing in the catalog fits all of" in html
    assert "raise your budget" in html
    assert "the cheapest match costs $349.99" in html


@pytest.mark.parametrize("prompt", ["!!!???...", "テレビ", "телевизор", "耳机 ?"])
def test_a_request_with_nothing_to_read_gets_no_products_but_says_so(
    keyword_app: Flask, prompt: str
) -> None:
    """Punctuation or words the parser cannot read are not a request for anything: no random
    products presented as "I found 10 products"."""
    response = keyword_app.test_client().post("/assistant", data={"prompt": prompt})
    html = _html(response)
    assert response.status_code == 200
    assert "assistant-suggestion" not in html
    assert "I found" not in html
    assert "could not find a product, brand or price in your request" in html


@pytest.mark.parametrize("prompt", ["garmin watch", "smartwatch"])
def test_when_only_out_of_stock_products_fit_the_answer_says_so(
    keyword_app: Flask, prompt: str
) -> None:
    """The only smartwatch (Garmin) is out of stock: the answer points there, not to "another
    category" or "fewer constraints"."""
    html = unescape(_html(keyword_app.test_client().post("/assistant", data={"prompt": prompt})))
    assert "Nothing in the catalog fits all of" in html
    assert "Without “in stock” there is 1 match. Try to add “even if out of stock”" in html
    assert "Try to look in another category" not in html


@pytest.mark.parametrize(
    ("prompt", "said"),
    [
        (
            "headphones under 3000 kes",
            "Without “at most KES3,000.00” there is 1 match (the cheapest match costs "
            "$349.99, about KES45,323.70). Try to raise your budget.",
        ),
        (
            # Listed at KES 21,000.00: was "costs KES20,999.72", its USD price converted back.
            "a coffee machine for under 20,000 shillings",
            "Without “at most KES20,000.00” there is 1 match (the cheapest match costs "
            "KES21,000.00). Try to raise your budget.",
        ),
        (
            "headphones not too expensive except Sony",
            "Without “not Sony” there is 1 match. Try to allow the brand you excluded.",
        ),
    ],
)
def test_nothing_fits_advice_keeps_the_product_asked_for(
    keyword_app: Flask, prompt: str, said: str
) -> None:
    """Dropping the category suggests other products altogether; a budget or a brand the shopper
    can change is the advice, even when more products match without the category."""
    html = unescape(_html(keyword_app.test_client().post("/assistant", data={"prompt": prompt})))
    assert said in html
    assert "Try to look in another category" not in html


def test_an_absurd_amount_is_answered_not_a_server_error(keyword_app: Flask) -> None:
    prompt = "tv under 1" + "0" * 60 + " dollars"
    response = keyword_app.test_client().post("/assistant", data={"prompt": prompt})
    assert response.status_code == 200
    assert "Samsung Crystal UHD 55-inch Smart TV" in _html(response)


def test_a_missing_model_is_announced_and_keyword_search_answers(keyword_app: Flask) -> None:
    page = _html(keyword_app.test_client().get("/assistant"))
    assert "Semantic search is not available" in page and "not installed" in page

    response = keyword_app.test_client().post("/assistant", data={"prompt": "thermos mug"})
    html = _html(response)
    assert response.status_code == 200
    assert "not installed" in html
    # Said once with the answer, not three times (page note, answer note, "Answered with").
    assert "Keyword search only:" in html
    assert html.lower().count("keyword search") == 1, html
    # The answer takes focus when it arrives, not the top of the page.
    assert re.search(r'<h2 id="answer-heading" tabindex="-1" autofocus>', html)


def test_markup_in_prompts_and_product_titles_is_escaped(keyword_app: Flask) -> None:
    prompt = '<script>alert("x")</script> jbl speaker'
    html = _html(keyword_app.test_client().post("/assistant", data={"prompt": prompt}))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; jbl speaker" in html
    assert SCRIPT_TITLE not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; JBL Flip 6" in html


def test_search_down_answers_503_with_a_message(
    make_app: Callable[..., Flask], catalog_rows: dict[str, Any]
) -> None:
    app = make_app("assistant_missing_index", ASSISTANT_MODEL_PACKAGE=MISSING_MODEL)
    response = app.test_client().post("/assistant", data={"prompt": "thermos mug"})
    assert response.status_code == 503
    assert "Please try again in a minute" in _html(response)


def test_requests_are_rate_limited_per_ip(
    make_app: Callable[..., Flask], keyword_index: str, catalog_rows: dict[str, Any]
) -> None:
    app = make_app(keyword_index, ASSISTANT_MODEL_PACKAGE=MISSING_MODEL, ASSISTANT_LIMIT_PER_IP=2)
    client = app.test_client()
    for _ in range(2):
        assert client.post("/assistant", data={"prompt": "thermos mug"}).status_code == 200
    limited = client.post("/assistant", data={"prompt": "thermos mug"})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "try again in" in _html(limited)


def test_requests_are_rate_limited_per_shopper_across_addresses(
    make_app: Callable[..., Flask],
    keyword_index: str,
    catalog_rows: dict[str, Any],
    make_user: Callable[..., User],
) -> None:
    app = make_app(keyword_index, ASSISTANT_MODEL_PACKAGE=MISSING_MODEL, ASSISTANT_LIMIT_PER_USER=1)
    client = app.test_client()
    log_in(client, make_user())
    first = client.post(
        "/assistant", data={"prompt": "mug"}, environ_base={"REMOTE_ADDR": "10.0.0.1"}
    )
    again = client.post(
        "/assistant", data={"prompt": "mug"}, environ_base={"REMOTE_ADDR": "10.0.0.2"}
    )
    assert (first.status_code, again.status_code) == (200, 429)


def test_posting_without_a_csrf_token_is_refused(
    make_app: Callable[..., Flask], keyword_index: str, catalog_rows: dict[str, Any]
) -> None:
    app = make_app(keyword_index, ASSISTANT_MODEL_PACKAGE=MISSING_MODEL, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    assert client.post("/assistant", data={"prompt": "thermos mug"}).status_code == 400
    page = _html(client.get("/assistant"))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    answered = client.post(
        "/assistant", data={"prompt": "thermos mug", "csrf_token": token.group(1)}
    )
    assert answered.status_code == 200


def test_signed_in_requests_are_stored_with_intent_ids_and_path(
    keyword_app: Flask, make_user: Callable[..., User], db: Session
) -> None:
    user = make_user()
    client = keyword_app.test_client()
    log_in(client, user)
    client.post("/assistant", data={"prompt": "thermos mug under 30 dollars"})
    row = db.scalars(sa.select(AIPrompt).where(AIPrompt.user_id == user.id)).one()
    assert row.prompt_text == "thermos mug under 30 dollars"
    assert row.response_json["path"] == "keyword"
    assert row.response_json["intent"]["budget"]["max_minor"] == 3000
    assert "kiondo--KD-MUG" in row.response_json["product_ids"]
    assert row.created_at.tzinfo is not None


def test_guests_get_answers_without_storing_anything(keyword_app: Flask, db: Session) -> None:
    keyword_app.test_client().post("/assistant", data={"prompt": "thermos mug"})
    assert db.scalar(sa.select(sa.func.count()).select_from(AIPrompt)) == 0


def test_history_lists_only_my_requests_and_rerun_asks_again(
    keyword_app: Flask, make_user: Callable[..., User], db: Session
) -> None:
    me, other = make_user(), make_user()
    mine, theirs = keyword_app.test_client(), keyword_app.test_client()
    log_in(mine, me)
    log_in(theirs, other)
    mine.post("/assistant", data={"prompt": "thermos mug"})
    theirs.post("/assistant", data={"prompt": "sony headphones"})

    page = _html(mine.get("/assistant"))
    assert "“<bdi>thermos mug</bdi>”" in page
    assert "sony headphones" not in page

    my_prompt = db.scalars(sa.select(AIPrompt).where(AIPrompt.user_id == me.id)).one()
    their_prompt = db.scalars(sa.select(AIPrompt).where(AIPrompt.user_id == other.id)).one()
    rerun = mine.post(f"/assistant/prompts/{my_prompt.id}/rerun")
    assert rerun.status_code == 200
    assert "Answer to “<bdi>thermos mug</bdi>”" in _html(rerun)
    count = db.scalar(sa.select(sa.func.count()).where(AIPrompt.user_id == me.id))
    assert count == 2
    assert mine.post(f"/assistant/prompts/{their_prompt.id}/rerun").status_code == 404


def test_rerun_needs_a_signed_in_shopper(keyword_app: Flask) -> None:
    response = keyword_app.test_client().post("/assistant/prompts/1/rerun")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_hybrid_answers_on_the_page_when_the_model_and_vectors_exist(
    make_app: Callable[..., Flask], vector_index: str, catalog_rows: dict[str, Any]
) -> None:
    app = make_app(vector_index)
    html = _html(app.test_client().post("/assistant", data={"prompt": "keep my tea warm"}))
    assert "Answered with hybrid (meaning + keyword) search." in html
    assert "Semantic search is not available" not in html


def test_misspelt_request_keeps_the_product_and_the_price_wish_and_shows_one_price(
    keyword_app: Flask,
) -> None:
    html = _html(
        keyword_app.test_client().post(
            "/assistant", data={"prompt": "wireles hedphones for the gym, not to expensive"}
        )
    )
    card = re.search(r'<li class="card assistant-suggestion">.*?</li>', html, re.S)
    assert card, "no suggestion"
    assert "Sony WH-1000XM5" in card.group(0)
    # The price once per card (it used to show the display price, the listed one and ≈ one).
    assert card.group(0).count("$349.99") == 1
    assert "Read “wireles” as “wireless”, “hedphones” as “headphones”." in unescape(html)
    assert "not too expensive" in html
    assert '<span class="badge">Headphones</span>' in html


def test_a_vague_request_offers_refinements_that_narrow_it(keyword_app: Flask) -> None:
    client = keyword_app.test_client()
    html = unescape(_html(client.post("/assistant", data={"prompt": "tv"})))
    section = re.search(r'<div class="assistant-refinements".*?</div>', html, re.S)
    assert section, "no refinements for a vague request"
    offered = dict(
        re.findall(r'name="prompt" value="([^"]+)">\s*<button[^>]*>([^<]+)<', section.group(0))
    )
    assert set(offered.values()) >= {"Rated 4★ or more", "Cheaper first"}
    assert any(label.startswith("Under $") for label in offered.values())

    narrowed = unescape(_html(client.post("/assistant", data={"prompt": "tv with good reviews"})))
    assert "tv with good reviews" in offered
    assert "rated 4.0★ or more" in narrowed
    assert 'class="assistant-refinements"' not in narrowed  # no longer vague


def test_a_precise_request_gets_no_refinements(keyword_app: Flask) -> None:
    html = _html(
        keyword_app.test_client().post(
            "/assistant", data={"prompt": "thermos travel mug under 30 dollars"}
        )
    )
    assert "Thermos" in html and 'class="assistant-refinements"' not in html


def test_asking_to_compare_shows_each_marketplace_price_of_the_product(keyword_app: Flask) -> None:
    html = _html(
        keyword_app.test_client().post(
            "/assistant", data={"prompt": "a 65 inch tv not Hisense, compare prices"}
        )
    )
    table = re.search(r'<table class="compared-offers.*?</table>', html, re.S)
    assert table, "no comparison on the page"
    assert "Kiondo Market" in table.group(0)
    assert "Fake Store Berlin" in table.group(0)
    assert "KES" in table.group(0) and "€" in table.group(0)
    assert "not “compare prices”" not in html


def test_a_suggestion_links_to_its_product_page_once(keyword_app: Flask) -> None:
    """Like the listing's cards (shop17): a suggestion sold more than once linked its product
    page twice, its title and "N offers on M marketplaces", two tab stops and a link named with
    no product in it. The title is the link; the offers line is text beside the marketplace."""
    html = _html(
        keyword_app.test_client().post(
            "/assistant", data={"prompt": "a 65 inch tv not Hisense, compare prices"}
        )
    )
    suggestions = re.findall(r"<article aria-labelledby=\"suggestion-.*?</article>", html, re.S)
    assert suggestions
    grouped = [s for s in suggestions if re.search(r"\d+ offers on \d+ marketplaces", s)]
    assert grouped, "no suggestion sold more than once"
    for suggestion in suggestions:
        product_links = re.findall(r'href="(/product/[^"]+)"', suggestion)
        assert len(product_links) == 1, product_links
        assert re.search(r'<h3 id="suggestion-\d+"><a href="/product/', suggestion)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"prompt": 123}, 422, "“prompt” must be text"),
        ({"prompt": {"x": 1}}, 422, "“prompt” must be text"),
        ({"prompt": ["a tv", "a mug"]}, 422, "“prompt” must be text"),
        ({"prompt": None}, 422, "Tell the assistant what you are looking for."),
        ({}, 422, "Tell the assistant what you are looking for."),
        ([1, 2], 400, "a JSON object"),
        ("a tv", 400, "a JSON object"),
        (None, 400, "a JSON object"),
    ],
)
def test_a_json_body_of_the_wrong_shape_is_refused_in_json_not_a_server_error(
    keyword_app: Flask, body: Any, status: int, says: str
) -> None:
    """{"prompt": 123}, a list or a string body were 500s (the form read them as a mapping of
    strings); a list prompt was answered for its first item."""
    response = keyword_app.test_client().post(
        "/assistant", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == status, _html(response)[:300]
    assert response.is_json, response.content_type
    assert says in response.get_json()["error"]["message"]


def test_a_json_request_is_answered_in_json_with_real_offers_and_json_refusals(
    make_app: Callable[..., Flask], keyword_index: str, catalog_rows: dict[str, Any]
) -> None:
    """A script posting {"prompt": …} (which the form accepts) got the HTML page back, and its
    rate-limit refusal too."""
    app = make_app(keyword_index, ASSISTANT_MODEL_PACKAGE=MISSING_MODEL, ASSISTANT_LIMIT_PER_IP=2)
    client = app.test_client()
    response = client.post("/assistant", json={"prompt": "65-inch TV, not from ShopWave"})
    assert response.status_code == 200 and response.is_json, response.content_type
    answer = response.get_json()["answer"]
    assert answer["found"] is True and "I found" in answer["message"]
    first = answer["suggestions"][0]
    assert first["title"] == "LG UHD UR80 Smart LED TV 65-inch (OLED65UR80)"
    assert (first["marketplace"], first["price_minor"], first["currency"]) == (
        "kiondo", 7_990_000, "KES"
    )  # fmt: skip
    assert first["marketplace_name"] == "Kiondo Market"
    assert first["product_page"].endswith("/g-lg-65") or "g-lg-65" in first["product_page"]
    asked = client.get(
        "/assistant", query_string={"q": "thermos mug"}, headers={"Accept": "application/json"}
    )
    assert asked.status_code == 200 and asked.get_json()["answer"]["suggestions"]
    nothing = client.get("/assistant", headers={"Accept": "application/json"})
    assert (
        nothing.status_code == 422
        and "what you are looking for" in nothing.get_json()["error"]["message"]
    )
    limited = client.post("/assistant", json={"prompt": "thermos mug"})
    assert limited.status_code == 429 and limited.is_json
    assert int(limited.headers["Retry-After"]) > 0
    assert "try again in" in limited.get_json()["error"]["message"]
