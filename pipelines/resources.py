"""Dagster resources: everything the assets talk to, configured from OneCart's settings.

Nothing here reads configuration at import time: :func:`build_resources` takes a Settings object
when the definitions are loaded, and tests pass resources pointing at their own temporary state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import meilisearch

import warehouse
from adapters.base import MarketplaceAdapter, MarketplaceConfig
from adapters.registry import build_adapter, load_marketplaces
from onecart.settings import Settings
from warehouse.connection import LOCK_TIMEOUT_S
from warehouse.fx_rates import (
    OFFLINE_RATES_DIR,
    RateTable,
    fetch_rates,
    load_offline_rates,
    merge_rate_tables,
)

MEILI_CLIENT_TIMEOUT_S = 60


class WarehouseResource(dg.ConfigurableResource):
    """The pipeline's DuckDB file (private to Dagster) and the analysts' published copy."""

    pipeline_db_path: str
    published_path: str
    lock_timeout_s: float = LOCK_TIMEOUT_S

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection under the warehouse lock (see warehouse.connect)."""
        with warehouse.connect(
            self.pipeline_db_path, read_only=read_only, lock_timeout=self.lock_timeout_s
        ) as conn:
            yield conn

    def publish(self) -> warehouse.PublishResult:
        """Build and atomically swap in the analysts' read-only copy."""
        return warehouse.publish(self.pipeline_db_path, self.published_path)

    def staging_path(self, marketplace: str, run_id: str) -> Path:
        """Where a raw fetch is staged before it is loaded (beside the DuckDB file)."""
        return (
            Path(self.pipeline_db_path).parent / "staging" / f"raw-{marketplace}-{run_id}.parquet"
        )


class MarketplacesResource(dg.ConfigurableResource):
    """marketplaces.toml, with ${ONECART_SANDBOX_URL} resolved, and an adapter per marketplace."""

    marketplaces_file: str
    sandbox_url: str

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "ONECART_SANDBOX_URL": self.sandbox_url}

    def configs(self) -> list[MarketplaceConfig]:
        """Every active marketplace, in file order."""
        return [
            config
            for config in load_marketplaces(Path(self.marketplaces_file), self._environment())
            if config.active
        ]

    def config_for(self, slug: str) -> MarketplaceConfig:
        """One marketplace's configuration; KeyError names the slug when it is not configured."""
        for config in self.configs():
            if config.slug == slug:
                return config
        raise KeyError(f"marketplace {slug!r} is not in {self.marketplaces_file} (or inactive)")

    def adapter_for(self, slug: str) -> MarketplaceAdapter:
        """A fresh adapter (and HTTP client) for one marketplace."""
        return build_adapter(self.config_for(slug))


class FxRatesResource(dg.ConfigurableResource):
    """Where exchange rates come from: ONECART_FX_RATES_URL when set, else the bundled files."""

    rates_url: str | None = None
    offline_dir: str = str(OFFLINE_RATES_DIR)

    def load(self) -> tuple[RateTable, list[str]]:
        """The rates to use, and warnings (a configured URL that failed falls back to the files,
        because stale rates only shift sort order while no rates would stop the whole pipeline)."""
        warnings: list[str] = []
        offline = load_offline_rates(Path(self.offline_dir))
        if not self.rates_url:
            return offline, warnings
        try:
            fetched = fetch_rates(self.rates_url)
        except Exception as exc:  # any failure of the optional live source: use the files
            warnings.append(f"{self.rates_url}: {type(exc).__name__}: {exc}; using bundled rates")
            return offline, warnings
        # Live rates first; the bundled files fill in currencies the source does not publish.
        return merge_rate_tables([fetched, offline]), warnings


class SearchIndexResource(dg.ConfigurableResource):
    """The Meilisearch server and the uid of the products index."""

    url: str
    api_key: str
    index_uid: str

    def client(self) -> meilisearch.Client:
        """A client with the master key: the pipeline creates, swaps and fills indexes."""
        return meilisearch.Client(self.url, self.api_key, timeout=MEILI_CLIENT_TIMEOUT_S)


class StorefrontDatabaseResource(dg.ConfigurableResource):
    """The storefront's SQL database (SQLite file by default, PostgreSQL via DATABASE_URL)."""

    database_url: str


def build_resources(settings: Settings) -> Mapping[str, Any]:
    """Every resource the assets need, configured from `settings`."""
    return {
        "warehouse": WarehouseResource(
            pipeline_db_path=str(settings.pipeline_db_path),
            published_path=str(settings.warehouse_path),
        ),
        "marketplaces": MarketplacesResource(
            marketplaces_file=str(settings.marketplaces_file),
            sandbox_url=os.environ.get("ONECART_SANDBOX_URL") or settings.sandbox_url,
        ),
        "fx_source": FxRatesResource(rates_url=settings.fx_rates_url or None),
        "search_index": SearchIndexResource(
            url=settings.meili_url,
            api_key=settings.meili_master_key,
            index_uid=settings.meili_index,
        ),
        "storefront_db": StorefrontDatabaseResource(database_url=settings.storefront_database_url),
    }
