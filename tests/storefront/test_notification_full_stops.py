"""A marketplace's or product's name ending with "." ("Acme Ltd.", "… Made in U.S.A.") at the
end of one of a notification's sentences: the body reads one full stop, as the subject already
did (shop20), on the notifications page and in the e-mail, whichever service built the sentence.
Real database and a local SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from email.header import decode_header, make_header
from typing import Any

from sqlalchemy.orm import Session

from commerce.db import get_session_factory
from commerce.models import Marketplace, User
from commerce.notifications import email_subject, notify, send_notification_emails
from commerce.order_models import OrderStatus, PaymentMethod
from onecart.settings import Settings
from storefront import format_money
from tests.storefront.order_factories import add_order, add_sub_order


def test_a_name_ending_a_sentence_gives_the_body_one_full_stop_and_the_subject_its_sentence(
    db_session: Session,
    storefront_db_url: str,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> None:
    """Sentences as checkout and placement build them ("… placing it with {markets}.", "{name}
    accepted …"), merged into one notification: the body read "… with Acme Ltd.. Acme Ltd.
    accepted …" on the page and in the e-mail."""
    acme = make_marketplace(name="Acme Ltd.", currency="USD")
    user = make_user()
    order = add_order(
        db_session,
        user,
        status=OrderStatus.PROCESSING,
        total_minor=500,
        payment_method=PaymentMethod.WALLET,
    )
    sub = add_sub_order(db_session, order, acme, amount_minor=500)
    amount = format_money(500, "USD")

    note = notify(
        db_session,
        order,
        "order_received",
        f"We received order {order.number} ({amount}) and are placing it with {acme.name}.",
    )
    notify(
        db_session,
        order,
        "sub_order_placed",
        f"{acme.name} accepted your order (their order #A-1). Items from {acme.name}.",
        sub_order_id=sub.id,
    )
    db_session.commit()

    expected = (
        f"We received order {order.number} ({amount}) and are placing it with Acme Ltd. "
        "Acme Ltd. accepted your order (their order #A-1). Items from Acme Ltd."
    )
    assert note.message == expected
    port, received = mailbox
    factory = get_session_factory(storefront_db_url)
    mail_settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    assert send_notification_emails(factory, mail_settings, [note.id]) == 1
    body = str(received[-1].get_payload(decode=True).decode())
    assert expected in body and ".." not in body
    subject = str(make_header(decode_header(received[-1]["Subject"])))
    assert subject == (
        f"OneCart: We received order {order.number} ({amount}) and are placing it with Acme Ltd."
    )


def test_a_name_s_full_stop_inside_a_sentence_is_not_its_end_and_an_ellipsis_stays() -> None:
    """The subject still reads a name's full stop followed by more of its sentence as part of
    it ("… Made in U.S.A. is now $27.00"), and ends where a new sentence follows it."""
    names = ("Levi's 501 Jeans, Made in U.S.A.", "Acme Ltd.")
    assert (
        email_subject(
            "Price drop: Levi's 501 Jeans, Made in U.S.A. is now $27.00. More.", None, names
        )
        == "OneCart: Price drop: Levi's 501 Jeans, Made in U.S.A. is now $27.00."
    )
    assert (
        email_subject("Placing it with Acme Ltd. Acme Ltd. accepted it.", None, names)
        == "OneCart: Placing it with Acme Ltd."
    )
