"""API keys encrypted at rest and masked, and the support ticket service."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from commerce.models import Marketplace, User
from commerce.secrets import (
    SecretError,
    decrypt_secret,
    encrypt_secret,
    mask_encrypted_secret,
    mask_secret,
)
from commerce.support import (
    REFERENCE_ALPHABET,
    SupportError,
    create_ticket,
    find_user_ticket,
    list_user_tickets,
)


def test_api_keys_round_trip_and_the_token_does_not_contain_the_key() -> None:
    token = encrypt_secret("shpat_live_1234567890abcd")
    assert "shpat" not in token
    assert decrypt_secret(token) == "shpat_live_1234567890abcd"


def test_a_token_from_another_key_is_an_error_not_garbage() -> None:
    token = encrypt_secret("secret-value-123456", key=Fernet.generate_key().decode())
    with pytest.raises(SecretError):
        decrypt_secret(token)
    assert mask_encrypted_secret(token) == "•••• (unreadable)"


@pytest.mark.parametrize(
    ("plain", "masked"),
    [("abcdefghijkl1234", "••••1234"), ("short-key", "••••"), ("", ""), (None, "")],
)
def test_masking_shows_at_most_the_last_four_characters(plain: str | None, masked: str) -> None:
    assert mask_secret(plain) == masked


def test_marketplace_masked_key_property(
    make_marketplace: Callable[..., Marketplace],
) -> None:
    marketplace = make_marketplace(api_key_encrypted=encrypt_secret("ck_1234:cs_99998888"))
    assert marketplace.masked_api_key == "••••8888"
    assert marketplace.has_api_key


def test_create_ticket_returns_a_readable_unique_reference(db_session: Session) -> None:
    references = set()
    for number in range(5):
        ticket = create_ticket(
            db_session,
            name="Guest",
            email="Guest@Example.com",
            message=f"My parcel number {number} never arrived.",
        )
        references.add(ticket.reference)
        assert ticket.reference.startswith("SUP-")
        assert set(ticket.reference[4:]) <= set(REFERENCE_ALPHABET)
        assert ticket.email == "guest@example.com"
        assert ticket.user_id is None and ticket.status == "open"
        assert ticket.subject.startswith("My parcel number")
    db_session.commit()
    assert len(references) == 5


def test_ticket_validation_lists_every_problem(db_session: Session) -> None:
    with pytest.raises(SupportError) as caught:
        create_ticket(db_session, name=" ", email="nope", message="short", order_number="x" * 41)
    assert set(caught.value.errors) == {"name", "email", "message", "order_number"}


def test_users_find_only_their_own_tickets(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    owner, other = make_user(), make_user()
    ticket = create_ticket(
        db_session,
        name="Owner",
        email=owner.email,
        message="Where is order OC-123?",
        order_number="OC-123",
        user=owner,
    )
    db_session.commit()

    assert list_user_tickets(db_session, owner) == [ticket]
    assert list_user_tickets(db_session, other) == []
    assert find_user_ticket(db_session, owner, ticket.reference.lower()) == ticket
    assert find_user_ticket(db_session, other, ticket.reference) is None
