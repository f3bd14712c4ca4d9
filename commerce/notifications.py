"""Notifications: what the shopper is told about their orders, in the site and by e-mail.

Every change worth knowing (order received, a sub-order placed, shipped, delayed, delivered,
cancelled, refunded, failed) is one Notification row, written in the same transaction as the
change; so is each price alert (commerce.price_alerts: no order, a `link_path` to the product
instead). One real change is one notification: everything said about the same order within one
transaction (a sub-order delivered, and with it the whole order) is merged into one row, whose
kind becomes the order-level one when there is one; and a notification marked `once` (a status
reached) is never written twice for the same order, sub-order and kind. E-mail is sent
afterwards, only when SMTP is configured (settings.smtp_host): a failed send leaves `emailed_at`
empty and the sweeper tries again a few times. Services flush; callers commit.
"""

from __future__ import annotations

import logging
import re
import smtplib
from collections.abc import Iterable
from datetime import timedelta
from email.message import EmailMessage

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.mail import one_line, open_smtp, send_mail
from commerce.models import User, utc_now
from commerce.notification_models import Notification
from commerce.order_models import Order, SubOrderStatus
from commerce.price_alert_models import PriceAlert, PriceWatch
from onecart.settings import Settings

logger = logging.getLogger(__name__)

MESSAGE_LIMIT = 500
# session.info key: the transaction the notes below belong to, and its note per order.
_TRANSACTION_NOTES = "onecart.notifications.transaction_notes"
MAX_EMAIL_ATTEMPTS = 3
EMAIL_RETRY_WINDOW = timedelta(days=1)
NOTIFICATIONS_PAGE_SIZE = 50
# Longest first sentence a notification e-mail's subject carries (mail clients show ~70-130).
SUBJECT_HEADLINE_LIMIT = 120
# A name cut to fit a subject keeps at least this many characters (then "…").
SHORTEST_CUT_NAME = 4
# A name's own last full stop followed by its sentence's ("… with Acme Ltd.."): not an
# ellipsis ("Wait..."), which a third full stop makes.
_NAME_AND_SENTENCE_FULL_STOPS = re.compile(r"(?<!\.)\.\.(?=\s|$)")
# The order's news that is its last part's made whole (order_shipped after sub_order_shipped).
_ORDER_NEWS_OF_ITS_PARTS = ("order_shipped", "order_delivered")


def notify(
    session: Session,
    order: Order,
    kind: str,
    message: str,
    *,
    sub_order_id: int | None = None,
    once: bool = False,
    lead: bool = False,
    in_order_news: str | None = None,
) -> Notification:
    """Tell the order's shopper about a change (the caller commits).

    Within one transaction the first notification about an order is written and later ones are
    merged into it (their sentence appended; an order-level kind, `order_*`, replaces a sub-order
    one), so one change never reaches the shopper twice. With `once`, an existing notification
    of the same order, sub-order and kind is returned instead of a second one. With `lead`, the
    sentence goes before what was said already instead: it is the news that matters most (the
    order's as a whole, or a part billed less than paid before "… accepted your order"), and a
    notification's first sentence is its e-mail's subject (email_subject).

    A part's news the order's same news follows in this transaction (its last part shipped or
    delivered, and with it the order) is said once, as the order's: the part's sentence is
    dropped, and what of it the shopper still needs (`in_order_news`, a shipped part's carrier
    and tracking number) follows the order's ("Your order … has shipped. Your ShopWave items …
    are with UPS, tracking number 1Z.")."""
    message = with_one_full_stop(message)
    in_order_news = with_one_full_stop(in_order_news) if in_order_news else in_order_news
    pending = _transaction_notes(session)
    earlier = pending.get(order.id)
    if once:
        existing = earlier if earlier is not None and earlier.kind == kind else None
        existing = existing or session.scalar(
            sa.select(Notification)
            .where(
                Notification.order_id == order.id,
                Notification.kind == kind,
                Notification.sub_order_id.is_(None)
                if sub_order_id is None
                else Notification.sub_order_id == sub_order_id,
            )
            .limit(1)
        )
        if existing is not None:
            return existing
    said = _transaction_sentences(session).setdefault(order.id, [])
    if earlier is not None:
        part_news = "sub_" + kind if kind in _ORDER_NEWS_OF_ITS_PARTS else ""
        if not lead and any(said_kind == part_news for said_kind, _, _ in said):
            # The order's news is the part's made whole ("Your ShopWave items … have shipped.
            # They are with UPS, tracking number 1Z. Your order … has shipped."): the order's
            # sentence says it once, followed by what the part's carried. Leading (parts
            # unconfirmed), it says something else, and the part's stays.
            carried = [extra for k, _, extra in said if k == part_news and extra]
            said[:] = [entry for entry in said if entry[0] != part_news]
            # Sentences of their own after the order's: its first sentence is the e-mail's
            # subject, which must not carry (and cut) a carrier's tracking number.
            message = " ".join([message, *carried])
            earlier.message = _clip(" ".join([*(sentence for _, sentence, _ in said), message]))
        elif message not in earlier.message:
            merged = f"{message} {earlier.message}" if lead else f"{earlier.message} {message}"
            earlier.message = _clip(merged)
        said.append((kind, message, in_order_news))
        earlier.kind = _merged_kind(earlier.kind, kind)
        if sub_order_id is not None and earlier.sub_order_id is None:
            earlier.sub_order_id = sub_order_id
        session.flush()
        return earlier
    notification = Notification(
        user_id=order.user_id,
        order_id=order.id,
        sub_order_id=sub_order_id,
        kind=kind,
        message=_clip(message),
        created_at=utc_now(),
    )
    session.add(notification)
    session.flush()
    pending[order.id] = notification
    said[:] = [(kind, message, in_order_news)]
    return notification


def notify_refund_failed(
    session: Session, order: Order, amount: str, *, sub_order_id: int | None
) -> Notification:
    """Tell the shopper a card refund of `amount` (formatted) failed at their bank, once: the
    same words whoever learnt it (Stripe's event, or a reply read after Stripe's failure)."""
    return notify(
        session,
        order,
        "refund_failed",
        f"Your bank did not accept the {amount} refund for order {order.number}. Our team "
        "will contact you to pay it back another way.",
        sub_order_id=sub_order_id,
        once=True,
    )


def notify_refund_refused(
    session: Session, order: Order, amount: str, *, sub_order_id: int | None
) -> Notification:
    """Tell the shopper a card refund of `amount` (formatted) the card payment service refused
    for good, once: they were told it was on its way, and it will not come by itself (the order
    is on the operator's list)."""
    return notify(
        session,
        order,
        "refund_failed",
        f"The card payment service refused the {amount} refund for order {order.number}, so it "
        "has not reached your card. Our team will contact you to pay it back another way.",
        sub_order_id=sub_order_id,
        once=True,
    )


def with_one_full_stop(text: str) -> str:
    """`text` with one full stop where a sentence ends with a name that ends with its own
    ("… placing it with Acme Ltd.", "… left out Levi's 501 Jeans, Made in U.S.A."): the services
    build sentences as f"… {name}.", and every order notification's passes through `notify`."""
    return _NAME_AND_SENTENCE_FULL_STOPS.sub(".", text)


def _merged_kind(earlier: str, later: str) -> str:
    """The kind of a merged notification: the order-level kind when it is the same news for the
    whole order (sub_order_delivered → order_delivered); a sub-order's own news (cancelled)
    keeps its kind even if the order's status moved with it; a general note (cancellation
    requested), or a sub-order note followed by its consequence (placed, then adjusted), takes
    the kind that follows."""
    if earlier.startswith("sub_order_") and later.startswith("order_"):
        same_news = earlier.removeprefix("sub_order_") == later.removeprefix("order_")
        return later if same_news else earlier
    if not earlier.startswith(("order_", "sub_order_")):
        return later
    if earlier.startswith("sub_order_") and later.startswith("sub_order_"):
        return later  # what followed from it (placed, then part of it refunded) is the news
    return earlier


def _clip(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def has_transaction_note(session: Session, order_id: int) -> bool:
    """Whether this transaction already told the shopper something about the order."""
    return order_id in _transaction_notes(session)


def _transaction_notes(session: Session) -> dict[int, Notification]:
    """This transaction's notification per order (a new transaction starts with none)."""
    transaction = session.get_transaction()
    saved = session.info.get(_TRANSACTION_NOTES)
    if saved is None or saved[0] is not transaction:
        saved = (transaction, {}, {})
        session.info[_TRANSACTION_NOTES] = saved
    return saved[1]


def _transaction_sentences(session: Session) -> dict[int, list[tuple[str, str, str | None]]]:
    """This transaction's sentences per order, each with the kind it was said as and what of it
    the order's same news carries (so one the order's news makes redundant can be taken out of
    the merged message)."""
    _transaction_notes(session)  # a new transaction starts with none
    return session.info[_TRANSACTION_NOTES][2]


def unread_count(session: Session, user_id: int) -> int:
    """How many of the user's notifications are unread (the header's badge)."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        )
        or 0
    )


def list_notifications(
    session: Session, user_id: int, *, limit: int = NOTIFICATIONS_PAGE_SIZE
) -> list[Notification]:
    """The user's newest notifications first (their own only)."""
    return list(
        session.scalars(
            sa.select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
        )
    )


def mark_all_read(session: Session, user_id: int) -> int:
    """Mark every unread notification of the user read; returns how many changed."""
    result = session.execute(
        sa.update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utc_now())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def mark_read(session: Session, user_id: int, notification_id: int) -> bool:
    """Mark one of the user's notifications read; False when it is not theirs (or unknown)."""
    result = session.execute(
        sa.update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.user_id == user_id,
            Notification.read_at.is_(None),
        )
        .values(read_at=utc_now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def links_base(settings: Settings) -> str:
    """Where the links in e-mails point: the shop's public address (ONECART_PUBLIC_URL, an
    https:// address production requires while mail is sent), else the address the site serves
    on (a laptop's `onecart up`). Never the bind address in production: `0.0.0.0:5000` is no
    link, and a status link carries the order's token."""
    return (settings.public_url or settings.site_url).rstrip("/")


def email_subject(message: str, order_number: str | None, names: Iterable[str] = ()) -> str:
    """A notification e-mail's subject: its first sentence (the news itself; the kind, such as
    "sub_order_placed", is for the code) and the order's number unless that sentence names it.

    A sentence past SUBJECT_HEADLINE_LIMIT characters is shortened by cutting the `names` in it
    (the order's marketplaces: "Jumia Nigeria…"; a price alert's product title and marketplace)
    before anything else, the longest first, so that its amounts and what became of them stay
    whole ("…; we refunded NGN1,371,742.00 to your OneCart wallet."); only if that is not
    enough is it cut at a word. A full stop inside a name ("Dr. Martens …"), or at its end ("…
    Made in U.S.A. is now $27.00"), ends no sentence; a name that ends one gives it one full
    stop, not two."""
    # One plain line: a marketplace's text in the message (a store's or product's name, a
    # tracking number, a carrier) may hold line breaks, which no header may (Python's email
    # refuses them), other control characters (written into the header raw) or bidi overrides.
    headline = one_line(message)
    # Cleaned as the headline is, so that they are found in it.
    known = [one_line(name) for name in names if one_line(name)]
    end = _first_sentence_end(headline, known)
    if end != -1:
        headline = headline[: end + 1]
    if any(name.endswith(".") and headline.endswith(f"{name}.") for name in known):
        # A name's own full stop ends its sentence too ("… placing it with Acme Ltd.."): one.
        headline = headline[:-1]
    if len(headline) > SUBJECT_HEADLINE_LIMIT:
        headline = _with_names_cut(headline, known)
    if len(headline) > SUBJECT_HEADLINE_LIMIT:
        cut = headline[:SUBJECT_HEADLINE_LIMIT].rsplit(" ", 1)[0].rstrip(" ,;:")
        headline = cut + "…"
    if order_number and order_number not in headline:
        return f"OneCart order {order_number}: {headline}"
    return f"OneCart: {headline}"


def _first_sentence_end(text: str, names: list[str]) -> int:
    """Where `text`'s first sentence ends (the index of its full stop), -1 if it is one
    sentence; a full stop inside one of `names` ("Dr. Martens 1460 Boots") or ending it ("Made in
    U.S.A. is now …") ends none, unless a new sentence follows it: a body says one full stop
    after a name that ends its sentence ("… with Acme Ltd. Acme Ltd. accepted …"), an older
    one two ("U.S.A.."), whose second ends it."""
    inside = [(start, start + len(name)) for name in names for start in _occurrences(text, name)]
    end = text.find(". ")
    while end != -1 and any(
        start <= end < stop and not (end == stop - 1 and text[end + 2 : end + 3].isupper())
        for start, stop in inside
    ):
        end = text.find(". ", end + 1)
    return end


def _occurrences(text: str, part: str) -> list[int]:
    """Every index where `part` starts in `text`."""
    found: list[int] = []
    at = text.find(part)
    while at != -1:
        found.append(at)
        at = text.find(part, at + 1)
    return found


def _with_names_cut(headline: str, names: Iterable[str]) -> str:
    """`headline` with the longest of `names` in it cut (at a word where one is near, to no
    fewer than SHORTEST_CUT_NAME characters, then "…") until it fits SUBJECT_HEADLINE_LIMIT or
    every name is cut."""
    for name in sorted(
        {name for name in names if name and name in headline}, key=len, reverse=True
    ):
        excess = len(headline) - SUBJECT_HEADLINE_LIMIT
        if excess <= 0:
            break
        per_mention = -(-excess // headline.count(name))  # each mention shortened by this much
        keep = max(len(name) - per_mention - 1, SHORTEST_CUT_NAME)  # 1 for the "…"
        if keep >= len(name) - 1:
            continue  # too short to gain anything by cutting
        kept = name[:keep]
        if name[keep] != " " and " " in kept:
            at_word = kept.rsplit(" ", 1)[0]
            kept = at_word if len(at_word) >= SHORTEST_CUT_NAME else kept
        headline = headline.replace(name, kept.rstrip(" ,;:-–—&.") + "…")
    return headline


def _email_for(
    notification: Notification,
    order: Order | None,
    settings: Settings,
    names: Iterable[str] = (),
) -> EmailMessage:
    """The e-mail of a notification; `names` (the order's marketplaces, a price alert's title
    and marketplace) are what its subject cuts first (email_subject)."""
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["Subject"] = email_subject(
        notification.message,
        order.number if order is not None else None,
        names=names,
    )
    lines = [notification.message, ""]
    tracking = _tracking_not_said(notification, order)
    if tracking:
        lines += [tracking, ""]
    base = links_base(settings)
    if order is not None:
        lines.append(f"Follow your order at {base}/order-status/{order.status_token}")
    elif notification.link_path:
        lines.append(f"Open it at {base}{notification.link_path}")
    lines += ["", "— OneCart"]
    message.set_content("\n".join(lines))
    return message


def _tracking_not_said(notification: Notification, order: Order | None) -> str | None:
    """ "ShopWave: UPS, tracking number 1Z999" when the notification's part has shipped with a
    tracking number its message does not give whole (clipped at MESSAGE_LIMIT after merged
    sentences): the body always carries it, the subject never does."""
    if order is None or notification.sub_order_id is None:
        return None
    sub = next((s for s in order.sub_orders if s.id == notification.sub_order_id), None)
    if sub is None or not sub.tracking_number or sub.tracking_number in notification.message:
        return None
    if sub.status not in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED):
        return None
    carrier = sub.carrier or "the carrier"
    return f"{sub.marketplace.name}: {carrier}, tracking number {sub.tracking_number}"


def send_notification_emails(
    session_factory: sessionmaker[Session],
    settings: Settings,
    notification_ids: Iterable[int] | None = None,
    *,
    limit: int = 100,
) -> int:
    """E-mail notifications not sent yet (the given ones, or any recent ones); returns how many
    were sent. Does nothing without SMTP settings. Each send is committed on its own, so a
    failure halfway never re-sends the ones before it."""
    if not settings.smtp_host:
        return 0
    ids = list(notification_ids) if notification_ids is not None else None
    with session_factory() as session:
        query = (
            sa.select(Notification.id)
            .where(
                Notification.emailed_at.is_(None),
                Notification.email_attempts < MAX_EMAIL_ATTEMPTS,
                Notification.created_at >= utc_now() - EMAIL_RETRY_WINDOW,
            )
            .order_by(Notification.id)
            .limit(limit)
        )
        if ids is not None:
            if not ids:
                return 0
            query = query.where(Notification.id.in_(ids))
        pending = list(session.scalars(query))
    sent = 0
    if not pending:
        return 0
    try:
        smtp = open_smtp(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
        )
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("SMTP %s:%s unreachable: %s", settings.smtp_host, settings.smtp_port, exc)
        _count_failed_attempts(session_factory, pending)
        return 0
    try:
        for notification_id in pending:
            email = _claim_email(session_factory, notification_id, settings)
            if email is None:
                continue
            try:
                send_mail(smtp, email)
            except smtplib.SMTPException as exc:
                logger.warning("e-mail for notification %s failed: %s", notification_id, exc)
                continue
            with session_factory() as session, session.begin():
                session.execute(
                    sa.update(Notification)
                    .where(Notification.id == notification_id)
                    .values(emailed_at=utc_now())
                )
            sent += 1
    finally:
        try:
            smtp.quit()
        except smtplib.SMTPException:
            smtp.close()
    return sent


def _claim_email(
    session_factory: sessionmaker[Session], notification_id: int, settings: Settings
) -> EmailMessage | None:
    """Count one attempt with a conditional UPDATE (so two workers never send the same e-mail)
    and build the message; None when another worker claimed it or it was sent already."""
    with session_factory() as session, session.begin():
        notification = session.get(Notification, notification_id)
        if notification is None or notification.emailed_at is not None:
            return None
        claimed = session.execute(
            sa.update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.emailed_at.is_(None),
                Notification.email_attempts == notification.email_attempts,
            )
            .values(email_attempts=notification.email_attempts + 1)
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return None
        # What is sent is the message as claimed: a writer that grows a message not taken yet
        # (commerce.refunds) does so only while no attempt is counted.
        session.refresh(notification)
        user = session.get(User, notification.user_id)
        order = session.get(Order, notification.order_id) if notification.order_id else None
        if user is None:
            return None
        try:
            email = _email_for(
                notification, order, settings, _names_in(session, notification, order)
            )
            email["To"] = user.email
        except ValueError:
            # A header the email package refuses: this notification's attempt stays counted
            # (it is retried MAX_EMAIL_ATTEMPTS times, not for ever) and the others still go.
            logger.exception("e-mail for notification %s could not be written", notification_id)
            return None
        return email


def _names_in(session: Session, notification: Notification, order: Order | None) -> list[str]:
    """The names in a notification's message its e-mail subject may cut: the order's
    marketplaces, or a price alert's product title and marketplace (the watch's title is the
    one its message was written with, commerce.price_alerts.alert_message)."""
    if order is not None:
        return [sub.marketplace.name for sub in order.sub_orders]
    alert = session.execute(
        sa.select(PriceWatch.title, PriceAlert.marketplace_name)
        .join(PriceWatch, PriceWatch.id == PriceAlert.watch_id)
        .where(PriceAlert.notification_id == notification.id)
    ).first()
    return list(alert) if alert is not None else []


def _count_failed_attempts(session_factory: sessionmaker[Session], ids: list[int]) -> None:
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(Notification)
            .where(Notification.id.in_(ids))
            .values(email_attempts=Notification.email_attempts + 1)
        )
