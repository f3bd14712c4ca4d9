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

import smtplib
import ssl
from typing import Literal

SmtpSecurity = Literal["none", "starttls", "ssl"]
SMTP_TIMEOUT_S = 10.0


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
