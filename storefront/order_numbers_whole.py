"""Order numbers inside the site's sentences, kept on one line.

A number such as OC-7K3M-9Q2P may break at its hyphen where a line ends ("… order OC-7K3M-" and
"9Q2P" on the next line reads as two numbers). Headings and links wrap the number in
`.keep-together` themselves; sentences built by the services (notifications, flashes, a
cancellation's answers) carry it as plain text, which :func:`order_numbers_whole` escapes and
wraps the same way.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from commerce.order_models import ORDER_NUMBER_IN_TEXT


def order_numbers_whole(text: object) -> Markup:
    """`text` escaped, each order number in it in a `.keep-together` span (white-space: nowrap).

    The number's own characters never need escaping, so it is found in the escaped text."""
    escaped = str(escape(text))
    return Markup(
        ORDER_NUMBER_IN_TEXT.sub(
            lambda found: f'<span class="keep-together">{found[0]}</span>', escaped
        )
    )
