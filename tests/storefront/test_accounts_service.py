"""commerce.accounts without Flask: registration rules, argon2 hashes, login, profile edits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from commerce.accounts import (
    AccountError,
    ProfileChanges,
    authenticate,
    change_password,
    find_user_by_login,
    load_user_by_session_id,
    login_account_key,
    login_session_id,
    password_problems,
    register_user,
    update_profile,
)
from commerce.models import User
from tests.storefront.conftest import DEFAULT_PASSWORD


def test_registration_stores_an_argon2id_hash_and_a_lower_case_email(
    db_session: Session, production_password_hashing: None
) -> None:
    user = register_user(
        db_session, username="Amina", email="Amina.Otieno@Example.COM", password=DEFAULT_PASSWORD
    )
    db_session.commit()

    assert user.password_hash.startswith("$argon2id$")
    # argon2-cffi's recommended parameters (the rest of the suite hashes with the smallest).
    assert not PasswordHasher().check_needs_rehash(user.password_hash)
    assert DEFAULT_PASSWORD not in user.password_hash
    assert user.email == "amina.otieno@example.com"
    assert user.username == "Amina"
    assert user.wallet_currency == "USD" and user.display_currency == "USD"
    assert user.date_joined.tzinfo is not None


def test_registration_reports_every_problem_at_once(db_session: Session) -> None:
    with pytest.raises(AccountError) as caught:
        register_user(db_session, username="x", email="not-an-email", password="short")
    assert set(caught.value.errors) == {"username", "email", "password"}


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [
        ("taken", "other@example.com", "username"),
        ("TAKEN", "other@example.com", "username"),
        ("fresh", "Taken@Example.com", "email"),
    ],
)
def test_username_and_email_are_unique_regardless_of_case(
    db_session: Session, make_user: Callable[..., User], username: str, email: str, field: str
) -> None:
    make_user(username="taken", email="taken@example.com")
    with pytest.raises(AccountError) as caught:
        register_user(db_session, username=username, email=email, password=DEFAULT_PASSWORD)
    assert set(caught.value.errors) == {field}


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("short1", "at least 10"),
        ("onlyletterslong", "Mix letters"),
        ("12345678901", "Mix letters"),
        ("password123", "too easy"),
        ("aaaaaaaaaa1", "too easy"),
        ("amina-rocks-2026", "username"),
    ],
)
def test_weak_passwords_are_explained(password: str, expected: str) -> None:
    problems = password_problems(password, username="amina", email="amina@example.com")
    assert any(expected in problem for problem in problems), problems


def test_a_strong_password_has_no_problems() -> None:
    assert password_problems(DEFAULT_PASSWORD, username="amina", email="amina@example.com") == []


def test_authenticate_by_username_or_email_and_records_last_login(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user(username="Baraka", email="baraka@example.com")
    assert user.last_login is None

    assert authenticate(db_session, "baraka", DEFAULT_PASSWORD) == user
    assert authenticate(db_session, "BARAKA@example.com", DEFAULT_PASSWORD) == user
    assert user.last_login is not None
    assert authenticate(db_session, "baraka", "wrong-password-1") is None
    assert authenticate(db_session, "nobody", DEFAULT_PASSWORD) is None


def test_login_upgrades_a_hash_made_with_weaker_parameters(
    db_session: Session, make_user: Callable[..., User], production_password_hashing: None
) -> None:
    user = make_user()
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(DEFAULT_PASSWORD)
    user.password_hash = weak
    db_session.commit()

    assert authenticate(db_session, user.username, DEFAULT_PASSWORD) == user
    db_session.commit()

    assert user.password_hash != weak
    assert not PasswordHasher().check_needs_rehash(user.password_hash)


def test_a_damaged_hash_fails_login_instead_of_crashing(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    user.password_hash = "not-a-hash"
    db_session.commit()
    assert authenticate(db_session, user.username, DEFAULT_PASSWORD) is None


def test_change_password_needs_the_current_one_and_rotates_the_session_nonce(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    old_session_id = login_session_id(user)
    with pytest.raises(AccountError) as caught:
        change_password(db_session, user, current_password="wrong", new_password="New-pass-4-you")
    assert set(caught.value.errors) == {"current_password"}

    change_password(
        db_session, user, current_password=DEFAULT_PASSWORD, new_password="New-pass-4-you"
    )
    db_session.commit()

    assert authenticate(db_session, user.username, "New-pass-4-you") == user
    assert load_user_by_session_id(db_session, old_session_id) is None
    assert load_user_by_session_id(db_session, login_session_id(user)) == user


def test_change_password_rejects_a_weak_or_unchanged_new_password(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    for new_password in ("weak", DEFAULT_PASSWORD):
        with pytest.raises(AccountError) as caught:
            change_password(
                db_session, user, current_password=DEFAULT_PASSWORD, new_password=new_password
            )
        assert set(caught.value.errors) == {"new_password"}


def test_update_profile_validates_every_field(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    make_user(email="someone@example.com")
    user = make_user()
    with pytest.raises(AccountError) as caught:
        update_profile(
            db_session,
            user,
            ProfileChanges(
                first_name="A" * 81,
                last_name="",
                email="SOMEONE@example.com",
                phone_number="call me maybe",
                display_currency="XXQ",
                current_password=DEFAULT_PASSWORD,
            ),
        )
    assert set(caught.value.errors) == {"first_name", "email", "phone_number", "display_currency"}
    # Without the password the address's owner is not told it is taken: only the password is.
    with pytest.raises(AccountError) as caught:
        update_profile(
            db_session,
            user,
            ProfileChanges(
                first_name="Wanjiru",
                last_name="",
                email="SOMEONE@example.com",
                phone_number=None,
                display_currency="USD",
            ),
        )
    assert set(caught.value.errors) == {"email_password"}

    update_profile(
        db_session,
        user,
        ProfileChanges(
            first_name=" Wanjiru ",
            last_name="Kamau",
            email="Wanjiru@Example.com",
            phone_number="+254 712 345 678",
            display_currency="kes",
            current_password=DEFAULT_PASSWORD,  # a new e-mail needs the password (issue 12)
        ),
    )
    db_session.commit()
    assert (user.first_name, user.email, user.display_currency) == (
        "Wanjiru",
        "wanjiru@example.com",
        "KES",
    )


def test_account_key_is_the_same_for_username_and_email(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user(username="chidi", email="chidi@example.com")
    assert login_account_key(db_session, "Chidi") == f"user:{user.id}"
    assert login_account_key(db_session, "chidi@example.com") == f"user:{user.id}"
    unknown = login_account_key(db_session, "ghost")
    assert unknown.startswith("login:") and "ghost" not in unknown
    assert find_user_by_login(db_session, "  ") is None


@pytest.mark.parametrize(
    "forged", ["².nonce.1700000000", "1.nonce.²", "٣.nonce.1700000000", "1" * 5000 + ".n.1"]
)
def test_a_forged_login_cookie_with_other_digits_is_no_one(
    db_session: Session, forged: str
) -> None:
    # str.isdigit() takes "²" and "٣" for digits; int() refuses "²" (a 500 before) and would
    # read "٣" as 3.
    assert load_user_by_session_id(db_session, forged) is None
