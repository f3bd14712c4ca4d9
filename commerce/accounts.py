"""Accounts: registration, authentication, password changes and profile edits.

Passwords are hashed with argon2id (argon2-cffi); a hash made with weaker parameters than the
current ones is upgraded at the next successful login. Services flush but never commit: the
caller (a view, a CLI command) owns the transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commerce.models import User, new_session_nonce, utc_now
from onecart.money import is_iso_currency

PASSWORD_MIN_LENGTH = 10
# How long a sign-in lasts, "keep me signed in" or not (the Flask config LOGIN_LIFETIME).
LOGIN_LIFETIME = timedelta(days=30)
# How long a typed password opens the admin area (storefront.admin's gate).
ADMIN_FRESH_SIGN_IN = timedelta(hours=12)
PASSWORD_MAX_LENGTH = 128
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,39}$")
PHONE_PATTERN = re.compile(r"^\+?[0-9 ()./-]{6,24}$")
NAME_MAX_LENGTH = 80
# Control characters (line breaks, tabs, escapes) and the line and paragraph separators.
NAME_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
NAME_CONTROL_MESSAGE = "Use a name without line breaks, tabs or other control characters."
EMAIL_TAKEN_MESSAGE = "An account with this e-mail address already exists."
# A few of the most common passwords that pass the length rule; the point is the obvious ones.
COMMON_PASSWORDS = frozenset(
    {
        "password123",
        "password1234",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "qwerty12345",
        "iloveyou123",
        "letmein1234",
        "welcome123",
        "admin12345",
        "abc1234567",
        "passw0rd123",
        "onecart123",
        "onecart1234",
    }
)

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the login names nobody, so "no such user" costs as much as a wrong
    password (computed on first use, not at import)."""
    return _hasher.hash("onecart-timing-equalizer")


class AccountError(ValueError):
    """Input that cannot be accepted; `errors` maps a form field name to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors: dict[str, list[str]] = {field: list(msgs) for field, msgs in errors.items()}
        super().__init__("; ".join(f"{f}: {' '.join(m)}" for f, m in self.errors.items()))


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """The editable profile fields, as the profile form submits them."""

    first_name: str
    last_name: str
    email: str
    phone_number: str | None
    display_currency: str
    # Required only when the e-mail address changes (it is where password resets go).
    current_password: str = ""


def hash_password(password: str) -> str:
    """An argon2id hash of `password` with the current parameters."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; a damaged hash counts as no match, never as an error."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def normalize_email(email: str) -> str:
    """The address as stored: syntax-checked (no DNS lookups) and lower-cased.

    Raises AccountError on the `email` field when the address is not valid.
    """
    try:
        validated = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountError({"email": [str(exc)]}) from exc
    return validated.normalized.lower()


def password_problems(password: str, *, username: str = "", email: str = "") -> list[str]:
    """Every reason `password` is too weak (empty when it is acceptable)."""
    problems: list[str] = []
    if len(password) < PASSWORD_MIN_LENGTH:
        problems.append(f"Use at least {PASSWORD_MIN_LENGTH} characters.")
    if len(password) > PASSWORD_MAX_LENGTH:
        problems.append(f"Use at most {PASSWORD_MAX_LENGTH} characters.")
    has_letter = any(ch.isalpha() for ch in password)
    has_other = any(not ch.isalpha() for ch in password)
    if not (has_letter and has_other):
        problems.append("Mix letters with digits or symbols.")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(password)) < 4:
        problems.append("This password is too easy to guess.")
    local_part = email.split("@", 1)[0].lower()
    if (username and username.lower() in lowered) or (
        len(local_part) >= 4 and local_part in lowered
    ):
        problems.append("Don't include your username or e-mail address.")
    return problems


def _username_taken(session: Session, username: str, *, except_user_id: int | None = None) -> bool:
    query = sa.select(User.id).where(sa.func.lower(User.username) == username.lower())
    if except_user_id is not None:
        query = query.where(User.id != except_user_id)
    return session.scalar(query.limit(1)) is not None


def email_in_use(session: Session, email: str, *, except_user_id: int | None = None) -> bool:
    """Whether an account (other than `except_user_id`) has the normalized address `email`."""
    query = sa.select(User.id).where(User.email == email)
    if except_user_id is not None:
        query = query.where(User.id != except_user_id)
    return session.scalar(query.limit(1)) is not None


def _check_name(errors: dict[str, list[str]], field: str, value: str) -> None:
    if len(value) > NAME_MAX_LENGTH:
        errors.setdefault(field, []).append(f"Use at most {NAME_MAX_LENGTH} characters.")
    # A name opens OneCart's e-mails ("Hello Ama,"): a line break in it would start a paragraph
    # of the typer's own words there, and no one's name holds one, a tab or an escape.
    if any(unicodedata.category(ch) in NAME_REFUSED_CATEGORIES for ch in value):
        errors.setdefault(field, []).append(NAME_CONTROL_MESSAGE)


def _check_phone(errors: dict[str, list[str]], phone_number: str | None) -> None:
    if phone_number and not PHONE_PATTERN.match(phone_number):
        errors.setdefault("phone_number", []).append(
            "Enter a phone number with digits, spaces and an optional leading +."
        )


@dataclass(frozen=True, slots=True)
class NewAccount:
    """A sign-up that passed every rule, with its password already hashed: what
    `create_account` stores, now or (sign-up by e-mail link) once the address is confirmed."""

    username: str
    email: str
    password_hash: str
    first_name: str = ""
    last_name: str = ""
    phone_number: str | None = None


def check_new_account(
    session: Session,
    *,
    username: str,
    email: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    phone_number: str | None = None,
) -> tuple[NewAccount, bool]:
    """Check every sign-up rule except "the e-mail is free"; returns the account and whether its
    e-mail address already has one. AccountError lists every other problem at once.

    The e-mail's availability is returned rather than raised so that a sign-up confirmed by
    e-mail can answer the same whether or not the address is known (no account enumeration).
    Usernames are public handles (shown beside reviews), so a taken one is reported.
    """
    username = username.strip()
    first_name, last_name = first_name.strip(), last_name.strip()
    phone_number = (phone_number or "").strip() or None
    errors: dict[str, list[str]] = {}
    if not USERNAME_PATTERN.match(username):
        errors["username"] = [
            "Use 3–40 letters, digits, '.', '_' or '-', starting with a letter or digit."
        ]
    elif _username_taken(session, username):
        errors["username"] = ["This username is already taken."]
    normalized_email = ""
    email_taken = False
    try:
        normalized_email = normalize_email(email)
    except AccountError as exc:
        errors.update(exc.errors)
    else:
        email_taken = email_in_use(session, normalized_email)
    problems = password_problems(password, username=username, email=normalized_email or email)
    if problems:
        errors["password"] = problems
    _check_name(errors, "first_name", first_name)
    _check_name(errors, "last_name", last_name)
    _check_phone(errors, phone_number)
    if errors:
        raise AccountError(errors)
    account = NewAccount(
        username=username,
        email=normalized_email,
        password_hash=hash_password(password),
        first_name=first_name,
        last_name=last_name,
        phone_number=phone_number,
    )
    return account, email_taken


def create_account(session: Session, account: NewAccount, *, is_admin: bool = False) -> User:
    """Store a checked account. Flushes so the caller gets an id; the caller commits.
    AccountError when the name or address was taken since it was checked."""
    user = User(
        username=account.username,
        email=account.email,
        password_hash=account.password_hash,
        first_name=account.first_name,
        last_name=account.last_name,
        phone_number=account.phone_number,
        is_admin=is_admin,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent sign-up won the race for the name or address
        session.rollback()
        raise AccountError(
            {"username": ["This username or e-mail address was just taken."]}
        ) from exc
    return user


def register_user(
    session: Session,
    *,
    username: str,
    email: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    phone_number: str | None = None,
    is_admin: bool = False,
) -> User:
    """Create an account after checking every rule; AccountError lists all problems at once.

    The username keeps its case but is unique regardless of case; the e-mail is stored
    lower-case. Flushes so the caller gets an id; the caller commits.
    """
    try:
        account, email_taken = check_new_account(
            session,
            username=username,
            email=email,
            password=password,
            first_name=first_name,
            last_name=last_name,
            phone_number=phone_number,
        )
    except AccountError as exc:
        if _email_taken_for(session, email):
            exc.errors.setdefault("email", []).append(EMAIL_TAKEN_MESSAGE)
        raise
    if email_taken:
        raise AccountError({"email": [EMAIL_TAKEN_MESSAGE]})
    return create_account(session, account, is_admin=is_admin)


def _email_taken_for(session: Session, email: str) -> bool:
    try:
        return email_in_use(session, normalize_email(email))
    except AccountError:
        return False


def find_user_by_login(session: Session, login: str) -> User | None:
    """The user whose username (any case) or e-mail address is `login`."""
    login = login.strip()
    if not login:
        return None
    if "@" in login:
        return session.scalar(sa.select(User).where(User.email == login.lower()))
    return session.scalar(sa.select(User).where(sa.func.lower(User.username) == login.lower()))


def login_account_key(session: Session, login: str) -> str:
    """The rate limiter's account key: the user's id when the login names one (so switching
    between username and e-mail earns no extra attempts), else a hash of the login text."""
    user = find_user_by_login(session, login)
    if user is not None:
        return f"user:{user.id}"
    digest = hashlib.sha256(login.strip().lower().encode()).hexdigest()[:32]
    return f"login:{digest}"


def user_id_of_account_key(account_key: str) -> int | None:
    """The user id a :func:`login_account_key` names (None for a login that names nobody)."""
    prefix, _, number = account_key.partition(":")
    if prefix != "user" or not (number.isascii() and number.isdigit()) or len(number) > 18:
        return None
    return int(number)


def authenticate(session: Session, login: str, password: str) -> User | None:
    """The user when `login` (username or e-mail) and `password` match, else None.

    On success records last_login and upgrades the hash if the argon2 parameters changed.
    """
    user = find_user_by_login(session, login)
    if user is None:
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login = utc_now()
    session.flush()
    return user


def change_password(
    session: Session, user: User, *, current_password: str, new_password: str
) -> None:
    """Replace the password after proving the current one; signs out the user's other sessions.

    (The session nonce in the login cookie rotates; the caller logs the current browser in again.)
    """
    errors: dict[str, list[str]] = {}
    if not verify_password(user.password_hash, current_password):
        errors["current_password"] = ["Your current password is not correct."]
    problems = password_problems(new_password, username=user.username, email=user.email)
    if problems:
        errors["new_password"] = problems
    elif verify_password(user.password_hash, new_password):
        errors["new_password"] = ["Choose a password different from the current one."]
    if errors:
        raise AccountError(errors)
    user.password_hash = hash_password(new_password)
    user.session_nonce = new_session_nonce()
    # A waiting e-mail change is dropped too (its link already stopped working).
    user.pending_email = user.pending_email_nonce = user.pending_email_since = None
    session.flush()


def update_profile(
    session: Session, user: User, changes: ProfileChanges, *, confirm_new_email: bool = False
) -> User:
    """Apply profile edits after checking them all; AccountError lists every problem.

    With `confirm_new_email`, a new address is not applied: it waits in `pending_email` (with a
    fresh nonce, so any earlier change's link stops working) until its owner opens the e-mailed
    link (commerce.email_change); the account keeps, and signs in with, its current address."""
    errors: dict[str, list[str]] = {}
    first_name, last_name = changes.first_name.strip(), changes.last_name.strip()
    phone_number = (changes.phone_number or "").strip() or None
    _check_name(errors, "first_name", first_name)
    _check_name(errors, "last_name", last_name)
    _check_phone(errors, phone_number)
    email = user.email
    try:
        email = normalize_email(changes.email)
    except AccountError as exc:
        errors.update(exc.errors)
    else:
        # The password first: only the account's owner learns whether an address is taken
        # (sign-up and password reset never tell anyone).
        if email != user.email and not verify_password(
            user.password_hash, changes.current_password
        ):
            errors["email_password"] = [
                "Enter your current password to change your e-mail address."
            ]
        elif email_in_use(session, email, except_user_id=user.id):
            errors["email"] = [EMAIL_TAKEN_MESSAGE]
    currency = changes.display_currency.strip().upper()
    if not is_iso_currency(currency):
        errors["display_currency"] = ["Choose a currency from the list."]
    if errors:
        raise AccountError(errors)
    user.first_name = first_name
    user.last_name = last_name
    user.phone_number = phone_number
    if email != user.email and confirm_new_email:
        user.pending_email = email
        user.pending_email_nonce = new_session_nonce()
        user.pending_email_since = utc_now()
    elif email != user.email:
        user.email = email
        user.pending_email = user.pending_email_nonce = user.pending_email_since = None
    user.display_currency = currency
    session.flush()
    return user


def login_session_id(user: User) -> str:
    """What the login cookies (the session's, the "keep me signed in" one) carry for a sign-in
    now: `<id>.<nonce>.<signed in at, Unix seconds>`. The time lets the loader end the sign-in
    after LOGIN_LIFETIME: Flask-Login's remember cookie itself holds no time, so a copy of it
    would otherwise work until the nonce rotates."""
    return f"{user.get_id()}.{int(utc_now().timestamp())}"


def signed_in_at(session_id: str) -> int | None:
    """When the sign-in a login cookie's `<id>.<nonce>.<signed in at>` carries was made (Unix
    seconds), None for anything else."""
    parts = session_id.split(".")
    if len(parts) != 3 or not (parts[2].isascii() and parts[2].isdigit()) or len(parts[2]) > 18:
        return None
    return int(parts[2])


def load_user_by_session_id(
    session: Session, session_id: str, *, lifetime: timedelta = LOGIN_LIFETIME
) -> User | None:
    """The user behind a login cookie's `<id>.<nonce>.<signed in at>`; None once the nonce has
    been rotated (sign-out, a new password), once the sign-in is older than `lifetime`, and for
    a cookie without a sign-in time (made before sign-in times were recorded)."""
    parts = session_id.split(".")
    if len(parts) != 3:
        return None
    user_id_text, nonce, signed_in_text = parts
    # ASCII digits: str.isdigit() also takes "²", which int() refuses.
    if not (
        user_id_text.isascii()
        and user_id_text.isdigit()
        and len(user_id_text) < 19
        and nonce
        and signed_in_text.isascii()
        and signed_in_text.isdigit()
        and len(signed_in_text) < 19
    ):
        return None
    age_s = utc_now().timestamp() - int(signed_in_text)
    if age_s > lifetime.total_seconds():
        return None
    user = session.get(User, int(user_id_text))
    if user is None or not secrets.compare_digest(user.session_nonce, nonce):
        return None
    return user
