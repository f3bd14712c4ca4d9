"""The marketplace partitions: one per active marketplace in marketplaces.toml."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from adapters.registry import load_marketplaces
from onecart.settings import Settings

if TYPE_CHECKING:
    import dagster as dg


def marketplace_slugs(settings: Settings) -> list[str]:
    """The active marketplaces' slugs, in file order (read when the definitions are built)."""
    env = {**os.environ}
    env.setdefault("ONECART_SANDBOX_URL", settings.sandbox_url)
    return [
        config.slug
        for config in load_marketplaces(settings.marketplaces_file, env)
        if config.active
    ]


def build_marketplace_partitions(settings: Settings) -> dg.StaticPartitionsDefinition:
    """Static partitions over the configured marketplaces; adding one to marketplaces.toml
    shows up when Dagster reloads the code location."""
    import dagster as dg  # not for marketplace_slugs: `onecart status` reads them without Dagster

    return dg.StaticPartitionsDefinition(marketplace_slugs(settings))
