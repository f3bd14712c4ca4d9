"""A price alert's e-mail subject keeps its news whole (the new price, where, by how much, the
old price) and cuts the product's title first, however long the title; the body keeps it whole.

Shopper QA (shop17) found the subject of an alert for a product with a long title cut at a word,
losing the prices: "OneCart: Price drop: Sennheiser … is now $270.00 at ShopWave, $30.00 (10%)…".
Only an order's marketplace names were passed to `email_subject` to be cut first. Real database
and a local SMTP server; the alert made by `evaluate_price_alerts`."""

from __future__ import annotations

from collections.abc import Callable
from email.header import decode_header, make_header
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from commerce.db import get_session_factory
from commerce.models import Marketplace, Product, User
from commerce.notifications import SUBJECT_HEADLINE_LIMIT, email_subject, send_notification_emails
from commerce.price_alerts import evaluate_price_alerts, watch_product
from onecart.settings import Settings

GROUP = "g-long-title"
LONG_TITLE = (
    "Sennheiser Momentum 4 Wireless Adaptive Noise Cancelling Over-Ear Headphones with "
    "60-Hour Battery Life, Crystal-Clear Calls and Customisable Sound - Denim Blue"
)
NEWS = "is now $270.00 at ShopWave, $30.00 (10%) less than $300.00."


@pytest.fixture
def factory(storefront_db_url: str, app: Any) -> sessionmaker[Session]:
    return get_session_factory(storefront_db_url)


@pytest.fixture
def shopwave(make_marketplace: Callable[..., Marketplace]) -> Marketplace:
    return make_marketplace(slug="shopwave", name="ShopWave", currency="USD")


def _alert_e_mail(
    title: str,
    db_session: Session,
    factory: sessionmaker[Session],
    shopwave: Marketplace,
    make_product: Callable[..., Product],
    make_user: Callable[..., User],
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> Any:
    """The e-mail of the alert a watcher of `title` gets when ShopWave's $300.00 falls to
    $270.00."""
    product = make_product(
        shopwave, price_minor=30000, currency="USD", relation_token=GROUP, title=title
    )
    shopper = make_user(display_currency="USD")
    watch_product(db_session, shopper, GROUP)
    db_session.commit()
    product.price_minor = 27000
    db_session.commit()
    assert evaluate_price_alerts(factory).alerts == 1
    port, received = mailbox
    mail_settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    assert send_notification_emails(factory, mail_settings) == 1
    [message] = received
    return message


def test_a_long_title_is_cut_in_the_subject_and_the_prices_kept_whole(
    db_session: Session,
    factory: sessionmaker[Session],
    shopwave: Marketplace,
    make_product: Callable[..., Product],
    make_user: Callable[..., User],
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> None:
    message = _alert_e_mail(
        LONG_TITLE, db_session, factory, shopwave, make_product, make_user, settings, mailbox
    )

    # As a mail client shows it: a long header is folded and its "…" encoded on the wire.
    subject = " ".join(str(make_header(decode_header(message["Subject"]))).split())
    headline = subject.removeprefix("OneCart: ")
    assert headline.startswith("Price drop: Sennheiser Momentum 4")
    assert headline.endswith(f"… {NEWS}")
    assert len(headline) <= SUBJECT_HEADLINE_LIMIT
    body = message.get_payload(decode=True).decode()
    assert f"Price drop: {LONG_TITLE} {NEWS}" in " ".join(body.split())


def test_a_title_with_a_full_stop_inside_is_not_taken_for_the_end_of_the_news(
    db_session: Session,
    factory: sessionmaker[Session],
    shopwave: Marketplace,
    make_product: Callable[..., Product],
    make_user: Callable[..., User],
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> None:
    """ "Dr. Martens …" ended the subject's first sentence at "Dr." before."""
    title = "Dr. Martens 1460 Smooth Leather Lace Up Boots"
    message = _alert_e_mail(
        title, db_session, factory, shopwave, make_product, make_user, settings, mailbox
    )

    assert message["Subject"] == f"OneCart: Price drop: {title} {NEWS}"


@pytest.mark.parametrize(
    ("price", "market"),
    [
        ("KES35,100,000.00", "Kiondo Market"),
        ("NGN123,456,789.00", "NaijaMall"),
        ("¥1,234,567,890", "Fake Store Berlin"),
    ],
)
def test_large_amounts_stay_whole_with_a_long_title(price: str, market: str) -> None:
    """The same function with the alert's names, for the currencies with the longest amounts."""
    news = f"is now {price} at {market}, {price} (10%) less than {price}."
    message = f"Price drop: {LONG_TITLE} {news} Your target was {price}."

    subject = email_subject(message, None, names=(LONG_TITLE, market))

    headline = subject.removeprefix("OneCart: ")
    assert headline.startswith("Price drop: Sennheiser")
    assert headline.endswith(f"… {news}")
    assert len(headline) <= SUBJECT_HEADLINE_LIMIT


def test_a_title_ending_with_a_full_stop_does_not_end_the_news(
    db_session: Session,
    factory: sessionmaker[Session],
    shopwave: Marketplace,
    make_product: Callable[..., Product],
    make_user: Callable[..., User],
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> None:
    """ "… Made in U.S.A." ended the subject's first sentence at the title's last full stop: the
    subject read "Price drop: Levi's … U.S.A.", a sentence that had ended, with no price."""
    title = "Levi's 501 Original Fit Jeans, Made in U.S.A."
    message = _alert_e_mail(
        title, db_session, factory, shopwave, make_product, make_user, settings, mailbox
    )

    assert message["Subject"] == f"OneCart: Price drop: {title} {NEWS}"


@pytest.mark.parametrize("title", [f"{LONG_TITLE}, Made in U.S.A.", f"{LONG_TITLE} Inc."])
def test_a_long_title_ending_with_a_full_stop_is_cut_and_the_news_kept(title: str) -> None:
    message = f"Price drop: {title} {NEWS}"

    headline = email_subject(message, None, names=(title, "ShopWave")).removeprefix("OneCart: ")

    assert headline.startswith("Price drop: Sennheiser")
    assert headline.endswith(f"… {NEWS}")
    assert ".…" not in headline and ",…" not in headline
    assert len(headline) <= SUBJECT_HEADLINE_LIMIT


@pytest.mark.parametrize(
    ("message", "names", "headline"),
    [
        # A product's title at the end of a sentence (the title's full stop and the sentence's).
        (
            "Price drop: Levi's 501 Jeans, Made in U.S.A.. It is now $27.00 at ShopWave.",
            ("Levi's 501 Jeans, Made in U.S.A.", "ShopWave"),
            "Price drop: Levi's 501 Jeans, Made in U.S.A.",
        ),
        # An order's marketplace: "… placing it with Acme Ltd.." read with two full stops.
        (
            "We received order OC-1 ($5.00) and are placing it with Acme Ltd.. More news.",
            ("Acme Ltd.",),
            "We received order OC-1 ($5.00) and are placing it with Acme Ltd.",
        ),
        (
            "We received order OC-1 ($5.00) and are placing it with Acme Ltd..",
            ("Acme Ltd.",),
            "We received order OC-1 ($5.00) and are placing it with Acme Ltd.",
        ),
        # Inside its sentence: not its end.
        (
            "Acme Ltd. accepted your order (their order #1). Something else.",
            ("Acme Ltd.",),
            "Acme Ltd. accepted your order (their order #1).",
        ),
    ],
)
def test_a_name_ending_with_a_full_stop_ends_a_subject_once_and_only_where_its_sentence_does(
    message: str, names: tuple[str, ...], headline: str
) -> None:
    assert email_subject(message, None, names=names) == f"OneCart: {headline}"
