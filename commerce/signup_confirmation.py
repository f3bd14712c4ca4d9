"""Sign-up confirmed by e-mail: the answer to a sign-up never tells whether an address has an
account.

With confirmation on (the default in production), a sign-up that passes every rule is kept in
Redis for `PENDING_SIGNUP_TTL_S` under a random token, and a link carrying the token is e-mailed
to the address. When the address already has an account, its owner gets a "you already have an
account" e-mail instead, with links to log in and to reset the password. Either way the shopper
sees the same "check your inbox" page, so the form cannot be used to learn who shops here.

Opening the link shows a button (a POST: mail scanners open links, they do not submit forms);
submitting it claims the pending sign-up once (GETDEL) and creates the account. Only a hash of the
token is used as the Redis key, so a dump of Redis does not hold working links.

The pending sign-up holds the argon2 hash of the password, never the password itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from email.message import EmailMessage

import redis

from commerce.accounts import NewAccount
from commerce.mail import one_line
from commerce.models import User
from commerce.password_reset import MailSettings

PENDING_SIGNUP_TTL_S = 24 * 60 * 60
TOKEN_BYTES = 32


def _key(prefix: str, token: str) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"{prefix}signup:{digest}"


def stash_pending_signup(client: redis.Redis, prefix: str, account: NewAccount) -> str:
    """Keep `account` until its address is confirmed; returns the link's token."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    client.set(
        _key(prefix, token), json.dumps(dataclasses.asdict(account)), ex=PENDING_SIGNUP_TTL_S
    )
    return token


def pending_signup_exists(client: redis.Redis, prefix: str, token: str) -> bool:
    """Whether the link still works (not used, not expired); does not use it up."""
    return len(token) <= 128 and bool(client.exists(_key(prefix, token)))


def claim_pending_signup(client: redis.Redis, prefix: str, token: str) -> NewAccount | None:
    """The pending sign-up behind `token`, removed in the same step (a link works once);
    None when the link was used, expired or never existed."""
    if len(token) > 128:
        return None
    raw = client.getdel(_key(prefix, token))
    if raw is None:
        return None
    return NewAccount(**json.loads(raw))


def confirm_signup_email(address: str, link: str, mail: MailSettings) -> EmailMessage:
    """The message with the link that finishes a sign-up."""
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = address
    message["Subject"] = "Confirm your OneCart account"
    hours = PENDING_SIGNUP_TTL_S // 3600
    message.set_content(
        "Hello,\n\n"
        "Someone (we hope you) asked to create a OneCart account with this address. To finish, "
        f"open this link within {hours} hours (it works once):\n\n{link}\n\n"
        "If it wasn't you, ignore this e-mail: no account is created.\n"
    )
    return message


def existing_account_email(
    user: User, login_link: str, reset_link: str, mail: MailSettings
) -> EmailMessage:
    """The message sent instead when the address already has an account."""
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = user.email
    message["Subject"] = "You already have a OneCart account"
    message.set_content(
        f"Hello {one_line(user.first_name) or user.username},\n\n"
        "Someone (we hope you) tried to create a OneCart account with this address, which "
        f"already has one (username: {user.username}).\n\n"
        f"Log in: {login_link}\n"
        f"Forgot your password? Choose a new one: {reset_link}\n\n"
        "If it wasn't you, ignore this e-mail: nothing has changed.\n"
    )
    return message
