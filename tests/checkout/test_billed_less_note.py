"""What the shopper is told when a marketplace billed less than they paid (the difference is
refunded, commerce.acceptance): the notification and the order page say that it billed less, by
how much, and what was refunded, not that it "did not accept all of your items", which it did.

Shopper QA (shop12, shop13) found the note untested; both places then said "ShopWave did not
accept all of your items at the prices paid (billed $X instead of $Y)" and "(ShopWave did not
accept all of it at the price paid)" for an order whose every item was accepted. Real database,
the sandbox over HTTP (its price knob makes the marketplace bill less), placement in this
process."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.models import Marketplace
from commerce.notification_models import Notification
from commerce.notifications import SUBJECT_HEADLINE_LIMIT, _claim_email, email_subject
from commerce.order_models import PLACED_SUB_ORDER_STATUSES, Refund
from onecart.money import format_money
from onecart.settings import Settings
from tests.checkout.shop import Shop
from tests.storefront.conftest import text_of

pytestmark = pytest.mark.slow


def _adjustment_note(shop: Shop, user_id: int) -> str:
    with shop.session() as session:
        [message] = session.scalars(
            sa.select(Notification.message).where(
                Notification.user_id == user_id, Notification.kind == "sub_order_adjusted"
            )
        ).all()
        return message


def _refunds(shop: Shop, sub_order_id: int) -> list[Refund]:
    with shop.session() as session:
        return list(session.scalars(sa.select(Refund).where(Refund.sub_order_id == sub_order_id)))


def test_a_marketplace_that_billed_less_is_said_to_have_billed_less_and_the_difference_refunded(
    placing_shop: Shop,
) -> None:
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 1, 2)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    shop.knobs("shopwave", order_price_change_pct=-10)  # ShopWave bills 10% less than asked

    shop.place_here(order, "shopwave")

    sub = shop.sub_order(order, "shopwave")
    assert sub.status in PLACED_SUB_ORDER_STATUSES
    assert sub.accepted_charge_minor is not None and sub.accepted_amount_minor is not None
    asked = format_money(sub.amount_minor, sub.currency)
    billed = format_money(sub.accepted_amount_minor, sub.currency)
    difference = format_money(sub.charge_minor - sub.accepted_charge_minor, sub.charge_currency)
    assert sub.accepted_amount_minor < sub.amount_minor
    [refund] = _refunds(shop, sub.id)
    assert refund.amount_minor == sub.charge_minor - sub.accepted_charge_minor > 0

    # The notification: who billed what, against what was paid, and the refund of the rest,
    # first, in one sentence: its first sentence is the e-mail's subject, which said only
    # "ShopWave accepted your order (their order …)." and left the lower bill to the body.
    note = _adjustment_note(shop, user.id)
    news = (
        f"ShopWave billed {billed}, not the {asked} paid; "
        f"we refunded {difference} to your OneCart wallet."
    )
    assert note == f"{news} ShopWave accepted your order (their order {sub.display_number})."
    assert email_subject(note, order.number) == f"OneCart order {order.number}: {news}"
    assert "did not accept" not in note

    # The order page: the refund, its amount and why, in the same words.
    page = text_of(client.get(f"/orders/{order.number}").get_data(as_text=True))
    assert f"Refunded {difference} (ShopWave billed {billed}, not the {asked} paid)" in page
    assert "did not accept" not in page


def test_a_marketplace_that_left_items_out_is_said_to_have_left_them_out(
    placing_shop: Shop,
) -> None:
    """The other adjustment, a partial placement, keeps its own words: the two are told apart."""
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 3, 3)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    shop.knobs("kiondo", max_line_quantity=1)  # Kiondo accepts one of the three

    shop.place_here(order, "kiondo")

    sub = shop.sub_order(order, "kiondo")
    assert sub.accepted_charge_minor is not None
    difference = format_money(sub.charge_minor - sub.accepted_charge_minor, sub.charge_currency)
    title = shop.product("kiondo", 3).title
    note = _adjustment_note(shop, user.id)
    # The news first (the e-mail's subject is its first sentence), the items after it: long
    # titles in it pushed out where the money went (test_adjustment_subjects.py).
    news = (
        "Kiondo Market did not accept all of your items; "
        f"we refunded {difference} to your OneCart wallet."
    )
    assert note.startswith(f"{news} It accepted 1 of 3 × {title[:60]}.")
    assert email_subject(note, order.number) == f"OneCart order {order.number}: {news}"
    assert "billed" not in note
    page = text_of(client.get(f"/orders/{order.number}").get_data(as_text=True))
    # One pair of brackets: "(… did not accept all of your items (accepted 1 of 3 × …))" read
    # as a sentence cut off and another begun (shop17).
    assert (
        f"Refunded {difference} (Kiondo Market did not accept all of your items: "
        f"accepted 1 of 3 × {title[:60]})"
    ) in page


def test_a_lower_bill_on_a_card_not_yet_charged_is_said_to_be_charged_less(
    placing_shop: Shop,
) -> None:
    """Paid by card, the difference is left out of the capture (a release): nothing is refunded
    and no "We refunded … to your card" follows, so the note said "We are refunding $8.00." for
    good. It says the card is charged that much less, which is what the shopper's bank shows."""
    shop = placing_shop
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 1, 2)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="stripe", test_card="pm_card_visa")
    shop.knobs("shopwave", order_price_change_pct=-10)

    shop.place_here(order, "shopwave")

    sub = shop.sub_order(order, "shopwave")
    assert sub.accepted_charge_minor is not None and sub.accepted_amount_minor is not None
    difference = sub.charge_minor - sub.accepted_charge_minor
    payment = shop.order(order.number).payment
    assert payment is not None and payment.captured_minor == sub.accepted_charge_minor
    note = _adjustment_note(shop, user.id)
    news = (
        f"ShopWave billed {format_money(sub.accepted_amount_minor, sub.currency)}, not the "
        f"{format_money(sub.amount_minor, sub.currency)} paid; your card is charged "
        f"{format_money(difference, sub.charge_currency)} less."
    )
    assert note.startswith(news)
    assert email_subject(note, order.number) == f"OneCart order {order.number}: {news}"
    assert "refund" not in note.lower()
    # The order page says the same (shop15 found it headed "Refunded $8.00"): never charged.
    page = text_of(client.get(f"/orders/{order.number}").get_data(as_text=True))
    assert (
        f"Not charged {format_money(difference, sub.charge_currency)} (released from your card "
        f"hold: ShopWave billed {format_money(sub.accepted_amount_minor, sub.currency)}, not "
        f"the {format_money(sub.amount_minor, sub.currency)} paid)"
    ) in page
    assert "refund" not in page.lower()


def test_a_long_marketplace_name_is_cut_in_the_subject_and_the_money_kept_whole(
    placing_shop: Shop, settings: Settings
) -> None:
    """The e-mail as sent: a marketplace with a long name, paid by card and billed less. The
    subject's first sentence is past SUBJECT_HEADLINE_LIMIT with the name whole; the name is
    cut, not the amounts or where the difference went; the body keeps the name whole."""
    shop = placing_shop
    long_name = "Shopwave Official Electronics & Home Appliances Store Kenya"
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(Marketplace).where(Marketplace.slug == "shopwave").values(name=long_name)
        )
    try:
        user = shop.make_user()
        shop.fill_cart(user, [("shopwave", 1, 2)])
        client = shop.client_for(user)
        order = shop.checkout(client, payment_method="stripe", test_card="pm_card_visa")
        shop.knobs("shopwave", order_price_change_pct=-10)

        shop.place_here(order, "shopwave")

        sub = shop.sub_order(order, "shopwave")
        assert sub.accepted_charge_minor is not None and sub.accepted_amount_minor is not None
        amounts = (
            format_money(sub.accepted_amount_minor, sub.currency),
            format_money(sub.amount_minor, sub.currency),
            format_money(sub.charge_minor - sub.accepted_charge_minor, sub.charge_currency),
        )
        note = _adjustment_note(shop, user.id)
        first_sentence = note.split(". ", 1)[0] + "."
        assert first_sentence.startswith(long_name)
        assert len(first_sentence) > SUBJECT_HEADLINE_LIMIT  # the case: it does not fit whole
        with shop.session() as session:
            notification_id = session.scalars(
                sa.select(Notification.id).where(
                    Notification.user_id == user.id, Notification.kind == "sub_order_adjusted"
                )
            ).one()
        email = _claim_email(shop.session_factory, notification_id, settings)
        assert email is not None
        headline = str(email["Subject"]).removeprefix(f"OneCart order {order.number}: ")
        assert len(headline) <= SUBJECT_HEADLINE_LIMIT
        shown_name = headline.split(" billed ", 1)[0]
        assert shown_name.endswith("…") and long_name.startswith(shown_name.removesuffix("…"))
        assert headline.endswith(f"; your card is charged {amounts[2]} less.")
        for amount in amounts:
            assert amount in headline
        assert first_sentence in str(email.get_content())  # the body: the name whole
    finally:
        with shop.session() as session, session.begin():
            session.execute(
                sa.update(Marketplace).where(Marketplace.slug == "shopwave").values(name="ShopWave")
            )
