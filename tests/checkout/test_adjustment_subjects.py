"""The subject of a "billed less" / "items left out" e-mail keeps its news whole: how much less
was billed and where the difference went, for the longest names and amounts a shopper meets.

shop16 made the adjustment the notification's first sentence (so its e-mail's subject), but the
subject is cut at SUBJECT_HEADLINE_LIMIT (120) characters, and with KES/NGN amounts the sentence
is about that long already: "NaijaMall billed NGN1,111,110.00, less than the NGN1,234,567.00
paid; we refunded NGN123,456.70 to your OneCart…" lost where the money went. A subject now cuts
the marketplace's name before anything else, and the sentence is shorter ("not the … paid"; a
part's items are named after it, not in it). Pure logic: the sentences are built by the same
functions placement uses (acceptance.billed_less_note, sub_order_compensation.adjustment_news,
refunds.refund_said), the amounts by onecart.money."""

from __future__ import annotations

import pytest

from commerce.acceptance import billed_less_note
from commerce.notifications import SUBJECT_HEADLINE_LIMIT, email_subject
from commerce.order_models import Refund, RefundKind, RefundStatus
from commerce.refunds import refund_said
from commerce.sub_order_compensation import adjustment_news
from onecart.money import format_money

ORDER = "OC-20261207-7K3QX9"
# The longest names configured (marketplaces.toml) and a long one an operator may well add.
CONFIGURED_NAMES = ("NaijaMall", "Kiondo Market", "Fake Store Berlin")
LONG_NAME = "Jumia Nigeria Official Electronics Store"
# Large but realistic parts: a few TVs or laptops (8 digits of NGN is about $8,000).
LARGE = {
    "NGN": (12_345_678_00, 13_717_420_00),
    "KES": (9_876_543_21, 10_973_937_00),
    "JPY": (123_456_789, 137_174_210),
}
WALLET = Refund(kind=RefundKind.WALLET_CREDIT, status=RefundStatus.SUCCEEDED)
CARD_REFUND = Refund(kind=RefundKind.CARD_REFUND, status=RefundStatus.PENDING)
RELEASE = Refund(kind=RefundKind.RELEASE, status=RefundStatus.PENDING)
WHERE = {
    "wallet": (WALLET, "to your OneCart wallet."),
    "card refund": (CARD_REFUND, "to your card."),
    "release": (RELEASE, "less."),
}


def _headline(subject: str) -> str:
    assert subject.startswith(f"OneCart order {ORDER}: "), subject
    return subject.removeprefix(f"OneCart order {ORDER}: ")


def _billed_less(name: str, currency: str, where: str) -> tuple[str, list[str]]:
    """The notification's message for a part billed less, and the amounts it must keep."""
    billed, asked = LARGE[currency]
    difference = asked - billed
    refund, _ = WHERE[where]
    amounts = [format_money(amount, currency) for amount in (billed, asked, difference)]
    reason = f"{name} {billed_less_note(billed, asked, currency)}."
    news = adjustment_news(reason, refund, amounts[2])
    return f"{news} {name} accepted your order (their order #88213).", amounts


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("currency", list(LARGE))
@pytest.mark.parametrize("name", [*CONFIGURED_NAMES, LONG_NAME])
def test_a_billed_less_subject_keeps_every_amount_and_where_the_difference_went(
    name: str, currency: str, where: str
) -> None:
    message, amounts = _billed_less(name, currency, where)
    headline = _headline(email_subject(message, ORDER, names=(*CONFIGURED_NAMES, LONG_NAME)))

    assert len(headline) <= SUBJECT_HEADLINE_LIMIT
    for amount in amounts:
        assert amount in headline
    assert headline.endswith(WHERE[where][1])
    # The name is what gives way: whole, or its beginning cut with "…", never dropped.
    shown_name = headline.split(" billed ", 1)[0]
    assert shown_name == name or (
        shown_name.endswith("…") and name.startswith(shown_name.removesuffix("…"))
    )
    assert len(shown_name) >= 4


@pytest.mark.parametrize("currency", list(LARGE))
@pytest.mark.parametrize("name", CONFIGURED_NAMES)
def test_a_configured_marketplace_keeps_its_whole_name_with_large_amounts(
    name: str, currency: str
) -> None:
    """A card refund, the longest "where": the names the shop has today all fit whole."""
    message, _ = _billed_less(name, currency, "card refund")
    headline = _headline(email_subject(message, ORDER, names=CONFIGURED_NAMES))
    assert headline.startswith(f"{name} billed ")
    assert "…" not in headline


def test_a_name_is_cut_only_when_the_news_does_not_fit() -> None:
    billed, asked = 7198, 7998
    reason = f"{LONG_NAME} {billed_less_note(billed, asked, 'USD')}."
    news = adjustment_news(reason, WALLET, "$8.00")
    subject = email_subject(f"{news} Later sentence.", ORDER, names=(LONG_NAME,))
    assert subject == f"OneCart order {ORDER}: {news}"
    assert news == (
        f"{LONG_NAME} billed $71.98, not the $79.98 paid; we refunded $8.00 to your OneCart wallet."
    )


@pytest.mark.parametrize("currency", list(LARGE))
def test_items_left_out_are_named_after_the_news_not_in_it(currency: str) -> None:
    """A part that left items out: "… did not accept all of your items; we refunded …" is the
    subject; which items (long titles, several of them) follow in the next sentence."""
    billed, asked = LARGE[currency]
    difference = format_money(asked - billed, currency)
    details = (
        "It accepted 1 of 3 × Samsung 65-inch QLED 4K Smart TV QA65Q80C (2023 "
        "model) Titan Bl; left out Sony WH-1000XM5 Wireless Noise Cancelling Headphones, Midnight."
    )
    news = adjustment_news(
        f"{LONG_NAME} did not accept all of your items.", WALLET, difference, details=details
    )
    message = f"{news} {LONG_NAME} accepted your order (their order #88213)."
    headline = _headline(email_subject(message, ORDER, names=(LONG_NAME,)))

    assert len(headline) <= SUBJECT_HEADLINE_LIMIT
    assert headline.endswith(
        f" did not accept all of your items; we refunded {difference} to your OneCart wallet."
    )
    assert f"wallet. {details} {LONG_NAME} accepted your order" in message  # items: after


def test_where_a_card_refund_goes_is_said() -> None:
    """ "we are refunding $8.00" said nothing of where; the shopper paid by card."""
    assert refund_said(CARD_REFUND, "$8.00") == "we are refunding $8.00"  # other notes: unchanged
    news = adjustment_news("ShopWave billed $71.98, not the $79.98 paid.", CARD_REFUND, "$8.00")
    assert news.endswith("; we are refunding $8.00 to your card.")


def test_items_named_last_with_a_full_stop_end_their_sentence_with_one() -> None:
    """The items' sentence is "It {notes}.": a title ending with "." (a left-out "Levi's 501
    Jeans, Made in U.S.A.") read "… Made in U.S.A.." in the notification and its e-mail."""
    message = adjustment_news(
        "Kiondo Market did not accept all of your items.",
        WALLET,
        "$5.00",
        details="It left out Levi's 501 Jeans, Made in U.S.A..",
    )

    assert message.endswith(" It left out Levi's 501 Jeans, Made in U.S.A.")
