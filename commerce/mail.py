"""The SMTP connection every OneCart e-mail leaves through (password resets, sign-up links,
order notifications, price alerts).

These messages carry credentials (a reset link, a sign-up link, an order's status link), so to
a mail server on another machine they go over TLS: SMTP_SECURITY `starttls` (port 587) upgrades
the connection, `ssl` (port 465) starts in TLS; either way the server's certificate is checked
against SMTP_HOST with the system's trusted CAs. SMTP_USERNAME / SMTP_PASSWORD sign in (what a
mail provider asks for). `none` is plain SMTP, for a relay on the same machine; production
refuses it for any other host (onecart/production.py).
"""

from __future__ import annotations

import email.policy
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Literal

from onecart.bidi import BIDI_CONTROLS

SmtpSecurity = Literal["none", "starttls", "ssl"]
SMTP_TIMEOUT_S = 10.0

# How a message is written on the wire: CRLF, and no header folded below RFC 5322's hard limit of
# 998 characters (78 is a "should"). Python 3.11's folder mangles a subject it folds between
# RFC 2047 encoded words (a space lost or added, "refun d", even a broken base64 word: shopper
# QA, fifth pass), and our subjects are at most ~150 characters (SUBJECT_HEADLINE_LIMIT plus the
# order's number), under 700 encoded, so none is folded. The body keeps the encoding set_content
# chose under the message's own policy (quoted-printable lines of 76).
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


# Whitespace (line breaks, tabs, U+2028/2029 …) and every other control character (C0, DEL, C1):
# none belongs in a header, and a line break in a greeting opens a paragraph of its own.
_NOT_ONE_LINE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def one_line(text: str) -> str:
    """`text` as one plain line, for a header (a subject) or a greeting: each run of whitespace
    and control characters becomes one space, and bidi formatting characters (an override would
    reverse what a mail client shows after it; no markup can isolate them there) are dropped.
    Applied where text is used, not only where it is typed: names stored before they were
    checked (first names before sec9), and the names a marketplace or an admin gives a store or
    a product, are used as they are."""
    return _NOT_ONE_LINE.sub(" ", BIDI_CONTROLS.sub("", text)).strip()


def open_smtp(
    host: str,
    port: int,
    *,
    security: SmtpSecurity = "none",
    username: str | None = None,
    password: str | None = None,
    timeout: float = SMTP_TIMEOUT_S,
) -> smtplib.SMTP:
    """A connection ready to send: TLS as `security` says, signed in when `username` is set.
    OSError / smtplib.SMTPException when the server cannot be reached, its certificate is not
    trusted for `host`, or it refuses the login (the connection is closed then)."""
    context = ssl.create_default_context()
    if security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if security == "starttls":
            smtp.starttls(context=context)
        if username:
            smtp.login(username, password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_mail(smtp: smtplib.SMTP, message: EmailMessage) -> None:
    """Send one message written with WIRE_POLICY, to its To/Cc addresses (what
    smtplib.send_message would take, which writes with the message's own folding policy)."""
    sender = getaddresses([message["From"]])[0][1]
    recipients = [
        address
        for _, address in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))
    ]
    smtp.sendmail(sender, recipients, message.as_bytes(policy=WIRE_POLICY))
