"""A part its marketplace both cut short (a line left out) and billed less for the rest: what the
notification, its e-mail and the order page say. Untested before shop20, and it read wrong:
"Kiondo Market did not accept all of your items; we refunded $394.85 …. It left out …; billed
KES3,914.10, not the KES4,349.00 paid." The subject named only the items, though part of the
refund was the lower bill; "billed …" had no subject after the semicolon; and "not the
KES4,349.00 paid" read as all that was paid, when the shopper paid KES55,047.00 for the part
(KES4,349.00 is what the items it accepted cost). Real database, the sandbox over HTTP (its
knobs make Kiondo Market drop a delisted line and bill 10% less), placement in this process."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.notification_models import Notification
from commerce.notifications import _claim_email
from onecart.money import format_money
from onecart.settings import Settings
from tests.checkout.shop import Shop
from tests.checkout.test_accepted_quantities import _heading
from tests.storefront.conftest import text_of

pytestmark = pytest.mark.slow


def test_a_part_cut_short_and_billed_less_says_both_in_the_notification_e_mail_and_page(
    placing_shop: Shop, settings: Settings
) -> None:
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 3, 2), ("kiondo", 2, 1)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    dropped, kept = shop.product("kiondo", 3), shop.product("kiondo", 2)
    shop.knobs(
        "kiondo",
        drop_unknown_lines=True,
        delisted_products=[dropped.external_id],
        order_price_change_pct=-10,
    )

    shop.place_here(order, "kiondo")

    sub = shop.sub_order(order, "kiondo")
    assert sub.accepted_charge_minor is not None and sub.accepted_amount_minor is not None
    asked_kept = format_money(kept.price_minor, sub.currency)
    billed = format_money(sub.accepted_amount_minor, sub.currency)
    assert sub.accepted_amount_minor < kept.price_minor  # the case: billed less for the rest
    difference = format_money(sub.charge_minor - sub.accepted_charge_minor, sub.charge_currency)
    charged = format_money(sub.accepted_charge_minor, sub.charge_currency)
    paid = format_money(sub.charge_minor, sub.charge_currency)
    news = (
        "Kiondo Market did not accept all of your items and billed less for the rest; "
        f"we refunded {difference} to your OneCart wallet."
    )
    details = (
        f"It left out {dropped.title[:60]}; it billed {billed} for the rest, not {asked_kept}."
    )
    with shop.session() as session:
        [notification] = session.scalars(
            sa.select(Notification).where(
                Notification.user_id == user.id, Notification.kind == "sub_order_adjusted"
            )
        ).all()
        message, notification_id = notification.message, notification.id
    assert message == (
        f"{news} {details} Kiondo Market accepted your order (their order {sub.display_number})."
    )

    # The e-mail as sent: the news is its subject, the body the whole message.
    email = _claim_email(shop.session_factory, notification_id, settings)
    assert email is not None
    assert str(email["Subject"]) == f"OneCart order {order.number}: {news}"
    assert email.get_content().startswith(message + "\n")

    # The order page: the heading in shillings then dollars, the refund line in the same words.
    for path in (f"/orders/{order.number}", f"/order-status/{order.status_token}"):
        html = client.get(path).get_data(as_text=True)
        assert _heading(html, sub.id) == f"{billed} ({charged} of {paid} paid; the rest refunded)"
        assert (
            f"Refunded {difference} (Kiondo Market did not accept all of your items: left out "
            f"{dropped.title[:60]}; it billed {billed} for the rest, not {asked_kept})"
        ) in text_of(html), text_of(html).split("Your marketplaces", 1)[1][:600]
