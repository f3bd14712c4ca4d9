"""Price alerts: the rule (below a target, a percentage drop, in the shopper's currency, one
alert per drop), its notification and e-mail, and the watch list's pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from commerce.db import get_session_factory
from commerce.models import FxRate, Marketplace, Product, User
from commerce.notification_models import Notification
from commerce.notifications import send_notification_emails
from commerce.price_alert_models import PriceAlert, PriceWatch
from commerce.price_alerts import (
    AlertReason,
    decide_alert,
    evaluate_price_alerts,
    watch_product,
)
from onecart.settings import Settings

GROUP = "g-headphones-xm5"


# --- The rule, on its own ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cheapest", "reference", "target", "percent", "new_reference", "reason"),
    [
        (9000, 10000, 9500, None, 9000, AlertReason.BELOW_TARGET),  # fell below the target
        (9600, 10000, 9500, None, None, None),  # fell, but not below the target
        (8900, 10000, None, 10, 8900, AlertReason.PERCENT_DROP),  # 11% >= 10%
        (9100, 10000, None, 10, None, None),  # 9% < 10%
        (9900, 10000, None, None, 9900, AlertReason.PRICE_DROP),  # no condition: every drop
        (9950, 10000, None, None, None, None),  # 0.5%: exchange-rate wobble, not a drop
        (9000, 9000, 9500, None, None, None),  # the alerted price again: no new drop
        (11000, 9000, 9500, None, 11000, None),  # a rise moves the reference up
        (9000, None, 9500, None, 9000, None),  # first sighting only sets the reference
    ],
)
def test_the_alert_rule(
    cheapest: int,
    reference: int | None,
    target: int | None,
    percent: int | None,
    new_reference: int | None,
    reason: AlertReason | None,
) -> None:
    decision = decide_alert(
        cheapest_minor=cheapest,
        reference_minor=reference,
        target_minor=target,
        drop_percent=percent,
    )
    assert (decision.new_reference, decision.reason) == (new_reference, reason)


# --- The service, on the storefront DB ---------------------------------------------------------


@pytest.fixture
def factory(storefront_db_url: str, app: Any) -> sessionmaker[Session]:
    return get_session_factory(storefront_db_url)


@pytest.fixture
def offers(
    db_session: Session,
    make_marketplace: Callable[..., Marketplace],
    make_product: Callable[..., Product],
) -> dict[str, Product]:
    """One product at three marketplaces in three currencies, with published rates."""
    db_session.add_all(
        [
            FxRate(currency="EUR", rate=Decimal("0.80000000"), as_of=date(2026, 12, 1)),
            FxRate(currency="KES", rate=Decimal("130.00000000"), as_of=date(2026, 12, 1)),
        ]
    )
    shopwave = make_marketplace(slug="shopwave", name="ShopWave", currency="USD")
    kiondo = make_marketplace(slug="kiondo", name="Kiondo Market", currency="KES")
    bazaar = make_marketplace(slug="bazaar", name="Euro Bazaar", currency="EUR")
    common = {"relation_token": GROUP, "title": "Sony WH-1000XM5"}
    return {
        "usd": make_product(shopwave, price_minor=30000, currency="USD", **common),  # $300.00
        "kes": make_product(kiondo, price_minor=4_160_000, currency="KES", **common),  # $320.00
        "eur": make_product(bazaar, price_minor=25600, currency="EUR", **common),  # $320.00
    }


@pytest.fixture
def watching(
    db_session: Session, offers: dict[str, Product], make_user: Callable[..., User]
) -> Callable[..., User]:
    """watching(currency, **conditions): a new shopper (prices shown in `currency`) watching the
    offers' product with watch_product's conditions (target, drop percentage)."""

    def watch(currency: str = "USD", **conditions: Any) -> User:
        shopper = make_user(display_currency=currency)
        watch_product(db_session, shopper, GROUP, **conditions)
        db_session.commit()
        return shopper

    return watch


@pytest.fixture
def sign_in(
    client: FlaskClient,
    offers: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., TestResponse],
) -> Callable[..., User]:
    """sign_in(currency): a new shopper (prices shown in `currency`) signed in on `client`, with
    the offers' product on sale."""

    def sign(currency: str = "USD") -> User:
        shopper = make_user(display_currency=currency)
        login(client, shopper)
        return shopper

    return sign


@pytest.fixture
def alerted(
    db_session: Session,
    factory: sessionmaker[Session],
    offers: dict[str, Product],
    watching: Callable[..., User],
) -> User:
    """A shopper watching in USD with no condition, alerted once: ShopWave's $300.00 fell to
    $270.00 (the alert waits to be e-mailed)."""
    shopper = watching("USD")
    _reprice(db_session, offers["usd"], 27000)
    evaluate_price_alerts(factory)
    return shopper


def _mail_settings(settings: Settings, port: int, **changes: Any) -> Settings:
    """The run's settings with the local mailbox as SMTP server, and `changes`."""
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port, **changes})


def _reprice(session: Session, product: Product, price_minor: int) -> None:
    product.price_minor = price_minor
    session.commit()


def _alerts(session: Session, user: User) -> list[Notification]:
    session.expire_all()
    return list(
        session.scalars(
            sa.select(Notification)
            .where(Notification.user_id == user.id, Notification.kind == "price_alert")
            .order_by(Notification.id)
        )
    )


def test_a_drop_below_the_target_alerts_once_saying_where_and_by_how_much(
    db_session: Session,
    factory: sessionmaker[Session],
    offers: dict[str, Product],
    watching: Callable[..., User],
) -> None:
    shopper = watching("USD", target_minor=28000, target_currency="USD")

    evaluate_price_alerts(factory)
    assert _alerts(db_session, shopper) == []  # $300 is above the $280 target

    _reprice(db_session, offers["eur"], 21600)  # €216.00 = $270.00 at Euro Bazaar
    first = evaluate_price_alerts(factory)
    again = evaluate_price_alerts(factory)

    alerts = _alerts(db_session, shopper)
    assert (first.alerts, again.alerts, len(alerts)) == (1, 0, 1)
    assert alerts[0].message == (
        "Price drop: Sony WH-1000XM5 is now $270.00 at Euro Bazaar, $30.00 (10%) less than "
        "$300.00. Your target was $280.00."
    )
    assert alerts[0].link_path == f"/product/{GROUP}" and alerts[0].order_id is None
    stored = db_session.scalars(sa.select(PriceAlert)).one()
    assert (stored.product_id, stored.reason, stored.price_minor, stored.previous_minor) == (
        offers["eur"].id,
        "below_target",
        27000,
        30000,
    )

    _reprice(db_session, offers["eur"], 20000)  # a further drop is a new drop: $250.00
    evaluate_price_alerts(factory)
    assert [a.message.split(",")[0] for a in _alerts(db_session, shopper)] == [
        "Price drop: Sony WH-1000XM5 is now $270.00 at Euro Bazaar",
        "Price drop: Sony WH-1000XM5 is now $250.00 at Euro Bazaar",
    ]


def test_a_percentage_drop_is_measured_from_the_price_when_watching_started(
    db_session: Session,
    factory: sessionmaker[Session],
    offers: dict[str, Product],
    watching: Callable[..., User],
) -> None:
    shopper = watching("USD", drop_percent=10)

    _reprice(db_session, offers["usd"], 28000)  # -6.7%: not yet
    evaluate_price_alerts(factory)
    assert _alerts(db_session, shopper) == []

    _reprice(db_session, offers["usd"], 26900)  # -10.3% from $300.00
    evaluate_price_alerts(factory)
    evaluate_price_alerts(factory)

    (alert,) = _alerts(db_session, shopper)
    assert "now $269.00 at ShopWave, $31.00 (10%) less than $300.00." in alert.message
    assert db_session.scalars(sa.select(PriceAlert.reason)).all() == ["percent_drop"]


def test_prices_are_compared_in_the_shoppers_currency(
    db_session: Session,
    factory: sessionmaker[Session],
    offers: dict[str, Product],
    watching: Callable[..., User],
) -> None:
    # The target was typed in euros; offers are in USD, KES and EUR.
    shopper = watching("EUR", target_minor=22000, target_currency="EUR")
    watch = db_session.scalars(sa.select(PriceWatch)).one()
    assert (watch.reference_minor, watch.reference_currency) == (24000, "EUR")  # $300 = €240

    _reprice(db_session, offers["kes"], 3_510_000)  # KES 35,100 = $270.00 = €216.00
    evaluate_price_alerts(factory)

    (alert,) = _alerts(db_session, shopper)
    assert alert.message == (
        "Price drop: Sony WH-1000XM5 is now €216.00 at Kiondo Market, €24.00 (10%) less than "
        "€240.00. Your target was €220.00."
    )


def test_a_watch_made_below_its_target_waits_for_a_real_drop(
    db_session: Session,
    factory: sessionmaker[Session],
    offers: dict[str, Product],
    watching: Callable[..., User],
) -> None:
    shopper = watching("USD", target_minor=50000, target_currency="USD")

    for _ in range(3):
        evaluate_price_alerts(factory)

    assert _alerts(db_session, shopper) == []


def test_the_alert_is_e_mailed_with_a_link_that_opens_the_product(
    factory: sessionmaker[Session],
    alerted: User,
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> None:
    port, received = mailbox
    shopper = alerted

    mail_settings = _mail_settings(settings, port)
    sent = send_notification_emails(factory, mail_settings)
    sent_again = send_notification_emails(factory, mail_settings)

    assert (sent, sent_again, len(received)) == (1, 0, 1)
    message = received[0]
    body = message.get_payload(decode=True).decode()
    assert message["To"] == shopper.email
    assert message["Subject"].startswith("OneCart: Price drop: ")
    assert "is now $270.00 at ShopWave" in message["Subject"]
    assert "now $270.00 at ShopWave, $30.00 (10%) less than $300.00" in body
    assert f"{settings.site_url}/product/{GROUP}" in body


def test_the_e_mailed_alert_links_to_the_public_address(
    factory: sessionmaker[Session],
    alerted: User,
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> None:
    """Notifications are e-mailed by the worker, outside any request: the link is built on
    ONECART_PUBLIC_URL (the address shoppers reach; the site's own bind address, 127.0.0.1 or
    0.0.0.0 behind a proxy, opens nothing for them)."""
    port, received = mailbox

    mail_settings = _mail_settings(settings, port, public_url="https://shop.example.com/")
    assert send_notification_emails(factory, mail_settings) == 1

    [message] = received
    body = message.get_payload(decode=True).decode()
    assert f"Open it at https://shop.example.com/product/{GROUP}" in body
    assert settings.site_url not in body


# --- The pages ---------------------------------------------------------------------------------


def _post(client: FlaskClient, url: str, **form: str) -> TestResponse:
    return client.post(url, data=form)


def test_a_shopper_watches_from_the_product_page_and_edits_and_removes_on_the_watch_list(
    client: FlaskClient,
    db_session: Session,
    sign_in: Callable[..., User],
) -> None:
    sign_in("EUR")
    page = client.get(f"/product/{GROUP}").get_data(as_text=True)
    assert "Watch price" in page and 'action="/watch"' in page

    response = _post(
        client, "/watch", group_id=GROUP, target="199.50", drop_percent="", next=f"/product/{GROUP}"
    )

    assert response.status_code == 303 and response.headers["Location"] == f"/product/{GROUP}"
    watch = db_session.scalars(sa.select(PriceWatch)).one()
    assert (watch.target_minor, watch.target_currency, watch.drop_percent) == (19950, "EUR", None)
    page = client.get(f"/product/{GROUP}").get_data(as_text=True)
    assert "Watching" in page and "€199.50" in page and "Stop watching" in page

    listing = client.get("/profile/watchlist").get_data(as_text=True)
    assert "Sony WH-1000XM5" in listing and "€240.00" in listing and "ShopWave" in listing
    assert 'value="199.50"' in listing

    prefix = f"w{watch.id}"
    response = _post(
        client,
        f"/profile/watchlist/{watch.id}",
        **{f"{prefix}-target": "", f"{prefix}-drop_percent": "15"},
    )
    assert response.status_code == 303
    db_session.expire_all()
    assert (watch.target_minor, watch.target_currency, watch.drop_percent) == (None, None, 15)

    response = _post(client, f"/profile/watchlist/{watch.id}/delete")
    assert response.status_code == 303
    assert db_session.scalars(sa.select(PriceWatch)).all() == []
    assert "not watching any product" in client.get("/profile/watchlist").get_data(as_text=True)


def test_the_watch_list_and_the_alert_show_the_price_the_product_page_and_cart_show(
    client: FlaskClient,
    db_session: Session,
    factory: sessionmaker[Session],
    offers: dict[str, Product],
    sign_in: Callable[..., User],
) -> None:
    # In KWD a card takes steps of 10 fils, and every page rounds a converted price down to one
    # (commerce.cart_pricing.charged_price_minor): $300.00 at 0.30705 is KWD 92.115, shown and
    # charged as KWD 92.110. The watch list and the alert said 92.115.
    db_session.add(FxRate(currency="KWD", rate=Decimal("0.30705000"), as_of=date(2026, 12, 1)))
    db_session.commit()
    shopper = sign_in("KWD")
    _post(client, "/watch", group_id=GROUP, target="", drop_percent="", next=f"/product/{GROUP}")

    product_page = client.get(f"/product/{GROUP}").get_data(as_text=True)
    watch_list = client.get("/profile/watchlist").get_data(as_text=True)

    assert "KWD92.110" in product_page and "KWD92.115" not in product_page
    assert "KWD92.110" in watch_list and "KWD92.115" not in watch_list

    _reprice(db_session, offers["usd"], 27000)  # $270.00 = KWD 82.9035, shown as 82.900
    evaluate_price_alerts(factory)
    (alert,) = _alerts(db_session, shopper)
    assert alert.message.startswith("Price drop: Sony WH-1000XM5 is now KWD82.900 at ShopWave, ")
    assert "less than KWD92.110." in alert.message


def test_bad_targets_are_refused_with_a_message_and_nothing_is_saved(
    client: FlaskClient,
    db_session: Session,
    sign_in: Callable[..., User],
) -> None:
    sign_in("USD")
    for target, drop, message in (
        ("cheap", "", "Enter the target as a price in USD"),
        ("-5", "", "more than zero"),
        ("10.999", "", "Enter the target as a price in USD"),
        ("", "7", "Not a valid choice"),
    ):
        response = _post(client, "/watch", group_id=GROUP, target=target, drop_percent=drop)
        # The product page re-rendered with the refused form, 422 like every rejected form.
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    response = _post(client, "/watch", group_id="no-such-group", target="", drop_percent="")
    assert response.status_code == 303

    assert db_session.scalars(sa.select(PriceWatch)).all() == []
    assert "find that product" in client.get(response.location).get_data(as_text=True)


def test_a_refused_target_comes_back_in_its_field_with_the_message_beside_it(
    client: FlaskClient,
    db_session: Session,
    sign_in: Callable[..., User],
) -> None:
    """The product page's "Watch price" form: the shopper's "12,50" vanished, the message sat in
    the flash area at the top of the page (far above the form on a phone), the field was not
    marked invalid and focus started at the top. Now the form comes back as typed, the field
    aria-invalid and described by the message, under a summary that takes focus."""
    sign_in("EUR")

    response = _post(
        client,
        "/watch",
        group_id=GROUP,
        target="12,50",
        drop_percent="10",
        next=f"/product/{GROUP}",
    )
    # The product page itself comes back, with 422 (not a redirect to a 200 page).
    assert response.status_code == 422

    html = response.get_data(as_text=True)
    form = re.search(r'<section class="watch-price.*?</section>', html, re.S)
    assert form, "no watch control"
    control = form.group(0)
    assert 'value="12,50"' in control
    assert re.search(r'<option value="10" selected>', control)
    assert re.search(r'<input id="watch-target"[^>]*aria-invalid="true"', control)
    assert 'aria-describedby="watch-target-error"' in control
    message = "Enter the target as a price in EUR, like 49.99."
    assert re.search(rf'id="watch-target-error"[^>]*>{re.escape(message)}<', control)
    assert re.search(
        r'class="alert alert-error error-summary" role="alert" tabindex="-1" autofocus', control
    )
    assert message not in html.replace(control, "")  # said once, at the form: not in the flashes
    # The page's other forms still come back to the product page, not to POST-only /watch.
    assert 'value="/watch' not in html and "next=%2Fwatch" not in html
    assert db_session.scalars(sa.select(PriceWatch)).all() == []
    # Shown once: the next visit is a fresh form.
    again = client.get(f"/product/{GROUP}").get_data(as_text=True)
    assert "12,50" not in again and 'aria-invalid="true"' not in again


def test_a_refused_watch_list_change_is_shown_again_as_typed_with_its_message(
    client: FlaskClient,
    db_session: Session,
    sign_in: Callable[..., User],
) -> None:
    """The watch list's "Save" answered a bad target with a redirect: the stored target replaced
    what the shopper typed, and the message was only a flash at the top of the page."""
    sign_in("USD")
    _post(client, "/watch", group_id=GROUP, target="250", drop_percent="")
    watch = db_session.scalars(sa.select(PriceWatch)).one()
    prefix = f"w{watch.id}"

    response = _post(
        client,
        f"/profile/watchlist/{watch.id}",
        **{f"{prefix}-target": "-3", f"{prefix}-drop_percent": "20"},
    )

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    field = f"{prefix}-target"
    assert re.search(rf'<input id="{field}"[^>]*aria-invalid="true"', html)
    assert re.search(rf'<input id="{field}"[^>]*value="-3"', html)
    assert re.search(r'<option value="20" selected>', html)
    message = "The target price must be more than zero."
    assert re.search(rf'id="{field}-error"[^>]*>{re.escape(message)}<', html)
    assert f'<a href="#{field}">{message}</a>' in html  # the focused summary links to it
    db_session.expire_all()
    assert (watch.target_minor, watch.drop_percent) == (25000, None)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        # Twenty digits fit the form's length limit but not a 64-bit column: refused, not a 500.
        ("99999999999999999999", "too high"),
        # A decimal comma is not a thousands separator: "10,50" must not become 1,050.00.
        ("10,50", "Enter the target as a price in EUR"),
    ],
)
def test_a_target_too_high_to_store_or_with_a_decimal_comma_is_refused(
    client: FlaskClient,
    db_session: Session,
    sign_in: Callable[..., User],
    target: str,
    message: str,
) -> None:
    sign_in("EUR")

    response = _post(client, "/watch", group_id=GROUP, target=target, drop_percent="")

    assert response.status_code == 422
    assert db_session.scalars(sa.select(PriceWatch)).all() == []
    assert message in response.get_data(as_text=True)


def test_thousands_separators_in_a_target_are_read_as_such(
    client: FlaskClient,
    db_session: Session,
    sign_in: Callable[..., User],
) -> None:
    sign_in("EUR")

    response = _post(client, "/watch", group_id=GROUP, target="1,050.50", drop_percent="")

    assert response.status_code == 303
    assert db_session.scalars(sa.select(PriceWatch.target_minor)).one() == 105050


def test_watches_are_private_and_need_an_account(
    app: Any,
    client: FlaskClient,
    db_session: Session,
    offers: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., TestResponse],
) -> None:
    owner = make_user()
    watch = watch_product(db_session, owner, GROUP)
    db_session.commit()

    assert client.get("/profile/watchlist").status_code == 302
    assert client.post("/watch", data={"group_id": GROUP}).status_code == 302
    assert "Sign in to watch this price" in client.get(f"/product/{GROUP}").get_data(as_text=True)

    login(client, make_user())
    assert client.post(f"/profile/watchlist/{watch.id}/delete").status_code == 404
    assert client.post(f"/profile/watchlist/{watch.id}", data={}).status_code == 404
    assert "Sony" not in client.get("/profile/watchlist").get_data(as_text=True)
    assert db_session.scalars(sa.select(PriceWatch.id)).all() == [watch.id]


def test_an_evaluation_that_lost_the_race_for_a_watch_fires_nothing(
    db_session: Session,
    factory: sessionmaker[Session],
    offers: dict[str, Product],
    make_user: Callable[..., User],
) -> None:
    from commerce.fx import load_fx_table
    from commerce.models import utc_now
    from commerce.price_alerts import _apply_to_watch, cheapest_offer, offers_by_group

    shopper = make_user(display_currency="USD")
    watch = watch_product(db_session, shopper, GROUP)
    db_session.commit()
    _reprice(db_session, offers["usd"], 27000)
    # A slow evaluator read the watch (version 0) before another one handled the drop.
    slow = factory()
    stale = slow.get(PriceWatch, watch.id)  # held: the identity map keeps it only while used
    slow.commit()
    assert evaluate_price_alerts(factory).alerts == 1

    fx = load_fx_table(slow)
    cheapest = cheapest_offer(offers_by_group(slow, [GROUP])[GROUP], fx, "USD")
    assert cheapest is not None
    slow.commit()
    with slow.begin():
        outcome = _apply_to_watch(slow, watch.id, cheapest, fx, utc_now())
    slow.close()

    assert outcome == "lost" and stale is not None
    assert len(_alerts(db_session, shopper)) == 1
    assert db_session.scalars(sa.select(PriceAlert.sequence)).all() == [1]


def test_a_target_the_price_already_meets_is_said_to_be_met_when_watching_starts(
    client: FlaskClient,
    db_session: Session,
    sign_in: Callable[..., User],
) -> None:
    """A target above today's cheapest price was confirmed with "We'll tell you when it drops."
    and nothing else: the shopper waited for an alert about a price already met, which by design
    comes only with a later drop (a watch made below its target waits for a real drop)."""
    sign_in("EUR")

    response = _post(
        client, "/watch", group_id=GROUP, target="300", drop_percent="", next=f"/product/{GROUP}"
    )

    assert response.status_code == 303
    page = " ".join(unescape(client.get(f"/product/{GROUP}").get_data(as_text=True)).split())
    assert (
        "The cheapest offer, €240.00 at ShopWave, is already at or below your target of "
        "€300.00: we'll tell you when it drops further."
    ) in page

    _post(client, "/watch", group_id=GROUP, target="100", drop_percent="", next=f"/product/{GROUP}")
    page = unescape(client.get(f"/product/{GROUP}").get_data(as_text=True))
    assert "already at or below" not in page and "We'll tell you when it drops." in page

    # The same when the target is changed on the watch list.
    watch = db_session.scalars(sa.select(PriceWatch)).one()
    prefix = f"w{watch.id}"
    _post(client, f"/profile/watchlist/{watch.id}", **{f"{prefix}-target": "250"})
    listing = " ".join(unescape(client.get("/profile/watchlist").get_data(as_text=True)).split())
    assert "already at or below your target of €250.00" in listing
