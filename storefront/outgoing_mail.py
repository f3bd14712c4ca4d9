"""The site's outgoing mail: the SMTP settings from the Flask config, and sending after the
answer. Shared by the auth area (reset links, sign-up links) and the account area (e-mail change
links and notices); the messages themselves are written by the services in commerce/."""

from __future__ import annotations

import threading
from email.message import EmailMessage

from flask import current_app

from commerce.password_reset import MailSettings, send_email


def mail_settings() -> MailSettings:
    """The SMTP server and sender configured for this site (no host: mail cannot leave)."""
    config = current_app.config
    return MailSettings(
        host=config.get("SMTP_HOST") or None,
        port=int(config.get("SMTP_PORT") or 25),
        sender=str(config.get("SMTP_SENDER") or ""),
        security=config.get("SMTP_SECURITY") or "none",
        username=config.get("SMTP_USERNAME") or None,
        password=config.get("SMTP_PASSWORD") or None,
    )


def send_in_background(message: EmailMessage, mail: MailSettings) -> None:
    """Send `message` on a thread of its own: an answer must not take longer when, say, the
    address asked about has an account (the time would tell), nor wait on a slow mail server."""
    threading.Thread(target=send_email, args=(message, mail), daemon=True).start()
