"""An e-mail change confirmed by the new address, with the old address told.

The profile form does not change the address at once (commerce.accounts.update_profile with
`confirm_new_email`): the new address waits in `users.pending_email` and gets a link; the old
one gets a notice (no link that changes anything: the notice must be safe to forward). Until
the link is opened the account keeps, and signs in with, its old address.

The link's token is signed like a password-reset token (itsdangerous, SECRET_KEY, its own salt)
and carries the user's id, the new address and a fingerprint of the account's address, pending
address, pending nonce, password hash and session nonce. So it stops working once used (the
address and the pending fields change), when a later change replaces this one (a new nonce),
when the password changes or every device is signed out, and after `EMAIL_CHANGE_MAX_AGE_S`
(counted from `users.pending_email_since` as well as from the token's own time, so the profile,
which shows the change only while `waiting_email_change` returns it, and the link expire together).
Services flush; the caller commits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commerce.accounts import EMAIL_TAKEN_MESSAGE, AccountError, email_in_use
from commerce.mail import one_line
from commerce.models import User, utc_now
from commerce.password_reset import MailSettings

EMAIL_CHANGE_MAX_AGE_S = 24 * 60 * 60
EMAIL_CHANGE_SALT = "onecart-email-change"


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=EMAIL_CHANGE_SALT)


def _fingerprint(user: User) -> str:
    material = (
        f"{user.id}|{user.email}|{user.pending_email}|{user.pending_email_nonce}|"
        f"{user.password_hash}|{user.session_nonce}"
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def waiting_email_change(user: User, *, now: datetime | None = None) -> str | None:
    """The new address still waiting for its link to be opened; None when none waits or the
    request is older than EMAIL_CHANGE_MAX_AGE_S (its link no longer works: the owner asks again)."""
    if not user.pending_email or user.pending_email_since is None:
        return None
    if (now or utc_now()) - user.pending_email_since > timedelta(seconds=EMAIL_CHANGE_MAX_AGE_S):
        return None
    return user.pending_email


def make_email_change_token(user: User, secret_key: str) -> str:
    """The link token confirming `user.pending_email` (which must be set)."""
    if not user.pending_email:
        raise ValueError("no e-mail change is waiting")
    return _serializer(secret_key).dumps(
        {"u": user.id, "e": user.pending_email, "f": _fingerprint(user)}
    )


def user_for_email_change_token(
    session: Session, token: str, secret_key: str, *, max_age_s: int = EMAIL_CHANGE_MAX_AGE_S
) -> User | None:
    """The user whose waiting change a still-valid token confirms; None when forged, expired,
    used, or replaced by a later change."""
    if not token or len(token) > 1024:
        return None
    try:
        payload: Any = _serializer(secret_key).loads(token, max_age=max_age_s)
    except BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        return None
    user = session.get(User, payload["u"])
    if (
        user is None
        or waiting_email_change(user) is None
        or payload.get("e") != user.pending_email
        or payload.get("f") != _fingerprint(user)
    ):
        return None
    return user


def confirm_email_change(session: Session, user: User) -> str:
    """Apply `user`'s waiting address (a compare-and-set on the pending nonce, so two clicks
    racing apply it once); returns the new address. AccountError on `email` when another
    account took the address meanwhile (the change is dropped); LookupError when the change
    was applied or replaced in between."""
    new_email, nonce = user.pending_email, user.pending_email_nonce
    if not new_email or not nonce:
        raise LookupError("no e-mail change is waiting")
    if email_in_use(session, new_email, except_user_id=user.id):
        user.pending_email = user.pending_email_nonce = user.pending_email_since = None
        session.flush()
        raise AccountError({"email": [EMAIL_TAKEN_MESSAGE]})
    try:
        with session.begin_nested():
            applied = session.execute(
                sa.update(User)
                .where(User.id == user.id, User.pending_email_nonce == nonce)
                .values(
                    email=new_email,
                    pending_email=None,
                    pending_email_nonce=None,
                    pending_email_since=None,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
    except IntegrityError as exc:  # taken between the check and the update
        raise AccountError({"email": [EMAIL_TAKEN_MESSAGE]}) from exc
    if applied != 1:
        raise LookupError("the e-mail change was applied or replaced meanwhile")
    session.refresh(user)
    return new_email


def confirm_new_address_email(user: User, link: str, mail: MailSettings) -> EmailMessage:
    """The message to the new address, with the link that applies the change.

    The address is whatever the account typed, anyone's, so the mail holds no text the account
    chose (its first name, its username): otherwise a stranger could have OneCart greet anyone
    with words of their own from its address. The owner knows which account they asked for."""
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = user.pending_email or ""
    message["Subject"] = "Confirm your new OneCart e-mail address"
    hours = EMAIL_CHANGE_MAX_AGE_S // 3600
    message.set_content(
        "Hello,\n\n"
        "Someone (we hope you) asked to use this address for their OneCart account. To "
        f"confirm, open this link within {hours} hours (it works once):"
        f"\n\n{link}\n\n"
        "Until then the account keeps its current address. If it wasn't you, ignore this "
        "e-mail: nothing changes.\n"
    )
    return message


def old_address_notice(user: User, reset_link: str, mail: MailSettings) -> EmailMessage:
    """The message to the account's current address: a change was asked for. It holds no link
    that changes anything, only the way to a new password if it wasn't the owner."""
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = user.email
    message["Subject"] = "Your OneCart e-mail address is about to change"
    message.set_content(
        f"Hello {one_line(user.first_name) or user.username},\n\n"
        f"Someone signed in to your OneCart account ({user.username}) asked to change its "
        f"e-mail address to {user.pending_email}. The change happens only when that address "
        "confirms it; until then your account keeps this one.\n\n"
        "If it wasn't you, someone knows your password: choose a new one now, which also "
        f"cancels the change and signs every device out:\n{reset_link}\n"
    )
    return message
