"""Follow-ups through the real site (Flask's test client on the real Meilisearch, Redis and
storefront DB) and its JSON API: "cheaper", "only from ShopWave", "show me more" refine the
answer before; a new product starts afresh; a changed or stale conversation is refused."""

from __future__ import annotations

import re
import time
from html import unescape
from typing import Any

import meilisearch
import pytest
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from assistant.follow_up import read_conversation
from assistant.service import answer_prompt
from storefront.assistant.conversation import (
    CONVERSATION_SALT,
    MAX_AGE_SECONDS,
    conversation_token,
    read_conversation_token,
)
from tests.assistant.catalog import FX


def _html(response: Any) -> str:
    return unescape(response.get_data(as_text=True))


def _context(html: str) -> str:
    found = re.search(r'name="context" type="hidden" value="([^"]*)"', html)
    assert found, "the page carries no conversation"
    return found.group(1)


def _titles(html: str) -> list[str]:
    return re.findall(r'<h3 id="suggestion-\d+"><a href="[^"]*">([^<]*)</a>', html)


def test_cheaper_then_only_from_shopwave_refine_the_answer_on_the_page(keyword_app: Flask) -> None:
    client = keyword_app.test_client()
    first = _html(client.post("/assistant", data={"prompt": "the most expensive tv"}))
    assert _titles(first)[0] == "Hisense U7K 65-inch QLED 4K Smart TV"  # $649.99

    cheaper = _html(
        client.post("/assistant", data={"prompt": "cheaper", "context": _context(first)})
    )
    assert "Answer to “<bdi>the most expensive tv, cheaper</bdi>”" in cheaper
    assert (
        "Following on from “the most expensive tv”: cheaper than the first suggestion "
        "($649.99), cheapest first." in cheaper
    )
    titles = _titles(cheaper)
    assert titles[0] == "Samsung Crystal UHD 55-inch Smart TV"  # $429.99
    assert "Hisense U7K 65-inch QLED 4K Smart TV" not in titles
    assert "at most $649.98" in cheaper

    shopwave = _html(
        client.post(
            "/assistant", data={"prompt": "only from ShopWave", "context": _context(cheaper)}
        )
    )
    assert _titles(shopwave) == ["Samsung Crystal UHD 55-inch Smart TV"]
    assert "sold on ShopWave" in shopwave and "at most $649.98" in shopwave
    # Each answer carries its own conversation, not the one it followed.
    assert _context(shopwave) != _context(cheaper)


def test_a_request_naming_a_product_starts_afresh(keyword_app: Flask) -> None:
    client = keyword_app.test_client()
    first = _html(client.post("/assistant", data={"prompt": "a tv under 700 dollars"}))
    mug = _html(
        client.post(
            "/assistant", data={"prompt": "a thermos travel mug", "context": _context(first)}
        )
    )
    assert "Following on from" not in mug
    assert "Answer to “<bdi>a thermos travel mug</bdi>”" in mug
    assert "at most $700.00" not in mug
    assert all("Thermos" in title for title in _titles(mug))


def test_show_me_more_when_everything_was_shown_says_so(keyword_app: Flask) -> None:
    client = keyword_app.test_client()
    first = _html(client.post("/assistant", data={"prompt": "a tv"}))
    assert len(_titles(first)) == 3
    more = _html(
        client.post("/assistant", data={"prompt": "show me more", "context": _context(first)})
    )
    assert _titles(more) == []
    assert "No other products fit “a tv”: the 3 shown before were all of them." in more
    assert "Nothing in the catalog fits" not in more


def test_show_me_more_pages_through_products_not_shown_before(
    meili: meilisearch.Client, keyword_index: str
) -> None:
    first = answer_prompt("a tv", client=meili, index_uid=keyword_index, fx=FX, limit=1)
    assert first.conversation is not None and len(first.suggestions) == 1
    seen = [first.suggestions[0].group_id]
    conversation = first.conversation
    for _page in range(2):
        more = answer_prompt(
            "show me more", client=meili, index_uid=keyword_index, fx=FX, limit=1,
            conversation=read_conversation(conversation.to_json()),
        )  # fmt: skip
        assert more.prompt == "a tv"
        assert [s.group_id for s in more.suggestions] != []
        assert more.suggestions[0].group_id not in seen
        seen.append(more.suggestions[0].group_id)
        assert more.conversation is not None
        conversation = more.conversation
    assert len(set(seen)) == 3 and conversation.shown == tuple(seen)


def test_the_json_api_returns_the_conversation_and_takes_it_back(keyword_app: Flask) -> None:
    client = keyword_app.test_client()
    first = client.post("/assistant", json={"prompt": "a tv under 700 dollars"}).get_json()
    context = first["answer"]["context"]
    assert isinstance(context, str) and context

    refined = client.post("/assistant", json={"prompt": "only from ShopWave", "context": context})
    answer = refined.get_json()["answer"]
    assert refined.status_code == 200
    assert answer["prompt"] == "a tv under 700 dollars, only from ShopWave"
    assert "sold on ShopWave" in answer["constraints"]
    assert "at most $700.00" in answer["constraints"]
    assert {s["marketplace"] for s in answer["suggestions"]} == {"shopwave"}
    assert answer["notes"][0] == "Following on from “a tv under 700 dollars”."

    asked = client.get("/assistant", query_string={"q": "cheaper", "context": context})
    assert asked.status_code == 200
    assert asked.headers["Content-Type"].startswith("text/html")
    assert "Following on from “a tv under 700 dollars”" in _html(asked)


@pytest.mark.parametrize("as_json", [False, True])
def test_a_changed_conversation_is_refused_with_a_clear_error(
    keyword_app: Flask, as_json: bool
) -> None:
    client = keyword_app.test_client()
    first = client.post("/assistant", json={"prompt": "a tv under 700 dollars"}).get_json()
    context = first["answer"]["context"]
    payload, signature = context.rsplit(".", 1)
    changed = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    body = {"prompt": "cheaper", "context": changed}

    response = client.post("/assistant", **({"json": body} if as_json else {"data": body}))

    assert response.status_code == 400
    said = response.get_json()["error"]["message"] if as_json else _html(response)
    assert "could not be read: it was changed. Please ask your request in full." in said
    if not as_json:
        assert 'name="context" type="hidden" value=""' in said  # the next request starts afresh


def test_a_stale_or_oversized_or_mistyped_conversation_is_refused(keyword_app: Flask) -> None:
    client = keyword_app.test_client()
    with keyword_app.test_request_context():
        first = _fresh_token(keyword_app)
        old = _signed_at(keyword_app, first, time.time() - MAX_AGE_SECONDS - 60)
    stale = client.post("/assistant", json={"prompt": "cheaper", "context": old})
    huge = client.post("/assistant", json={"prompt": "cheaper", "context": "x" * 7000})
    mistyped = client.post("/assistant", json={"prompt": "cheaper", "context": {"v": 1}})

    assert stale.status_code == 400
    assert "more than 2 hours old" in stale.get_json()["error"]["message"]
    assert huge.status_code == 400 and "it was changed" in huge.get_json()["error"]["message"]
    assert mistyped.status_code == 422
    assert "“context” must be the text" in mistyped.get_json()["error"]["message"]


def _fresh_token(app: Flask) -> str:
    """A fresh conversation token, signed as the site signs it."""
    client = app.test_client()
    context = client.post("/assistant", json={"prompt": "a tv"}).get_json()["answer"]["context"]
    conversation = read_conversation_token(context)
    return conversation_token(conversation)


def _signed_at(app: Flask, token: str, when: float) -> str:
    """The same conversation signed at another time (itsdangerous's own timestamp hook)."""

    class SignedThen(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(when)

    serializer = URLSafeTimedSerializer(
        app.config["SECRET_KEY"], salt=CONVERSATION_SALT, signer=SignedThen
    )
    data = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=CONVERSATION_SALT).loads(token)
    return str(serializer.dumps(data))
