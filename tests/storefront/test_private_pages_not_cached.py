"""What a signed-in shopper is shown is never stored by the browser or a cache on the way.

Security review, fourth pass: the pages of a signed-in shopper (the profile with the shipping
address, phone and wallet; orders; notifications; the admin pages) were sent without any
Cache-Control, so a browser could keep them: after signing out on a shared computer, the next
person pressed Back (or opened the history) and read the previous shopper's page from the cache.
They now say `Cache-Control: no-store`; pages a guest sees keep whatever caching they had.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from commerce.models import User
from tests.storefront.conftest import log_in


@pytest.mark.parametrize("path", ["/profile", "/orders", "/notifications", "/about"])
def test_a_signed_in_shoppers_pages_are_not_stored(
    client: FlaskClient, signed_in_user: User, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_an_admin_page_is_not_stored(client: FlaskClient, make_user: Callable[..., User]) -> None:
    log_in(client, make_user(is_admin=True))
    response = client.get("/admin/wallets")
    assert response.status_code == 200
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_a_redirect_after_a_signed_in_post_is_not_stored(
    client: FlaskClient, signed_in_user: User
) -> None:
    response = client.post("/notifications/read")
    assert response.status_code in (302, 303)
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_a_guests_page_is_left_to_the_usual_caching(client: FlaskClient) -> None:
    response = client.get("/about")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_static_files_keep_their_own_cache_control(
    client: FlaskClient, signed_in_user: User
) -> None:
    response = client.get("/static/css/site.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
