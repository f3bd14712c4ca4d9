"""`onecart sql`: the analysts' SQL shell on the published warehouse, from a plain shell.

DuckDB's own command-line shell on PyPI (duckdb-cli) stops at 1.5, which cannot open the
storage files the pipeline's duckdb 2 writes, so warehouse/README.md points here instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import warehouse
from onecart.settings import REPO_ROOT
from warehouse import shell

README = (REPO_ROOT / "warehouse" / "README.md").read_text(encoding="utf-8")
TOP_README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def onecart_sql(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONECART_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "onecart.cli", "sql", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        check=False,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    with warehouse.connect(home / "pipeline.duckdb") as conn:
        conn.execute(
            "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
            "currency, available, content_hash, first_seen_at, updated_at, fetched_at) VALUES "
            "('kiondo', 'k-1', 'Kettle', '', 250000, 'KES', true, 'h', now(), now(), now())"
        )
    warehouse.publish(home / "pipeline.duckdb", home / "warehouse.duckdb")
    return home


def test_a_query_on_the_command_line_prints_its_rows(home: Path) -> None:
    result = onecart_sql(home, "SELECT marketplace, title, price_minor FROM products")
    assert result.returncode == 0, result.stderr
    assert "kiondo" in result.stdout and "Kettle" in result.stdout and "250000" in result.stdout


def test_statements_on_stdin_each_print_their_rows(home: Path) -> None:
    result = onecart_sql(
        home, stdin="SELECT count(*) AS offers FROM products;\n-- a comment\nSELECT 'x' AS y;\n"
    )
    assert result.returncode == 0, result.stderr
    assert "offers" in result.stdout and "│      1 │" in result.stdout
    assert "│ x " in result.stdout


def test_csv_output_for_other_programs(home: Path) -> None:
    result = onecart_sql(home, "--csv", "SELECT external_id, price_minor FROM products")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["external_id,price_minor", "k-1,250000"]


def test_the_copy_is_read_only_and_a_bad_query_says_why(home: Path) -> None:
    result = onecart_sql(home, "DELETE FROM fx_rates")
    assert result.returncode == 1
    assert "read-only" in result.stderr
    assert "Traceback" not in result.stderr
    result = onecart_sql(home, "SELECT nope FROM products")
    assert result.returncode == 1
    assert "nope" in result.stderr and "Traceback" not in result.stderr


def test_without_a_published_warehouse_it_names_the_next_step(tmp_path: Path) -> None:
    result = onecart_sql(tmp_path, "SELECT 1")
    assert result.returncode == 1
    assert str(tmp_path / "warehouse.duckdb") in result.stderr
    assert "onecart ingest" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_readme_shows_this_command_not_a_shell_nobody_can_install() -> None:
    assert "onecart sql" in README
    assert "duckdb -readonly" not in README


def test_the_top_readme_gives_analysts_a_command_that_finds_the_copy_from_any_directory() -> None:
    # `duckdb.connect('var/warehouse.duckdb')` opened a path relative to the shell's directory:
    # from anywhere but the checkout, or with ONECART_HOME set, "database does not exist".
    section = TOP_README.split("## For analysts", 1)[1].split("\n## ", 1)[0]
    assert "onecart sql" in section
    assert "'var/warehouse.duckdb'" not in section


def test_the_warehouse_readme_opens_the_copy_from_python_by_its_full_path() -> None:
    # Its Python example still opened "var/warehouse.duckdb", relative to the notebook's
    # directory: "database does not exist" anywhere but the checkout or with ONECART_HOME set.
    assert '"var/warehouse.duckdb"' not in README
    assert "get_settings().warehouse_path" in README


def test_the_prompt_runs_each_statement_once_it_ends_with_a_semicolon(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # On a terminal `onecart sql` prompts; its banner once called a method duckdb 2's relations
    # no longer have, so the prompt died with a traceback before asking anything.
    lines = iter(["SELECT title", "FROM products;", "SELECT nope;", "SELECT 42 AS answer;"])

    def read_line(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    conn = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        code = shell.interactive(conn, home / "warehouse.duckdb", as_csv=False, read_line=read_line)
    finally:
        conn.close()
    out, err = capsys.readouterr()
    assert code == 0
    assert str(home / "warehouse.duckdb") in out
    assert "Kettle" in out and "42" in out
    assert "nope" in err  # the error is said and the prompt goes on


def test_times_and_days_are_utc_whatever_the_machine_s_time_zone(home: Path) -> None:
    """README: timestamps are UTC, and `onecart status` prints UTC. On a machine set to another
    zone the shell printed them in local time (…-05) and a `::DATE` or `date_trunc('day', …)`
    grouped by local days, so a daily count disagreed with the pipeline's. The session starts
    in UTC (an analyst may still SET TimeZone)."""
    env_tz = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    try:
        result = onecart_sql(
            home,
            "--csv",
            "SELECT current_setting('TimeZone') AS tz, "
            "TIMESTAMPTZ '2026-12-07 02:00:00+00' AS at, "
            "CAST(TIMESTAMPTZ '2026-12-07 02:00:00+00' AS DATE) AS day",
        )
    finally:
        if env_tz is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = env_tz
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "UTC,2026-12-07 02:00:00+00,2026-12-07"


def test_a_write_refused_says_how_to_keep_a_result_and_that_way_works(home: Path) -> None:
    """A write to the copy got DuckDB's "Cannot execute statement of type "CREATE" on database
    "warehouse" which is attached in read-only mode!" and no more (ops10's analyst pass): an
    analyst saving an intermediate result did not learn that a TEMP table, or a file, works."""
    result = onecart_sql(home, "CREATE TABLE kettles AS SELECT * FROM products")

    assert result.returncode == 1
    assert "read-only mode" in result.stderr  # DuckDB's own words first
    assert "CREATE TEMP TABLE" in result.stderr and "COPY (" in result.stderr
    kept = onecart_sql(
        home,
        "CREATE TEMP TABLE kettles AS SELECT external_id FROM products; SELECT * FROM kettles",
        "--csv",
    )
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.splitlines()[-2:] == ["external_id", "k-1"]


def test_csv_of_several_statements_is_one_file_with_the_last_statement_s_rows(home: Path) -> None:
    """`--csv` printed one header+rows block per statement into one stream (a CREATE TEMP TABLE
    added a "Count" block): a CSV reader took it as one malformed file (ops10's leftover). The
    statements before the last set up (SET, CREATE TEMP TABLE …); the last one's rows are the
    file."""
    result = onecart_sql(
        home,
        "--csv",
        "SET threads = 1; CREATE TEMP TABLE kettles AS SELECT external_id, available "
        "FROM products; SELECT * FROM kettles",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["external_id,available", "k-1,true"]


def test_csv_refuses_a_query_before_the_last_statement_and_runs_nothing(home: Path) -> None:
    """Two queries' rows cannot make one CSV file: a usage error says so before anything runs."""
    result = onecart_sql(
        home,
        "--csv",
        stdin="COPY (SELECT 1 AS one) TO 'ran.csv';\nSELECT count(*) FROM products;\n"
        "SELECT title FROM products;\n",
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert "--csv" in result.stderr and "statement 2 of 3" in result.stderr
    assert "one CSV" in result.stderr
    assert not (home / "ran.csv").exists()


def test_csv_writes_values_as_duckdb_s_own_copy_does(home: Path, tmp_path: Path) -> None:
    """Python's csv wrote booleans as True/False and timestamps as …+00:00 where DuckDB's box
    and its COPY … TO write true/false and …+00: a file from `--csv` reads like one from COPY."""
    query = (
        "SELECT true AS yes, false AS no, NULL::INTEGER AS nothing, "
        "TIMESTAMPTZ '2026-12-07 02:00:00+00' AS at, [1, 2] AS list, 'a,\"b' AS text, "
        "CAST(1.5 AS DECIMAL(18, 2)) AS usd"
    )
    copied = tmp_path / "copied.csv"
    with shell.open_copy(home / "warehouse.duckdb") as conn:
        conn.execute(f"COPY ({query}) TO '{copied}' (HEADER)")

    result = onecart_sql(home, "--csv", query)

    assert result.returncode == 0, result.stderr
    assert result.stdout == copied.read_text(encoding="utf-8")
    assert result.stdout.splitlines()[1].startswith("true,false,,2026-12-07 02:00:00+00,")
