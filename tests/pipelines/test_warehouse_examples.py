"""The example queries of warehouse/README.md, run as an analyst copies them, against the
analysts' copy of a real first ingest of the sandbox marketplaces."""

from __future__ import annotations

import re

import duckdb
import pytest

from onecart.settings import REPO_ROOT, Settings
from tests.pipelines.conftest import Ingest

pytestmark = pytest.mark.slow

README = (REPO_ROOT / "warehouse" / "README.md").read_text(encoding="utf-8")
EXAMPLES_SECTION = README.split("## Example queries", 1)[1].split("\n## ", 1)[0]


def example_statements() -> list[str]:
    statements = []
    for block in re.findall(r"```sql\n(.*?)```", EXAMPLES_SECTION, flags=re.DOTALL):
        code = "\n".join(line for line in block.splitlines() if not line.startswith("--"))
        statements += [statement.strip() for statement in code.split(";") if statement.strip()]
    return statements


STATEMENTS = example_statements()


def test_the_readme_has_example_queries() -> None:
    assert len(STATEMENTS) >= 7


def test_the_examples_reading_offers_usd_keep_to_live_offers() -> None:
    """offers_usd holds an inactive or disabled marketplace's offers too (`live` false): an
    example comparing prices or marketplaces without `live` counts what no shopper can buy and
    disagrees with the summary views beside it (product_group_summary, category_price_stats)."""
    reading = [sql for sql in STATEMENTS if re.search(r"\bFROM offers_usd\b", sql)]
    assert reading
    assert [sql for sql in reading if not re.search(r"\blive\b", sql)] == []


@pytest.mark.parametrize("statement", STATEMENTS, ids=lambda sql: sql.split("\n")[0][:60])
def test_an_example_query_answers_on_the_demo_catalog(
    statement: str, first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    assert first_ingest.report.success, first_ingest.lines
    conn = duckdb.connect(str(pipeline_settings.warehouse_path), read_only=True)
    try:
        rows = conn.execute(statement).fetchall()
    finally:
        conn.close()
    if "price_changes_7d" in statement:
        # A first ingest has seen one price per offer: nothing has changed yet.
        return
    assert rows, f"the example returns nothing on the demo catalog:\n{statement}"


def documented_view_columns() -> dict[str, list[str]]:
    """The Views table of warehouse/README.md: each view's backticked column names, in order
    (offers_usd, "every column of products" and more, is checked by its named columns)."""
    section = README.split("\n## Views", 1)[1].split("\n## ", 1)[0]
    columns = {}
    for view, cell in re.findall(r"^\| `(\w+)` \| (.*) \|$", section, flags=re.MULTILINE):
        columns[view] = re.findall(r"`(\w+)`", cell)
    return columns


def test_the_views_have_the_documented_columns(
    first_ingest: Ingest, pipeline_settings: Settings
) -> None:
    documented = documented_view_columns()
    assert len(documented) >= 9
    conn = duckdb.connect(str(pipeline_settings.warehouse_path), read_only=True)
    try:
        for view, names in documented.items():
            description = conn.execute(f"SELECT * FROM {view} LIMIT 0").description
            actual = [d[0] for d in description]
            # "USD amounts in the views are DECIMAL(18, 2)".
            usd_types = {name: str(kind) for name, kind, *_ in description if name.endswith("_usd")}
            assert set(usd_types.values()) <= {"DECIMAL(18,2)"}, (view, usd_types)
            if view == "offers_usd":
                assert set(names) - {"products"} <= set(actual), (view, actual)
            else:
                assert names == actual, (view, actual)
    finally:
        conn.close()
