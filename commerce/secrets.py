"""Marketplace API keys at rest: Fernet-encrypted with settings.encryption_key, shown masked only.

Nothing here logs or returns a plain key except :func:`decrypt_secret`, which the adapters'
caller uses to talk to the marketplace.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

MASK = "••••"
VISIBLE_SUFFIX = 4
# Keys shorter than this show no characters at all: four of six would reveal most of the key.
MIN_LENGTH_TO_SHOW_SUFFIX = 12


class SecretError(ValueError):
    """An encrypted value that cannot be read with the configured key."""


def _fernet(key: str | None = None) -> Fernet:
    if key is None:
        from onecart.settings import get_settings

        key = get_settings().encryption_key
    try:
        return Fernet(key.encode())
    except ValueError as exc:  # the message never contains the key itself
        raise SecretError("ONECART_ENCRYPTION_KEY is not a valid Fernet key") from exc


def encrypt_secret(plain: str, *, key: str | None = None) -> str:
    """A Fernet token for `plain` (text), safe to store in the database."""
    return _fernet(key).encrypt(plain.encode()).decode()


def decrypt_secret(token: str, *, key: str | None = None) -> str:
    """The plain secret behind a token; SecretError when the key changed or the token is damaged."""
    try:
        return _fernet(key).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretError("cannot decrypt: wrong ONECART_ENCRYPTION_KEY or damaged token") from exc


def mask_secret(plain: str | None) -> str:
    """ "••••1234" for a long key, "••••" for a short one, "" when there is none."""
    if not plain:
        return ""
    if len(plain) < MIN_LENGTH_TO_SHOW_SUFFIX:
        return MASK
    return MASK + plain[-VISIBLE_SUFFIX:]


def mask_encrypted_secret(token: str | None, *, key: str | None = None) -> str:
    """The masked form of an encrypted key; "•••• (unreadable)" when it cannot be decrypted."""
    if not token:
        return ""
    try:
        return mask_secret(decrypt_secret(token, key=key))
    except SecretError:
        return f"{MASK} (unreadable)"
