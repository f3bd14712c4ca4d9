"""Support tickets: what the support form stores, and who may read a ticket."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.accounts import AccountError, normalize_email
from commerce.models import SupportTicket, User

# Crockford-style alphabet without 0/O, 1/I/L, so a reference read over the phone is unambiguous.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_LENGTH = 8
REFERENCE_PREFIX = "SUP-"
MESSAGE_MIN_LENGTH = 10
MESSAGE_MAX_LENGTH = 5000
SUBJECT_MAX_LENGTH = 200
ORDER_NUMBER_MAX_LENGTH = 40
NAME_MAX_LENGTH = 120


class SupportError(AccountError):
    """Support-form input that cannot be accepted; `errors` maps fields to messages."""


def new_ticket_reference() -> str:
    """A short, unguessable, easy-to-read reference such as SUP-7KQ2M9XD."""
    return REFERENCE_PREFIX + "".join(
        secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH)
    )


def create_ticket(
    session: Session,
    *,
    name: str,
    email: str,
    message: str,
    subject: str = "",
    order_number: str | None = None,
    user: User | None = None,
) -> SupportTicket:
    """Store a support request and return it; its `reference` is what the shopper quotes."""
    name, message, subject = name.strip(), message.strip(), subject.strip()
    order_number = (order_number or "").strip() or None
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Tell us your name."]
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = [f"Use at most {NAME_MAX_LENGTH} characters."]
    normalized_email = ""
    try:
        normalized_email = normalize_email(email)
    except AccountError as exc:
        errors.update(exc.errors)
    if len(message) < MESSAGE_MIN_LENGTH:
        errors["message"] = [f"Describe the problem in at least {MESSAGE_MIN_LENGTH} characters."]
    elif len(message) > MESSAGE_MAX_LENGTH:
        errors["message"] = [f"Keep the message under {MESSAGE_MAX_LENGTH} characters."]
    if len(subject) > SUBJECT_MAX_LENGTH:
        errors["subject"] = [f"Use at most {SUBJECT_MAX_LENGTH} characters."]
    if order_number and len(order_number) > ORDER_NUMBER_MAX_LENGTH:
        errors["order_number"] = [f"Use at most {ORDER_NUMBER_MAX_LENGTH} characters."]
    if errors:
        raise SupportError(errors)
    reference = new_ticket_reference()
    # A collision is ~1 in 650 billion per pair; checking first keeps the odds of an
    # IntegrityError out of the shopper's way without a savepoint (unreliable on pysqlite).
    while (
        session.scalar(sa.select(SupportTicket.id).where(SupportTicket.reference == reference))
        is not None
    ):
        reference = new_ticket_reference()
    ticket = SupportTicket(
        reference=reference,
        user_id=user.id if user is not None else None,
        name=name,
        email=normalized_email,
        order_number=order_number,
        subject=subject or message.splitlines()[0][:80],
        message=message,
    )
    session.add(ticket)
    session.flush()
    return ticket


def list_user_tickets(session: Session, user: User) -> list[SupportTicket]:
    """The user's own tickets, newest first."""
    return list(
        session.scalars(
            sa.select(SupportTicket)
            .where(SupportTicket.user_id == user.id)
            .order_by(SupportTicket.created_at.desc(), SupportTicket.id.desc())
        )
    )


def find_user_ticket(session: Session, user: User, reference: str) -> SupportTicket | None:
    """The ticket with `reference` if it belongs to `user`; None for anyone else's."""
    return session.scalar(
        sa.select(SupportTicket).where(
            SupportTicket.reference == reference.strip().upper(),
            SupportTicket.user_id == user.id,
        )
    )
