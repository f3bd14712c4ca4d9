"""`flask --app storefront <command>`: create an admin, migrate the DB, seed marketplaces."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from commerce.accounts import AccountError, find_user_by_login, register_user
from storefront.database import session_factory


@click.command("create-admin")
@with_appcontext
@click.option("--username", prompt=True, help="The admin's username.")
@click.option("--email", help="The admin's e-mail address (prompted when omitted).")
@click.option(
    "--password",
    help="Prompted (hidden, twice) when omitted; avoid passing it on a shared machine's command "
    "line.",
)
@click.option(
    "--promote-existing",
    is_flag=True,
    help="If the username (or e-mail) already has an account, make that account an admin "
    "instead of failing; its password and e-mail address stay as they are.",
)
def create_admin_command(
    username: str, email: str | None, password: str | None, promote_existing: bool
) -> None:
    """Create an admin account (or promote an existing one with --promote-existing)."""
    session = session_factory()()
    try:
        existing = find_user_by_login(session, username)
        if existing is not None:
            if not promote_existing:
                raise click.ClickException(
                    f"user {username!r} already exists (use --promote-existing to make it an admin)"
                )
            # Asked only for a new account: an existing one keeps its credentials, and saying
            # so stops an operator believing a typed password was set.
            existing.is_admin = True
            session.commit()
            kept = (
                " Its password and e-mail address are unchanged (--password and --email are "
                "used only for a new account)."
                if password is not None or email is not None
                else ""
            )
            click.echo(f"{existing.username} is now an admin.{kept}")
            return
        if email is None:
            email = click.prompt("Email")
        if password is None:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            user = register_user(
                session, username=username, email=email, password=password, is_admin=True
            )
        except AccountError as exc:
            raise click.ClickException(str(exc)) from exc
        session.commit()
        click.echo(f"Admin {user.username} created.")
    finally:
        session.close()


@click.command("db-upgrade")
@with_appcontext
def db_upgrade_command() -> None:
    """Apply pending migrations to the storefront database."""
    from storefront.db_migrate import upgrade_database

    upgrade_database(current_app.config["DATABASE_URL"])
    click.echo("Storefront database is up to date.")


@click.command("seed-marketplaces")
@with_appcontext
def seed_marketplaces_command() -> None:
    """Create or refresh marketplaces from marketplaces.toml (admin edits are kept)."""
    from adapters.registry import load_marketplaces
    from commerce.catalog_sync import seed_marketplaces

    session = session_factory()()
    try:
        report = seed_marketplaces(session, load_marketplaces())
        session.commit()
    finally:
        session.close()
    click.echo(
        f"Marketplaces: {report.marketplaces_created} created, "
        f"{report.marketplaces_updated} updated."
    )


def register_cli(app: Flask) -> None:
    """Attach the storefront's commands to `flask --app storefront`."""
    app.cli.add_command(create_admin_command)
    app.cli.add_command(db_upgrade_command)
    app.cli.add_command(seed_marketplaces_command)
