"""`flask --app storefront ...` commands: create-admin, db-upgrade, seed-marketplaces."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import sqlalchemy as sa
from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session

from commerce.accounts import authenticate
from commerce.models import Marketplace, User
from onecart.settings import REPO_ROOT


def test_create_admin(runner: FlaskCliRunner, db_session: Session) -> None:
    result = runner.invoke(
        args=["create-admin", "--username", "boss", "--email", "Boss@Example.com"],
        input="Admin-pass-2026\nAdmin-pass-2026\n",
    )
    assert result.exit_code == 0, result.output
    assert "Admin boss created." in result.output
    assert "Admin-pass-2026" not in result.output
    user = authenticate(db_session, "boss@example.com", "Admin-pass-2026")
    assert user is not None and user.is_admin


def test_create_admin_refuses_weak_passwords_and_existing_users(
    runner: FlaskCliRunner, make_user: Callable[..., User], db_session: Session
) -> None:
    weak = runner.invoke(
        args=[
            "create-admin",
            "--username",
            "boss",
            "--email",
            "b@example.com",
            "--password",
            "weak",
        ]
    )
    assert weak.exit_code != 0 and "at least 10" in weak.output

    existing = make_user(username="carol")
    refused = runner.invoke(
        args=[
            "create-admin",
            "--username",
            "carol",
            "--email",
            "c@example.com",
            "--password",
            "Whatever-pass-1",
        ]
    )
    assert refused.exit_code != 0 and "--promote-existing" in refused.output

    promoted = runner.invoke(
        args=[
            "create-admin", "--username", "carol", "--email", "c@example.com",
            "--password", "Whatever-pass-1", "--promote-existing",
        ]
    )  # fmt: skip
    assert promoted.exit_code == 0
    db_session.refresh(existing)
    assert existing.is_admin


def test_db_upgrade_and_seed_marketplaces(runner: FlaskCliRunner, db_session: Session) -> None:
    assert runner.invoke(args=["db-upgrade"]).exit_code == 0
    result = runner.invoke(args=["seed-marketplaces"])
    assert result.exit_code == 0, result.output
    assert "8 created" in result.output
    slugs = set(db_session.scalars(sa.select(Marketplace.slug)))
    assert {
        "shopwave",
        "kiondo",
        "dummymart",
        "fakestore",
        "naijamall",
        "bazaar",
        "amazon",
        "sokoni",
    } == slugs
    again = runner.invoke(args=["seed-marketplaces"])
    assert "0 created" in again.output


def test_flask_finds_the_app_factory_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "storefront", "create-admin", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--promote-existing" in result.stdout


def test_the_deploy_guide_says_how_to_create_the_first_admin(runner: FlaskCliRunner) -> None:
    """Operators read docs/, not the README: the guide gives the command, and it runs as shown
    (the password prompted, never on the command line)."""
    guide = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    [command] = [
        line.strip()
        for line in guide.splitlines()
        if line.strip().startswith(".venv/bin/flask --app storefront create-admin")
    ]
    args = command.split()[3:]  # after ".venv/bin/flask --app storefront"
    assert "--password" not in args

    result = runner.invoke(args=args, input="Admin-pass-2026\nAdmin-pass-2026\n")

    assert result.exit_code == 0, result.output
    assert "--promote-existing" in guide


def test_promoting_an_existing_account_asks_for_no_password_and_says_it_is_kept(
    runner: FlaskCliRunner, make_user: Callable[..., User], db_session: Session
) -> None:
    """--promote-existing prompted for an e-mail and a password (twice), then ignored both and said
    only "is now an admin": an operator who typed a new password believed it was set."""
    existing = make_user(username="dave", email="dave@example.com")
    promoted = runner.invoke(args=["create-admin", "--username", "dave", "--promote-existing"])
    assert promoted.exit_code == 0, promoted.output
    assert "Password" not in promoted.output and "Email" not in promoted.output
    assert "dave is now an admin" in promoted.output
    db_session.refresh(existing)
    assert existing.is_admin

    typed = runner.invoke(
        args=[
            "create-admin", "--username", "dave", "--email", "new@example.com",
            "--password", "Brand-new-pass-77", "--promote-existing",
        ]
    )  # fmt: skip
    assert typed.exit_code == 0, typed.output
    assert "password and e-mail address are unchanged" in typed.output.lower()
    db_session.refresh(existing)
    assert existing.email == "dave@example.com"
    assert authenticate(db_session, "dave", "Brand-new-pass-77") is None

    # A new account still asks for both, the password hidden and twice.
    created = runner.invoke(
        args=["create-admin", "--username", "erin", "--promote-existing"],
        input="erin@example.com\nAdmin-pass-2026\nAdmin-pass-2026\n",
    )
    assert created.exit_code == 0, created.output
    assert "Admin erin created." in created.output and "Admin-pass-2026" not in created.output
    assert authenticate(db_session, "erin@example.com", "Admin-pass-2026") is not None
