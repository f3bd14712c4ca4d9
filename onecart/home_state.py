"""What a OneCart home remembers between commands, and whether a path can be one.

`onecart up` keeps the profile and the service addresses it used under ONECART_HOME/run, so a
later command in another shell (a new terminal, `make down`) reaches the same services: see
:func:`use_remembered_addresses` and :func:`with_profile`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from onecart import services
from onecart.settings import Settings, get_settings


def home_problem(home: Path) -> str | None:
    """Why `home` cannot be OneCart's home, or None. A home that is a file, or under one (a typo,
    the path of warehouse.duckdb), ended every command in a traceback from the first mkdir."""
    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return (
            f"ONECART_HOME={home}: {existing} is not a directory; point ONECART_HOME at a "
            "directory (it is created when missing; default: the checkout's var/)"
        )
    return None


PROFILE_FILE = "profile"
ADDRESSES_FILE = "addresses.json"
# Where the last `up` started the services: a later command in a shell without these variables
# (a new terminal, `make down`) still finds them there, and a second `up` does not start another
# set on the default ports; a variable the shell sets wins. The home itself is not among them:
# it is where this is kept.
ADDRESS_VARIABLES = (
    "ONECART_SITE_HOST",
    "ONECART_SITE_PORT",
    "ONECART_DAGSTER_HOST",
    "ONECART_DAGSTER_PORT",
    "ONECART_SANDBOX_HOST",
    "ONECART_SANDBOX_PORT",
    "ONECART_SANDBOX_URL",
    "MEILI_URL",
    "MEILI_INDEX",
    "STRIPE_API_BASE",
    "REDIS_URL",
    "DATABASE_URL",
)


def remember_addresses(home: Path, environ: Mapping[str, str]) -> None:
    """Keep the address variables `up` was given (mode 0600: REDIS_URL and DATABASE_URL may hold
    a password)."""
    chosen = {name: environ[name] for name in ADDRESS_VARIABLES if name in environ}
    services.write_private_file(home / "run" / ADDRESSES_FILE, json.dumps(chosen, indent=2))


def use_remembered_addresses(home: Path) -> None:
    """Set each address variable the last `up` was given and this shell does not set, so `up`,
    `status`, `ingest`, `logs`, `sql` and `down` reach the services where they run. Set in the
    environment (not only in the settings) so the pipeline and child processes see them too."""
    remembered = home / "run" / ADDRESSES_FILE
    if not remembered.exists():
        return
    try:
        chosen = json.loads(remembered.read_text())
    except (OSError, ValueError):
        return  # unreadable: the shell's own settings, as before any `up`
    missing = {
        name: str(value)
        for name, value in chosen.items()
        if name in ADDRESS_VARIABLES and name not in os.environ
    }
    if missing:
        os.environ.update(missing)
        get_settings.cache_clear()


def with_profile(settings: Settings, requested: str | None) -> Settings:
    """The settings with the profile of `up --profile`, else ONECART_PROFILE when set, else the
    one the last `up` used (so `status` and `down` after `up --profile cluster` see its services)."""
    remembered = settings.home_dir / "run" / PROFILE_FILE
    profile = requested
    if profile is None and "ONECART_PROFILE" not in os.environ and remembered.exists():
        profile = remembered.read_text().strip()
    if profile not in services.PROFILES or profile == settings.profile:
        return settings
    return settings.model_copy(update={"profile": profile})
