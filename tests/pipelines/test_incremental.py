"""An incremental refresh gives exactly the tables a full run gives over the same data.

Two pipeline homes hold the same first ingest of two marketplaces (declarative JSON APIs served
over real HTTP by a small server this module controls, through real Dagster materializations;
the second home starts from a copy of the first one's warehouse, which is what its own first run
would have written). Then the catalog changes prices, availability, titles, identifiers, removes
offers, adds new ones and moves a duplicate id; one home refreshes incrementally (only records
with a new payload are stored and read again, with the records their external ids tie them to),
the other with `full_refresh`. products, rejected_products,
product_groups and price_history must then be identical; timestamps, which differ between the
runs' wall clocks, are compared as "set by the first run" or "by the second".
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import dagster as dg
import pytest

import warehouse
from onecart.settings import Settings, get_settings
from pipelines.run import IngestReport, dagster_instance, materialize_all
from tests.pipelines.conftest import clear_settings_caches

PAGE_SIZE = 20
# The tables compared; the search index and the analysts' copy are covered elsewhere.
DOWNSTREAM_UNDER_TEST = ("fx_rates", "product_groups", "price_history")
# Four pipeline runs on a shared two-core machine: a hang guard, not a speed requirement.
pytestmark = pytest.mark.timeout(1200)
BRANDS = ("Sony", "Bosch", "Nivea", "Lego", "Puma")


def gtin13(serial: int) -> str:
    body = f"400{serial:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def catalog(prefix: str, count: int, shared_from: int) -> list[dict[str, Any]]:
    """`count` offers; products from `shared_from` on are also sold by the other marketplace."""
    records = []
    for i in range(count):
        product = i if i < shared_from else 1000 + i
        brand = BRANDS[product % len(BRANDS)]
        records.append(
            {
                "sku": f"{prefix}-{i}",
                "name": f"{brand} Widget Series {product} Model X{product}",
                "price": f"{10 + product % 70}.{product % 100:02d} EUR",
                "ean": gtin13(product) if product % 3 else None,
                "brand": brand,
                "model": f"X{product}" if product % 2 else None,
                "in_stock": product % 5 != 0,
                "stock": product % 17,
            }
        )
    records[7]["price"] = "free"  # a rejection that survives the refresh
    records[30] = {**records[30], "sku": records[2]["sku"]}  # a duplicate id
    return records


class CatalogServer:
    """The marketplaces' list endpoints: `/<slug>/items?page=N&per_page=M`."""

    def __init__(self) -> None:
        self.catalogs: dict[str, list[dict[str, Any]]] = {}
        self.failing_pages: set[tuple[str, int]] = set()
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                slug = parsed.path.strip("/").split("/")[0]
                query = parse_qs(parsed.query)
                page = int(query.get("page", ["1"])[0])
                size = int(query.get("per_page", [str(PAGE_SIZE)])[0])
                if (slug, page) in outer.failing_pages:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                records = outer.catalogs.get(slug, [])[(page - 1) * size : page * size]
                body = json.dumps({"items": records}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        return Handler


MARKETPLACE_TOML = """
[[marketplace]]
slug = "{slug}"
name = "{slug}"
kind = "declarative"
base_url = "{url}/{slug}"
currency = "EUR"
country = "FR"
match_identifier = "gtin"
page_size = {page_size}

[marketplace.options]
list_path = "items"
pagination = "page"
records_path = "items"
price_encoding = "amount_currency_text"

[marketplace.options.fields]
external_id = "sku"
title = "name"
price = "price"
gtin = "ean"
brand = "brand"
model = "model"
available = "in_stock"
stock = "stock"
"""


@dataclass
class Home:
    """One pipeline home: its environment, and when its second run started."""

    name: str
    env: dict[str, str]
    second_run_at: datetime | None = None
    runs: int = 0

    @property
    def warehouse_path(self) -> Path:
        return Path(self.env["ONECART_HOME"]) / "pipeline.duckdb"

    def start_from(self, other: Home) -> None:
        """Hold a copy of `other`'s warehouse, as if this home had run the same ingest."""
        self.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(other.warehouse_path, self.warehouse_path)
        wal = other.warehouse_path.with_name(other.warehouse_path.name + ".wal")
        if wal.exists():
            shutil.copyfile(wal, self.warehouse_path.with_name(wal.name))
        self.runs = other.runs

    def ingest(self, *, full_refresh: bool) -> IngestReport:
        saved = {name: os.environ.get(name) for name in [*self.env, "DAGSTER_HOME"]}
        os.environ.update(self.env)
        os.environ.pop("DAGSTER_HOME", None)
        clear_settings_caches()
        try:
            settings = get_settings()
            home = settings.home_dir / "dagster"
            home.mkdir(parents=True, exist_ok=True)
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            # Runs in this process keep their Dagster records in memory: what is compared here
            # is the warehouse, and a SQLite event log on disk costs a synced write per event.
            # Worker processes need the instance on disk to share it.
            instance = (
                dg.DagsterInstance.ephemeral()
                if self.env["ONECART_PIPELINE_WORKERS"] == "1"
                else dagster_instance(home)
            )
            try:
                report = materialize_all(
                    instance=instance,
                    progress=lambda line: None,
                    full_refresh=full_refresh,
                    downstream_assets=DOWNSTREAM_UNDER_TEST,
                )
            finally:
                instance.dispose()
            self.runs += 1
            return report
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            clear_settings_caches()

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        path = self.warehouse_path
        split = self.second_run_at

        def when(value: Any) -> Any:
            return value if split is None or not isinstance(value, datetime) else value >= split

        queries = {
            "products": "SELECT * EXCLUDE (fetched_at) FROM products ORDER BY ALL",
            "rejected_products": "SELECT * EXCLUDE (run_id) FROM rejected_products ORDER BY ALL",
            "product_groups": "SELECT * FROM product_groups ORDER BY ALL",
            "price_history": "SELECT * EXCLUDE (observed_at) FROM price_history ORDER BY ALL",
        }
        with warehouse.connect(path, read_only=True) as conn:
            return {
                name: [tuple(when(v) for v in row) for row in conn.execute(sql).fetchall()]
                for name, sql in queries.items()
            }


@pytest.fixture(scope="module")
def server() -> Iterator[CatalogServer]:
    catalog_server = CatalogServer()
    catalog_server.catalogs["alpha"] = catalog("A", 130, shared_from=60)
    catalog_server.catalogs["beta"] = catalog("B", 90, shared_from=60)
    catalog_server.thread.start()
    yield catalog_server
    catalog_server.server.shutdown()


def paired_homes(
    settings: Settings,
    prefix: str,
    marketplaces_toml: str,
    extra_env: dict[str, str] | None = None,
) -> list[Home]:
    """An "incremental" and a "full" home in one new directory, reading the same marketplaces,
    each with its own index; runs in-process (a test may turn worker processes on)."""
    run = uuid.uuid4().hex[:8]
    base = settings.home_dir / f"{prefix}-{run}"
    base.mkdir(parents=True)
    toml = base / "marketplaces.toml"
    toml.write_text(marketplaces_toml)
    index_prefix = prefix.replace("-", "_")
    return [
        Home(
            name,
            {
                "ONECART_HOME": str(base / name),
                "ONECART_MARKETPLACES": str(toml),
                "MEILI_INDEX": f"{index_prefix}_{name}_{run}",
                "ONECART_ASSISTANT_EMBEDDINGS": "off",
                "ONECART_PIPELINE_WORKERS": "1",
                **(extra_env or {}),
            },
        )
        for name in ("incremental", "full")
    ]


@pytest.fixture(scope="module")
def homes(settings: Settings, server: CatalogServer, meili_server: str) -> list[Home]:
    return paired_homes(
        settings,
        "incremental",
        "".join(
            MARKETPLACE_TOML.format(slug=slug, url=server.url, page_size=PAGE_SIZE)
            for slug in ("alpha", "beta")
        ),
    )


def change_the_catalog(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    changed = [dict(record) for record in records]
    changed[3]["price"] = "99.99 EUR"  # price
    changed[45]["in_stock"] = not changed[45]["in_stock"]  # availability
    changed[61]["name"] = "Sony Widget Series 61 Model X61 Refreshed"  # title
    changed[62]["ean"] = gtin13(5)  # identifier: joins another product's group
    changed[64]["ean"] = None  # identifier dropped: leaves its group
    del changed[100:104]  # removal (the later pages shift)
    changed[2] = {**changed[2], "sku": "A-2-renamed"}  # the duplicate's first occurrence goes
    changed.append({**changed[10], "sku": "A-new-1", "price": "12.00 EUR"})  # new offers
    changed.append({**changed[70], "sku": "A-new-2"})
    return changed


def test_an_incremental_refresh_gives_the_tables_of_a_full_run(
    homes: list[Home], server: CatalogServer
) -> None:
    incremental, full = homes
    first = incremental.ingest(full_refresh=False)
    assert first.success, first.failed_partitions
    full.start_from(incremental)
    server.catalogs["alpha"] = change_the_catalog(server.catalogs["alpha"])
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        second = home.ingest(full_refresh=home is full)
        assert second.success, second.failed_partitions
    got, expected = incremental.tables(), full.tables()
    for table in expected:
        assert got[table] == expected[table], table
    assert positions(incremental) == positions(full)
    # The incremental home read nothing of the unchanged marketplace the second time, and of
    # the changed one only the records with a new payload (3, 45, 61, 62, 64, the renamed 2 and
    # the two new offers) and 30, the duplicate of 2's old id; not the records the removal
    # shifted onto other pages.
    assert loads_of(incremental, "beta") == [(90, None, None)]
    assert loads_of(full, "beta") == [(90, None, None), (90, None, None)]
    # The incremental home's first run read everything too: the copy stands for a first run.
    assert loads_of(full, "alpha")[0] == (130, None, None)
    assert loads_of(incremental, "alpha")[1:] == [(128, 9, [1, 2, 3, 4, 7])]


def test_a_removal_early_in_the_catalog_reads_only_the_changed_records(
    homes: list[Home], server: CatalogServer
) -> None:
    """Removing beta's sixth offer moves every later record to another page or position, and the
    first occurrence of beta's duplicate id moves, unchanged, behind the second one, and a copy
    of a record appears earlier; the refresh reads the one changed record, the two records of
    the duplicate id (whose winner changes) and the two identical ones, and still records every
    position and fetch time as a full run does."""
    incremental, full = homes
    if not incremental.runs:  # run alone: both homes hold the same first ingest
        assert incremental.ingest(full_refresh=False).success
        full.start_from(incremental)
    records = [dict(record) for record in server.catalogs["beta"]]
    del records[5]
    records[80]["price"] = "77.70 EUR"
    records.append(records.pop(2))  # same payload: only its place tells the winner
    records.insert(10, dict(records[40]))  # an identical payload, twice in the catalog
    server.catalogs["beta"] = records
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        assert home.ingest(full_refresh=home is full).success
    got, expected = incremental.tables(), full.tables()
    for table in expected:
        assert got[table] == expected[table], table
    assert positions(incremental) == positions(full)
    # Records sharing an external id or a payload are read again whenever the catalog changed.
    assert loads_of(incremental, "beta")[-1] == (90, 5, [1, 2, 3, 5])
    assert loads_of(full, "beta")[-1] == (90, None, None)


def test_a_warehouse_written_before_payload_hashes_is_read_in_full_once(
    homes: list[Home], server: CatalogServer
) -> None:
    """Rows stored before payload hashes existed get NULL there when the schema migrates: the
    next refresh stores and normalizes those marketplaces in full, then skips records again."""
    incremental, full = homes
    if not incremental.runs:
        assert incremental.ingest(full_refresh=False).success
        full.start_from(incremental)
    with warehouse.connect(incremental.warehouse_path) as conn:
        for table in ("raw_catalog", "product_sources", "rejected_products"):
            conn.execute(f"UPDATE {table} SET payload_hash = NULL WHERE marketplace = 'beta'")
    records = catalog("B", 90, shared_from=60)  # whatever the tests before left
    records[12]["price"] = "12.34 EUR"
    server.catalogs["beta"] = records
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        assert home.ingest(full_refresh=home is full).success
    got, expected = incremental.tables(), full.tables()
    for table in expected:
        assert got[table] == expected[table], table
    assert positions(incremental) == positions(full)
    assert loads_of(incremental, "beta")[-1] == (90, None, None)
    # Then record by record again: one price, and the two records of beta's duplicate id.
    records = [dict(record) for record in server.catalogs["beta"]]
    records[50]["price"] = "50.50 EUR"
    server.catalogs["beta"] = records
    incremental.second_run_at = full.second_run_at = datetime.now(UTC)
    for home in homes:
        assert home.ingest(full_refresh=home is full).success
    assert incremental.tables() == full.tables()
    assert loads_of(incremental, "beta")[-1][1] == 3


def positions(home: Home) -> dict[str, list[tuple[Any, ...]]]:
    """Where every offer, rejection and raw record sits, and its fetch time."""
    queries = {
        "products": "SELECT p.marketplace, p.external_id, s.page, s.record_index, p.fetched_at "
        "FROM products AS p JOIN product_sources AS s USING (marketplace, external_id) "
        "ORDER BY ALL",
        "rejected_products": "SELECT marketplace, external_id, page, record_index, payload_hash "
        "FROM rejected_products ORDER BY ALL",
        "raw_catalog": "SELECT marketplace, page, record_index, payload_hash, fetched_at "
        "FROM raw_catalog ORDER BY ALL",
    }
    fetched = {}
    with warehouse.connect(home.warehouse_path, read_only=True) as conn:
        for name, sql in queries.items():
            fetched[name] = conn.execute(sql).fetchall()
        pages = conn.execute(
            "SELECT marketplace, page, fetched_at FROM raw_pages ORDER BY ALL"
        ).fetchall()
    # Fetch times differ between the two homes' runs: compare each with its page's.
    page_times = {(m, p): at for m, p, at in pages}
    fetched["products"] = [
        (*row[:4], row[4] == page_times[(row[0], row[2])]) for row in fetched["products"]
    ]
    fetched["raw_catalog"] = [
        (*row[:4], row[4] == page_times[(row[0], row[1])]) for row in fetched["raw_catalog"]
    ]
    return fetched


def loads_of(home: Home, slug: str) -> list[tuple[int, Any, Any]]:
    """(raw records, records the run read, pages they sat on) of every load of `slug`, oldest
    first (None: every record)."""
    with warehouse.connect(home.warehouse_path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT raw_records, records_read, pages_read FROM catalog_loads "
            "WHERE marketplace = ? ORDER BY loaded_at",
            [slug],
        ).fetchall()
    return [(int(records), read, pages) for records, read, pages in rows]


def test_a_marketplace_failing_mid_catalog_fails_only_its_partition_with_concurrency(
    homes: list[Home], server: CatalogServer
) -> None:
    """Partitions run in two worker processes; alpha's third page answers 500 after the first
    two were fetched: alpha's partition fails and keeps its last good catalog, beta refreshes."""
    home = homes[0]
    if not home.runs:  # run alone: a catalog to keep first (else the test above left one)
        assert home.ingest(full_refresh=False).success
    before = home.tables()
    server.failing_pages = {("alpha", 3)}
    home.env["ONECART_PIPELINE_WORKERS"] = "2"
    try:
        report = home.ingest(full_refresh=False)
    finally:
        server.failing_pages = set()
        home.env["ONECART_PIPELINE_WORKERS"] = "1"
    assert report.failed_partitions == ["alpha"]
    assert "500" in (report.partitions["alpha"].error or "")
    assert report.partitions["beta"].success and report.downstream_success
    assert home.tables() == before


def test_a_repeat_of_a_quarantined_first_record_stays_quarantined_record_by_record(
    homes: list[Home], server: CatalogServer
) -> None:
    """Beta's record 20 loses its price and record 50 repeats its id: the first record naming
    an id claims it even quarantined, so the repeat is a duplicate in both homes. Then only the
    repeat changes: the refresh reads it with the quarantined record its id ties it to, and
    still keeps it out, as a full run does."""
    incremental, full = homes
    if not incremental.runs:
        assert incremental.ingest(full_refresh=False).success
        full.start_from(incremental)
    records = [dict(record) for record in server.catalogs["beta"]]
    records[20]["price"] = "free"
    records[50] = {**records[50], "sku": records[20]["sku"]}
    server.catalogs["beta"] = records
    repeated = records[20]["sku"]
    for change in range(2):
        if change:
            records = [dict(record) for record in server.catalogs["beta"]]
            records[50]["price"] = "55.55 EUR"
            server.catalogs["beta"] = records
        for home in homes:
            home.second_run_at = datetime.now(UTC)
            assert home.ingest(full_refresh=home is full).success
        got, expected = incremental.tables(), full.tables()
        for table in expected:
            assert got[table] == expected[table], (change, table)
        assert positions(incremental) == positions(full)
        assert [row for row in got["products"] if row[1] == repeated] == []
        assert sorted(row[2] for row in got["rejected_products"] if row[1] == repeated) == [
            "bad_price",
            "duplicate_external_id",
        ]
    # Record by record: not every record of beta was read again.
    assert 0 < loads_of(incremental, "beta")[-1][1] < len(records)


def latest_load_counts(home: Home, slug: str) -> tuple[int, ...]:
    """(raw records, products, rejected, GTINs claimed, GTINs failing their checksum) of the
    marketplace's latest load."""
    with warehouse.connect(home.warehouse_path, read_only=True) as conn:
        return conn.execute(
            "SELECT raw_records, products, rejected, gtin_claimed, gtin_invalid FROM catalog_loads "
            "WHERE marketplace = ? ORDER BY loaded_at DESC LIMIT 1",
            [slug],
        ).fetchall()[0]


def test_an_incremental_refresh_judges_the_gtins_of_the_whole_catalog(
    homes: list[Home], server: CatalogServer
) -> None:
    """Three of alpha's ~86 GTINs lose their checksum: the catalog's invalid share is 3.5%, well
    under the check's 20%. The incremental refresh counted the GTINs of the records it read
    only (3 claimed, 3 invalid: 100%), so gtin_checksum_share warned about a healthy feed, and
    would have passed a broken one whose refresh happened to read a valid GTIN. Its load now
    counts the whole catalog, as the full run's does, and the two runs' checks agree."""
    incremental, full = homes
    if not incremental.runs:
        assert incremental.ingest(full_refresh=False).success
        full.start_from(incremental)
    records = [dict(record) for record in server.catalogs["alpha"]]
    for index in [i for i, record in enumerate(records) if record.get("ean")][:3]:
        ean = records[index]["ean"]
        records[index]["ean"] = ean[:-1] + str((int(ean[-1]) + 1) % 10)
    server.catalogs["alpha"] = records
    reports = {}
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        reports[home.name] = home.ingest(full_refresh=home is full)
        assert reports[home.name].success
    counts = latest_load_counts(full, "alpha")
    assert counts[3:] == (sum(1 for record in records if record.get("ean")), 3)
    assert latest_load_counts(incremental, "alpha") == counts
    # It still read the three records (and those of alpha's duplicate id), not the catalog.
    assert loads_of(incremental, "alpha")[-1][1] in (3, 4, 5)
    warnings = reports["incremental"].partitions["alpha"].check_warnings
    assert warnings == reports["full"].partitions["alpha"].check_warnings == []


def test_a_warehouse_without_gtin_claims_is_read_in_full_once(
    homes: list[Home], server: CatalogServer
) -> None:
    """A warehouse written before gtin_claims existed has none: its next refresh reads the
    marketplace in full once (so the GTIN counts cover the catalog), then record by record."""
    incremental, full = homes
    if not incremental.runs:
        assert incremental.ingest(full_refresh=False).success
        full.start_from(incremental)
    with warehouse.connect(incremental.warehouse_path) as conn:
        conn.execute("DELETE FROM gtin_claims WHERE marketplace = 'beta'")
    for price in ("21.21 EUR", "22.22 EUR"):
        records = [dict(record) for record in server.catalogs["beta"]]
        records[21]["price"] = price
        server.catalogs["beta"] = records
        for home in homes:
            home.second_run_at = datetime.now(UTC)
            assert home.ingest(full_refresh=home is full).success
        assert latest_load_counts(incremental, "beta") == latest_load_counts(full, "beta")
    # In full, then the changed record and those of beta's repeated ids (how many depends on
    # what the tests before left in beta's catalog), not the catalog.
    full_read, refresh_read = [read for _, read, _ in loads_of(incremental, "beta")[-2:]]
    assert full_read is None and refresh_read is not None and refresh_read <= 6


def test_row_count_drift_speaks_of_the_run_that_drifted_not_of_quiet_ones_after_it(
    homes: list[Home], server: CatalogServer
) -> None:
    """Beta drops to a third of its offers: that refresh warns. The next refresh finds nothing
    changed and writes no load, and the check compared the same two loads again, warning
    "moved by more than half since the last run" at every quiet refresh until the catalog
    changed again. It compares the offers now with the latest load when the run loaded none."""
    incremental, _ = homes
    if not incremental.runs:
        assert incremental.ingest(full_refresh=False).success
    kept = server.catalogs["beta"]
    server.catalogs["beta"] = kept[:30]
    try:
        drifted = incremental.ingest(full_refresh=False).partitions["beta"]
        assert any("row_count_drift WARN" in line for line in drifted.check_warnings), drifted
        quiet = incremental.ingest(full_refresh=False).partitions["beta"]
        assert quiet.success and quiet.check_warnings == [], quiet
    finally:
        server.catalogs["beta"] = kept
        assert incremental.ingest(full_refresh=False).success
