"""Password reset by e-mail: a signed, expiring, single-use link.

The token is signed with the site's SECRET_KEY (itsdangerous) and carries the user's id plus a
fingerprint of the account's password hash, session nonce and e-mail address. Setting the new
password changes the hash and rotates the nonce, so the token stops working the moment it has
been used (single use without a table of tokens), and so does every older token; an e-mail change
or signing out everywhere voids outstanding links too. Tokens expire after `RESET_TOKEN_MAX_AGE_S`.

The e-mail goes through the same SMTP settings as order notifications (SMTP_HOST, SMTP_PORT,
SMTP_SENDER, SMTP_SECURITY, SMTP_USERNAME, SMTP_PASSWORD; commerce.mail). Services flush; the caller commits.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from commerce.accounts import AccountError, hash_password, password_problems, verify_password
from commerce.mail import SmtpSecurity, one_line, open_smtp, send_mail
from commerce.models import User, new_session_nonce

logger = logging.getLogger(__name__)

RESET_TOKEN_MAX_AGE_S = 60 * 60
RESET_TOKEN_SALT = "onecart-password-reset"


@dataclass(frozen=True, slots=True)
class MailSettings:
    """Where e-mail goes: the notification SMTP setup (commerce.mail). No host: nothing is sent."""

    host: str | None
    port: int
    sender: str
    security: SmtpSecurity = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=RESET_TOKEN_SALT)


def _fingerprint(user: User) -> str:
    material = f"{user.id}|{user.password_hash}|{user.session_nonce}|{user.email}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def make_reset_token(user: User, secret_key: str) -> str:
    """A link token for `user`, valid until used or `RESET_TOKEN_MAX_AGE_S` has passed."""
    return _serializer(secret_key).dumps({"u": user.id, "f": _fingerprint(user)})


def user_for_reset_token(
    session: Session, token: str, secret_key: str, *, max_age_s: int = RESET_TOKEN_MAX_AGE_S
) -> User | None:
    """The user a still-valid token was made for; None when forged, expired or already used."""
    if not token or len(token) > 512:
        return None
    try:
        payload: Any = _serializer(secret_key).loads(token, max_age=max_age_s)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        return None
    user = session.get(User, payload["u"])
    if user is None or payload.get("f") != _fingerprint(user):
        return None
    return user


def find_user_by_email(session: Session, email: str) -> User | None:
    """The account using `email` (compared lower-case), if any."""
    address = email.strip().lower()
    if not address or len(address) > 254:
        return None
    return session.scalar(sa.select(User).where(User.email == address))


def reset_password(session: Session, user: User, new_password: str) -> None:
    """Set a new password and rotate the session nonce: every signed-in device (and every
    outstanding reset link) stops working. AccountError on the `new_password` field."""
    problems = password_problems(new_password, username=user.username, email=user.email)
    if not problems and verify_password(user.password_hash, new_password):
        problems = ["Choose a password different from the current one."]
    if problems:
        raise AccountError({"new_password": problems})
    user.password_hash = hash_password(new_password)
    user.session_nonce = new_session_nonce()
    # A waiting e-mail change is dropped too (its link already stopped working).
    user.pending_email = user.pending_email_nonce = user.pending_email_since = None
    session.flush()


def reset_email(user: User, link: str, mail: MailSettings) -> EmailMessage:
    """The message carrying the reset link."""
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = user.email
    message["Subject"] = "Reset your OneCart password"
    minutes = RESET_TOKEN_MAX_AGE_S // 60
    message.set_content(
        f"Hello {one_line(user.first_name) or user.username},\n\n"
        f"Someone asked to reset the password of your OneCart account. To choose a new one, "
        f"open this link within {minutes} minutes (it works once):\n\n{link}\n\n"
        "If it wasn't you, ignore this e-mail: your password stays as it is.\n"
    )
    return message


def send_email(message: EmailMessage, mail: MailSettings) -> bool:
    """Send one message through the configured SMTP server; False (logged) when it failed."""
    if not mail.host:
        logger.warning("SMTP_HOST is not set: %r was not sent", message["Subject"])
        return False
    try:
        with open_smtp(
            mail.host,
            mail.port,
            security=mail.security,
            username=mail.username,
            password=mail.password,
        ) as smtp:
            send_mail(smtp, message)
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("SMTP %s:%s failed: %s", mail.host, mail.port, exc)
        return False
    return True
