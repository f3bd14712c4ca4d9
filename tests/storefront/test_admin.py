"""The admin area: admins only, marketplaces listed/added/edited/disabled, keys never shown."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.marketplace_access import marketplace_api_key
from commerce.models import Marketplace, User, utc_now
from commerce.secrets import decrypt_secret, encrypt_secret

SECRET_KEY = "sk_live_TOPSECRET_9f8e7d6c5b4a"
NEW_MARKETPLACE = {
    "slug": "lagos-deals",
    "name": "Lagos Deals",
    # A format whose adapter needs no options from marketplaces.toml (declarative ones do).
    "kind": "google_feed",
    "api_base_url": "https://api.lagos-deals.example/v1",
    "api_key": SECRET_KEY,
    # A variable no entry of marketplaces.toml names is refused (test_marketplace_key_binding).
    "api_key_env": "",
    "currency": "ngn",
    "country": "ng",
    "relation_identifier": "gtin",
    "rating": "4.5",
    "logo": "/static/logos/lagos.svg",
    "description": "Electronics from Lagos.",
    "active": "y",
}


def _html(response: Any) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def admin_client(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> FlaskClient:
    login(client, make_user(is_admin=True))
    return client


def test_non_admins_get_403_everywhere_in_the_admin_area(
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    marketplace = make_marketplace()
    shopper = make_user()
    login(client, shopper)
    for method, path in [
        ("get", "/admin/"),
        ("get", "/admin/attention"),
        ("get", "/admin/wallets?q=a"),
        ("get", f"/admin/users/{shopper.id}/wallet"),
        ("get", "/admin/marketplaces"),
        ("get", "/admin/marketplaces/new"),
        ("post", "/admin/marketplaces/new"),
        ("get", f"/admin/marketplaces/{marketplace.id}/edit"),
        ("post", f"/admin/marketplaces/{marketplace.id}/edit"),
        ("post", f"/admin/marketplaces/{marketplace.id}/disable"),
        ("post", f"/admin/marketplaces/{marketplace.id}/enable"),
    ]:
        assert getattr(client, method)(path).status_code == 403, path


def test_admin_menu_link_only_for_admins(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    login(client, make_user())
    assert 'href="/admin/marketplaces"' not in _html(client.get("/about"))
    client.post("/logout")
    login(client, make_user(is_admin=True))
    assert 'href="/admin/marketplaces"' in _html(client.get("/about"))


def test_adding_a_marketplace_encrypts_the_key_and_shows_it_masked(
    admin_client: FlaskClient, db_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = admin_client.post("/admin/marketplaces/new", data=NEW_MARKETPLACE)
        assert response.status_code == 302
        listing = _html(admin_client.get("/admin/marketplaces"))

    marketplace = db_session.scalar(sa.select(Marketplace).where(Marketplace.slug == "lagos-deals"))
    assert marketplace is not None
    assert (marketplace.currency, marketplace.country, marketplace.active) == ("NGN", "NG", True)
    assert marketplace.capabilities == ["catalog"]
    assert SECRET_KEY not in (marketplace.api_key_encrypted or "")
    assert decrypt_secret(marketplace.api_key_encrypted or "") == SECRET_KEY
    assert "••••4a" not in listing and "••••5b4a" in listing
    edit_page = _html(admin_client.get(f"/admin/marketplaces/{marketplace.id}/edit"))
    for html in (listing, edit_page):
        assert SECRET_KEY not in html and "TOPSECRET" not in html
    assert "TOPSECRET" not in caplog.text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slug": "Bad Slug"}, "lower-case letters"),
        ({"name": ""}, "Enter a name."),
        ({"kind": "ebay"}, "Not a valid choice."),
        ({"api_base_url": "ftp://x"}, "Enter an http:// or https:// URL."),
        ({"currency": "ZZZ"}, "three-letter ISO currency code"),
        ({"country": "N1"}, "two-letter country code"),
        # Two letters that name no ISO 3166-1 country (user-assigned, withdrawn, EU).
        ({"country": "XX"}, "two-letter country code"),
        ({"country": "eu"}, "two-letter country code"),
        ({"country": "ZZ"}, "two-letter country code"),
        ({"rating": "7"}, "between 0 and 5"),
        ({"rating": "abc"}, "between 0 and 5"),
        # Decimal reads "NaN"; it compares with nothing, so it must be refused, not crash.
        ({"rating": "NaN"}, "between 0 and 5"),
        ({"logo": "javascript:alert(1)"}, "/static/"),
        ({"api_key_env": "lower case"}, "environment variable name"),
        # Only marketplace key variables (issue 12): no admin can send the server's secrets.
        ({"api_key_env": "AWS_SECRET_ACCESS_KEY"}, "starting with ONECART_MARKETPLACE_KEY_"),
        ({"api_key_env": "SECRET_KEY"}, "starting with ONECART_MARKETPLACE_KEY_"),
        # Only marketplaces.toml gives a key variable a host (security review, fifth pass).
        ({"api_key_env": "ONECART_MARKETPLACE_KEY_LAGOS_DEALS"}, "No entry of marketplaces.toml"),
    ],
)
def test_marketplace_form_errors(
    admin_client: FlaskClient, db_session: Session, changes: dict[str, str], message: str
) -> None:
    response = admin_client.post("/admin/marketplaces/new", data={**NEW_MARKETPLACE, **changes})
    assert response.status_code == 422
    html = _html(response)
    assert message in html
    assert SECRET_KEY not in html
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Marketplace)) == 0


def test_duplicate_slug_is_refused(
    admin_client: FlaskClient, make_marketplace: Callable[..., Marketplace]
) -> None:
    make_marketplace(slug="lagos-deals")
    response = admin_client.post("/admin/marketplaces/new", data=NEW_MARKETPLACE)
    assert "already exists" in _html(response)


def test_editing_keeps_the_key_when_blank_and_can_replace_or_clear_it(
    admin_client: FlaskClient, db_session: Session, make_marketplace: Callable[..., Marketplace]
) -> None:
    marketplace = make_marketplace(api_key_encrypted=encrypt_secret("original-key-0001"))
    # Same host: a stored key is only kept while the base URL stays on it (issue 12).
    form = {
        **NEW_MARKETPLACE,
        "api_key": "",
        "name": "Renamed",
        "api_base_url": marketplace.api_base_url + "/v2",
    }
    form.pop("slug")
    url = f"/admin/marketplaces/{marketplace.id}/edit"

    assert admin_client.post(url, data=form).status_code == 302
    db_session.refresh(marketplace)
    assert marketplace.name == "Renamed"
    assert decrypt_secret(marketplace.api_key_encrypted or "") == "original-key-0001"
    assert 'value="original-key-0001"' not in _html(admin_client.get(url))

    admin_client.post(url, data={**form, "api_key": "replacement-key-0002"})
    db_session.refresh(marketplace)
    assert decrypt_secret(marketplace.api_key_encrypted or "") == "replacement-key-0002"

    admin_client.post(url, data={**form, "clear_api_key": "y"})
    db_session.refresh(marketplace)
    assert marketplace.api_key_encrypted is None


def test_disable_and_enable(
    admin_client: FlaskClient, db_session: Session, make_marketplace: Callable[..., Marketplace]
) -> None:
    marketplace = make_marketplace()
    assert admin_client.post(f"/admin/marketplaces/{marketplace.id}/disable").status_code == 302
    db_session.refresh(marketplace)
    assert marketplace.active is False
    assert "disabled" in _html(admin_client.get("/admin/marketplaces"))
    admin_client.post(f"/admin/marketplaces/{marketplace.id}/enable")
    db_session.refresh(marketplace)
    assert marketplace.active is True


def test_a_marketplace_failing_tracking_for_over_a_day_is_marked_on_the_marketplace_list(
    admin_client: FlaskClient, make_marketplace: Callable[..., Marketplace]
) -> None:
    now = utc_now()
    down = make_marketplace(
        tracking_failures=30,
        tracking_failing_since=now - timedelta(hours=25),
        tracking_last_error="Transient: 503 Service Unavailable",
        tracking_retry_at=now + timedelta(minutes=40),
    )
    hiccup = make_marketplace(
        tracking_failures=1,
        tracking_failing_since=now - timedelta(minutes=1),
        tracking_last_error="Transient: timed out",
        tracking_retry_at=now,
    )
    answering = make_marketplace()
    html = _html(admin_client.get("/admin/marketplaces"))
    marked = html.split(f'data-testid="tracking-{down.slug}"', 1)[1].split("</td>", 1)[0]
    assert "tracking failing" in marked
    assert "30 failed polls in a row since" in marked
    assert "503 Service Unavailable" in marked
    noted = html.split(f'data-testid="tracking-{hiccup.slug}"', 1)[1].split("</td>", 1)[0]
    assert "1 failed poll in a row" in noted and "tracking failing" not in noted
    assert f'data-testid="tracking-{answering.slug}"' not in html


def test_unknown_marketplace_is_404(admin_client: FlaskClient) -> None:
    assert admin_client.get("/admin/marketplaces/999999/edit").status_code == 404
    assert admin_client.post("/admin/marketplaces/999999/disable").status_code == 404


# --- Issue 12: no admin can aim the server's secrets or requests anywhere -----------------------


@pytest.mark.parametrize("app_config_overrides", [{"SANDBOX_MODE": False}])
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:6379/",
        "http://127.0.0.1:8800/shop",
        "http://[::1]/api",
        "http://[::ffff:127.0.0.1]/api",
        "http://10.1.2.3/api",
        "http://192.168.0.10/api",
        "http://0.0.0.0/api",
        "http://2130706433/api",
        "http://metadata.localhost/api",
    ],
)
def test_non_public_base_urls_are_refused_outside_sandbox_mode(
    admin_client: FlaskClient, db_session: Session, url: str
) -> None:
    response = admin_client.post(
        "/admin/marketplaces/new", data={**NEW_MARKETPLACE, "api_base_url": url}
    )
    assert response.status_code == 422
    assert "Use a public address" in _html(response) or "could not be resolved" in _html(response)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Marketplace)) == 0


@pytest.mark.parametrize("app_config_overrides", [{"SANDBOX_MODE": False}])
def test_a_public_base_url_is_accepted_outside_sandbox_mode(
    admin_client: FlaskClient, db_session: Session
) -> None:
    response = admin_client.post(
        "/admin/marketplaces/new",
        data={**NEW_MARKETPLACE, "api_base_url": "https://93.184.215.14/v1"},
    )
    assert response.status_code == 302


def test_sandbox_mode_accepts_local_marketplaces(admin_client: FlaskClient) -> None:
    response = admin_client.post(
        "/admin/marketplaces/new",
        data={**NEW_MARKETPLACE, "api_base_url": "http://127.0.0.1:8800/shop"},
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/api",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/",
    ],
)
def test_sandbox_mode_still_refuses_the_cloud_s_metadata_address(
    admin_client: FlaskClient, db_session: Session, url: str
) -> None:
    """Security review, sixth pass: sandbox mode (development, or a production demo) accepted
    any address, so an admin on a cloud VM could aim a marketplace at the instance's metadata
    service. The sandbox lives on loopback or the private network, never on a link-local
    address."""
    response = admin_client.post(
        "/admin/marketplaces/new", data={**NEW_MARKETPLACE, "api_base_url": url}
    )
    assert response.status_code == 422
    assert "metadata" in _html(response)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Marketplace)) == 0


def test_a_stored_key_is_never_sent_to_a_changed_host_until_entered_again(
    admin_client: FlaskClient, db_session: Session, make_marketplace: Callable[..., Marketplace]
) -> None:
    marketplace = make_marketplace(
        api_base_url="http://127.0.0.1:9/shop", api_key_encrypted=encrypt_secret("stored-key-01")
    )
    url = f"/admin/marketplaces/{marketplace.id}/edit"
    form = {**NEW_MARKETPLACE, "api_key": "", "api_base_url": "http://127.0.0.2:9/shop"}
    form.pop("slug")

    moved = admin_client.post(url, data=form, follow_redirects=True)
    assert "the stored API key was removed" in _html(moved)
    db_session.refresh(marketplace)
    assert marketplace.api_base_url == "http://127.0.0.2:9/shop"
    assert marketplace.api_key_encrypted is None
    assert marketplace_api_key(marketplace) is None

    # Entered again for the new host: stored and kept.
    admin_client.post(url, data={**form, "api_key": "stored-key-02"})
    db_session.refresh(marketplace)
    assert decrypt_secret(marketplace.api_key_encrypted or "") == "stored-key-02"
    # A different port is another host too.
    admin_client.post(url, data={**form, "api_base_url": "http://127.0.0.2:10/shop"})
    db_session.refresh(marketplace)
    assert marketplace.api_key_encrypted is None


def test_only_prefixed_key_variables_are_ever_read(
    make_marketplace: Callable[..., Marketplace], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Named by the repository's marketplaces.toml (the tests' file): read.
    monkeypatch.setenv("ONECART_MARKETPLACE_KEY_SHOPWAVE", "shop-key")
    monkeypatch.setenv("ONECART_MARKETPLACE_KEY_SHOPX", "unnamed-key")
    monkeypatch.setenv("SECRET_KEY", "the-flask-secret")
    assert marketplace_api_key(
        make_marketplace(api_key_env="ONECART_MARKETPLACE_KEY_SHOPWAVE")
    ) == ("shop-key")
    # Named by no entry: bound to no host, never read.
    assert (
        marketplace_api_key(make_marketplace(api_key_env="ONECART_MARKETPLACE_KEY_SHOPX")) is None
    )
    assert marketplace_api_key(make_marketplace(api_key_env="SECRET_KEY")) is None


def test_the_attention_page_lists_card_holds_naming_no_account_until_stripe_lets_them_go(
    admin_client: FlaskClient, db_session: Session
) -> None:
    from commerce.dispute_models import UnownedCardHold
    from commerce.models import utc_now

    db_session.add_all(
        [
            UnownedCardHold(
                intent_id="pi_unowned_open",
                amount_minor=4250,
                currency="EUR",
                named_user="9999",
                hold_created_at=utc_now(),
            ),
            UnownedCardHold(
                intent_id="pi_unowned_gone",
                amount_minor=100,
                currency="EUR",
                hold_created_at=utc_now(),
                gone_at=utc_now(),
            ),
        ]
    )
    db_session.commit()

    page = _html(admin_client.get("/admin/attention"))

    assert "pi_unowned_open" in page and "4,250 EUR" in page and "names user 9999" in page
    assert "pi_unowned_gone" not in page


def test_an_admin_finds_a_shopper_and_reads_their_wallet_newest_first(
    admin_client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
) -> None:
    from commerce.wallet import pay_from_wallet, take_back, top_up
    from onecart.money import Money

    shopper = make_user(username="wally", email="wally@example.com")
    top_up(db_session, shopper, Decimal("20"), reference="sandbox-topup-w1")
    pay_from_wallet(db_session, shopper, Money(500, "USD"), reference="order-w1")
    take_back(
        db_session,
        shopper,
        Money(300, "USD"),
        reference="stripe-dispute-du_w1",
        description="Card top-up disputed with the bank: credit held",
    )
    db_session.commit()

    found = _html(admin_client.get("/admin/wallets?q=WALL"))
    page = _html(admin_client.get(f"/admin/users/{shopper.id}/wallet"))

    assert f"/admin/users/{shopper.id}/wallet" in found
    assert 'data-testid="admin-wallet-balance">' in page and "1,200 USD" in page
    held, paid, topped = (
        page.index("dispute: credit held"),
        page.index("order payment"),
        page.index("top-up (sandbox"),
    )
    assert held < paid < topped  # newest first
    assert "stripe-dispute-du_w1" in page
    assert admin_client.get("/admin/users/999999/wallet").status_code == 404


def test_a_long_wallet_ledger_is_paged_like_the_other_admin_lists(
    admin_client: FlaskClient, db_session: Session, make_user: Callable[..., User]
) -> None:
    """Admin QA: the ledger showed the newest 500 lines and no way to the older ones (a shopper
    with years of orders, or a dispute's hold from long ago, could not be read)."""
    from commerce.models import WalletEntry, WalletEntryKind
    from commerce.wallet_admin import LEDGER_PAGE_SIZE

    shopper = make_user(username="longledger")
    count = LEDGER_PAGE_SIZE * 2 + 30
    start = datetime(2025, 1, 1, tzinfo=UTC)
    db_session.add_all(
        WalletEntry(
            user_id=shopper.id,
            kind=WalletEntryKind.TOPUP,
            amount_minor=100,
            currency="USD",
            reference=f"sandbox-topup-line{number:04d}",
            created_at=start + timedelta(hours=number),
        )
        for number in range(count)
    )
    db_session.commit()
    url = f"/admin/users/{shopper.id}/wallet"

    first = _html(admin_client.get(url))
    assert "sandbox-topup-line" + f"{count - 1:04d}" in first  # the newest
    assert f"sandbox-topup-line{count - LEDGER_PAGE_SIZE - 1:04d}" not in first
    assert "page 1 of 3" in first and f"{count:,} lines" in first
    assert f'href="{url}?page=2"' in first and "?page=0" not in first
    assert f"{count * 100:,} USD" in first  # the balance counts every line

    last = _html(admin_client.get(f"{url}?page=3"))
    assert "sandbox-topup-line0000" in last  # the oldest, on the last page
    assert last.count('id="wallet-entry-') == 30
    assert f'href="{url}?page=2"' in last and "?page=4" not in last
    # A page past the end is the last; a tampered one the first.
    for past in ("4", "999999999", "9" * 40):
        assert "sandbox-topup-line0000" in _html(admin_client.get(f"{url}?page={past}"))
    for junk in ("x", "-1", "²", "٣"):
        assert "page 1 of 3" in _html(admin_client.get(f"{url}?page={junk}"))


def test_anonymous_visitors_are_sent_to_login_from_a_wallet(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    shopper = make_user()
    response = client.get(f"/admin/users/{shopper.id}/wallet")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_admin_acknowledges_a_dispute_and_an_unowned_hold_off_the_attention_list(
    csrf_client: FlaskClient, make_user: Callable[..., User], db_session: Session
) -> None:
    """Acknowledging needs the form's CSRF token; it records who and when, takes the item off
    /admin/attention, and the shopper's wallet page still shows the dispute."""
    from commerce.dispute_models import PaymentDispute, UnownedCardHold
    from commerce.models import utc_now
    from tests.storefront.conftest import DEFAULT_PASSWORD, csrf_token_from

    shopper = make_user()
    dispute = PaymentDispute(
        dispute_id="du_answered_in_stripe",
        charge_id="ch_answered",
        payment_intent_id="pi_answered",
        purpose="wallet_topup",
        user_id=shopper.id,
        amount_minor=3000,
        currency="USD",
        reason="fraudulent",
        status="under_review",
        status_at=utc_now(),
        wallet_held_minor=3000,
        wallet_short_minor=0,
    )
    hold = UnownedCardHold(
        intent_id="pi_released_in_stripe",
        amount_minor=4250,
        currency="EUR",
        hold_created_at=utc_now(),
    )
    db_session.add_all([dispute, hold])
    db_session.commit()
    admin = make_user(is_admin=True)
    token = csrf_token_from(csrf_client, "/login")
    csrf_client.post(
        "/login", data={"login": admin.username, "password": DEFAULT_PASSWORD, "csrf_token": token}
    )
    page = _html(csrf_client.get("/admin/attention"))
    assert "du_answered_in_stripe" in page and "pi_released_in_stripe" in page

    dispute_url = f"/admin/attention/disputes/{dispute.id}/acknowledge"
    hold_url = f"/admin/attention/unowned-holds/{hold.id}/acknowledge"
    assert csrf_client.post(dispute_url).status_code == 400  # no token: nothing changes
    token = csrf_token_from(csrf_client, "/admin/attention")
    assert csrf_client.post(dispute_url, data={"csrf_token": token}).status_code == 302
    assert csrf_client.post(hold_url, data={"csrf_token": token}).status_code == 302
    again = csrf_client.post(dispute_url, data={"csrf_token": token}, follow_redirects=True)
    assert "acknowledged already" in _html(again)

    page = _html(csrf_client.get("/admin/attention"))
    assert "du_answered_in_stripe" not in page and "pi_released_in_stripe" not in page
    db_session.expire_all()
    for row in (
        db_session.get(PaymentDispute, dispute.id),
        db_session.get(UnownedCardHold, hold.id),
    ):
        assert row is not None
        assert row.acknowledged_by == admin.username and row.acknowledged_at is not None
    wallet_page = _html(csrf_client.get(f"/admin/users/{shopper.id}/wallet"))
    assert "du_answered_in_stripe" in wallet_page
    assert f"acknowledged by {admin.username}" in wallet_page


def test_a_wallet_search_matching_more_shoppers_than_it_lists_says_so(
    admin_client: FlaskClient, make_user: Callable[..., User]
) -> None:
    """The search lists 20 shoppers; with more matches it said nothing, so the shopper the
    operator looked for seemed not to exist."""
    for n in range(23):
        make_user(username=f"kim{n:02d}", email=f"kim{n:02d}@example.com")
    page = _html(admin_client.get("/admin/wallets?q=kim"))
    assert page.count('/wallet">') == 20
    assert "The first 20 of 23 shoppers matching" in page
    few = _html(admin_client.get("/admin/wallets?q=kim2"))
    assert few.count('/wallet">') == 3 and "The first" not in few


@pytest.mark.parametrize("query", ["²", "٣", "①"])
def test_a_wallet_search_for_a_digit_that_is_no_number_answers(
    admin_client: FlaskClient, query: str
) -> None:
    """str.isdigit() accepts superscripts and other scripts' digits that int() refuses: the
    search for an id answered 500."""
    response = admin_client.get("/admin/wallets", query_string={"q": query})
    assert response.status_code == 200
    assert "No shopper matches" in _html(response)


@pytest.mark.parametrize("kind", ["declarative", "csv_feed", "amazon"])
def test_a_format_that_needs_options_from_marketplaces_toml_is_refused_by_the_form(
    admin_client: FlaskClient, db_session: Session, kind: str
) -> None:
    """The form offered every API format, but declarative, CSV feed and Amazon marketplaces need
    options only marketplaces.toml gives (list_path, feed_path, marketplace): one added here
    could never be read, and its adapter's error stopped the order workers at start."""
    response = admin_client.post("/admin/marketplaces/new", data={**NEW_MARKETPLACE, "kind": kind})
    assert response.status_code == 422
    html = _html(response)
    assert "marketplaces.toml" in html and "is required" in html
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Marketplace)) == 0


def test_an_edit_to_a_format_that_needs_options_is_refused_but_configured_ones_save(
    admin_client: FlaskClient, db_session: Session, make_marketplace: Callable[..., Marketplace]
) -> None:
    """Bazaar is declarative with its options in marketplaces.toml: it still saves."""
    plain = make_marketplace(kind="shopify")
    bazaar = make_marketplace(
        slug="bazaar", kind="declarative", currency="EUR", country="DE",
        api_base_url="http://127.0.0.1:8800/bazaar",
    )  # fmt: skip
    form = {**NEW_MARKETPLACE, "kind": "declarative", "api_key": ""}
    refused = admin_client.post(f"/admin/marketplaces/{plain.id}/edit", data=form)
    assert refused.status_code == 422 and "is required" in _html(refused)
    db_session.expire_all()
    assert db_session.get(Marketplace, plain.id).kind == "shopify"  # type: ignore[union-attr]
    saved = admin_client.post(
        f"/admin/marketplaces/{bazaar.id}/edit",
        data={**form, "api_base_url": "http://127.0.0.1:8800/bazaar", "currency": "EUR",
              "country": "DE", "name": "Euro Bazaar"},
    )  # fmt: skip
    assert saved.status_code == 302, _html(saved)


def _seen(html: str) -> str:
    found = re.search(r'name="seen"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="seen"', html)
    assert found, "the edit form carries what it showed"
    return found.group(1) or found.group(2)


def test_an_edit_form_opened_before_another_admin_disabled_the_marketplace_does_not_enable_it(
    admin_client: FlaskClient, db_session: Session, make_marketplace: Callable[..., Marketplace]
) -> None:
    """Admin A opens the edit form (active ticked); admin B disables the marketplace; A fixes a
    typo in the name and saves: the form's ticked box enabled it again, silently. A save is
    compare-and-set on what the form showed: nothing is saved, A is told what changed, and a
    second save (from the form shown again, which now shows the change) goes through."""
    marketplace = make_marketplace(name="Lagos Dealz")
    url = f"/admin/marketplaces/{marketplace.id}/edit"
    seen = _seen(_html(admin_client.get(url)))

    admin_client.post(f"/admin/marketplaces/{marketplace.id}/disable")  # admin B
    form = {**NEW_MARKETPLACE, "name": "Lagos Deals", "api_key": "", "seen": seen}
    form.update(api_base_url=marketplace.api_base_url, kind=marketplace.kind)
    form.pop("slug")
    stale = admin_client.post(url, data=form)

    assert stale.status_code == 409
    assert "changed since you opened" in _html(stale) and "disabled" in _html(stale)
    db_session.refresh(marketplace)
    assert (marketplace.name, marketplace.active) == ("Lagos Dealz", False)

    again = admin_client.post(url, data={**form, "seen": _seen(_html(stale))})
    assert again.status_code == 302
    db_session.refresh(marketplace)
    assert marketplace.name == "Lagos Deals"
