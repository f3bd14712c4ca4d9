"""What docs/data-contract.md and warehouse/README.md say the warehouse holds is what it holds.

Analysts and adapter authors write queries from these pages: a column the docs name that does
not exist fails their query, and a column the schema has that the contract leaves out (as
`fx_rates.minor_unit` was) is one nobody knows to read.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

import warehouse

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "data-contract.md"
README = ROOT / "warehouse" / "README.md"


def split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: `DECIMAL(3,2)` and `('gtin'|…)` stay whole."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def signature_body(text: str, start: int) -> str:
    """The text between the parenthesis at `start` and the one that closes it."""
    depth = 0
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return text[start + 1 : index]
    raise AssertionError(f"unbalanced parentheses after {text[start - 30 : start]!r}")


def contract_tables() -> dict[str, set[str]]:
    """The `table(column TYPE, …)` signatures of the contract's "Warehouse tables" list."""
    section = CONTRACT.read_text().split("Warehouse tables", 1)[1].split("\n\n", 1)[0]
    tables: dict[str, set[str]] = {}
    for match in re.finditer(r"^- `(\w+)\(", section, re.MULTILINE):
        body = signature_body(section, match.end() - 1)
        columns = {
            part.split()[0]
            for part in split_top_level(body)
            if not part.upper().startswith("PRIMARY KEY")
        }
        tables[match.group(1)] = columns
    return tables


def markdown_rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the markdown table whose header row starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def warehouse_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("documented")
    source, target = directory / "pipeline.duckdb", directory / "warehouse.duckdb"
    # A read-write connection applies the schema: every documented table now exists.
    with warehouse.connect(source) as conn:
        conn.execute("CHECKPOINT")
    warehouse.publish(source, target)
    return source, target


def columns_of(path: Path) -> dict[str, list[str]]:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        rows = conn.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND NOT internal ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        conn.close()
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


def test_the_contract_names_every_column_of_the_tables_it_lists(
    warehouse_files: tuple[Path, Path],
) -> None:
    actual = columns_of(warehouse_files[0])
    documented = contract_tables()
    assert set(documented) >= {"raw_catalog", "products", "fx_rates", "product_groups"}
    for table, columns in documented.items():
        assert table in actual, f"data-contract.md lists {table}, which the warehouse lacks"
        assert columns <= set(actual[table]), (
            f"data-contract.md names {sorted(columns - set(actual[table]))} of {table}, "
            "which it lacks"
        )
        assert set(actual[table]) <= columns, (
            f"data-contract.md leaves out {sorted(set(actual[table]) - columns)} of {table}"
        )


def test_the_readme_lists_every_table_of_the_pipeline_file(
    warehouse_files: tuple[Path, Path],
) -> None:
    documented = {
        re.match(r"`(\w+)`", row[0]).group(1)  # type: ignore[union-attr]
        for row in markdown_rows(README.read_text(), "| table | one row per |")
    }
    assert documented == set(columns_of(warehouse_files[0]))


def test_the_readme_views_table_gives_each_views_columns(
    warehouse_files: tuple[Path, Path],
) -> None:
    actual = columns_of(warehouse_files[1])
    rows = markdown_rows(README.read_text(), "| view | columns |")
    assert len(rows) >= 9
    for view_cell, columns_cell in rows:
        view = view_cell.strip("`")
        named = re.findall(r"`(\w+)`", columns_cell)
        if "every column of `products`" in columns_cell:
            named = [c for c in named if c != "products"] + actual["products"]
        assert set(named) == set(actual[view]), f"warehouse/README.md's columns of {view}"


def test_the_freshness_example_reads_the_fetch_time_not_only_the_last_load() -> None:
    # catalog_loads gets a row only when a fetch brought records to normalize: after refreshes
    # that changed nothing (HTTP 304, no record changed since) its newest loaded_at stayed at the
    # first ingest while the catalog had been fetched minutes ago, yet the README's example
    # "How fresh is each catalog" read loaded_at alone.
    text = README.read_text()
    example = text.split("How fresh is each catalog", 1)[1].split("```", 2)[1]
    assert "last_fetched_at" in example
    assert "only when a fetch brought records to normalize" in text
