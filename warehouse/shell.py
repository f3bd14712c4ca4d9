"""`onecart sql`: SQL on the analysts' read-only copy from a plain shell.

DuckDB's own shell on PyPI (duckdb-cli) lags the Python package: its 1.5 builds cannot open the
storage the pipeline's duckdb 2 writes ("version number 69"), so analysts get this instead,
through the same duckdb package that wrote the file.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import duckdb

from onecart.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

PROMPT, CONTINUATION = "warehouse> ", "      ...> "


class NoWarehouse(Exception):
    """No published copy yet: the message says how to make one."""


def open_copy(path: Path) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise NoWarehouse(
            f"no analysts' warehouse at {path}: run `onecart ingest` first "
            "(or set ONECART_HOME to the home that holds one)"
        )
    conn = duckdb.connect(str(path), read_only=True)
    # The warehouse's times are UTC (README, `onecart status`); DuckDB would show them, and cut
    # days, in the machine's zone. An analyst may still SET TimeZone.
    conn.execute("SET TimeZone = 'UTC'")
    return conn


class SeveralResults(Exception):
    """`--csv` given statements whose rows would make more than one CSV file."""


# Statements that answer with rows (DESCRIBE, SHOW, SUMMARIZE and FROM … are SELECTs to DuckDB).
QUERY_TYPES = frozenset(
    {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.CALL}
)


def check_one_result(statements: list[duckdb.Statement]) -> None:
    """`--csv` prints one file: only the last statement may be a query, the others set it up."""
    for number, statement in enumerate(statements[:-1], start=1):
        if statement.type in QUERY_TYPES:
            raise SeveralResults(
                f"--csv prints the last statement's rows as one CSV file, and statement "
                f"{number} of {len(statements)} is a query too: run each query on its own "
                "(statements before the last may set up, e.g. SET or CREATE TEMP TABLE … AS)"
            )


def write_csv(relation: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    """The rows as DuckDB's own COPY … TO writes them (true/false, NULL empty, times …+00)."""
    with tempfile.TemporaryDirectory(prefix="onecart-sql-") as directory:
        path = Path(directory) / "result.csv"
        relation.write_csv(str(path), header=True)
        with path.open(encoding="utf-8", newline="") as written:
            shutil.copyfileobj(written, out)


def run_statements(conn: duckdb.DuckDBPyConnection, sql: str, out: TextIO, *, as_csv: bool) -> None:
    """Run every statement of `sql`, printing each one's rows (with `as_csv`, the last one's
    as one CSV file); raises SeveralResults before running anything, or duckdb.Error."""
    statements = conn.extract_statements(sql)
    if as_csv:
        check_one_result(statements)
    for number, statement in enumerate(statements, start=1):
        relation = conn.sql(statement.query)
        if relation is None:  # a statement without rows (SET, PRAGMA …)
            continue
        if as_csv:
            if number == len(statements):
                write_csv(relation, out)
        else:
            # DuckDB's own box, as its shell prints it: a long result shows its first and last
            # rows and says how many there are (--csv prints them all).
            out.write(f"{relation}\n")


def interactive(
    conn: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    as_csv: bool,
    read_line: Callable[[str], str] = input,
) -> int:
    """A prompt that runs each statement once a line ends with `;`, until end of input."""
    print(f"{path} (read-only); end statements with ;, Ctrl-D to leave")
    buffer: list[str] = []
    while True:
        try:
            line = read_line(CONTINUATION if buffer else PROMPT)
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            buffer = []
            continue
        buffer.append(line)
        if not line.rstrip().endswith(";"):
            continue
        sql, buffer = "\n".join(buffer), []
        try:
            run_statements(conn, sql, sys.stdout, as_csv=as_csv)
        except duckdb.Error as error:
            print(f"error: {describe_error(error)}", file=sys.stderr)
        except SeveralResults as error:
            print(f"error: {error}", file=sys.stderr)


# DuckDB's refusal of a write to a database opened read-only.
READ_ONLY_REFUSAL = "read-only mode"
KEEPING_A_RESULT = (
    "the analysts' copy is read-only (the pipeline replaces it after each run); keep a result "
    "for this session with CREATE TEMP TABLE name AS SELECT …, or in a file with "
    "COPY (SELECT …) TO 'result.csv'"
)


def describe_error(error: duckdb.Error) -> str:
    """DuckDB's message, and for a write the copy refused, how to keep a result instead."""
    text = str(error)
    return f"{text}\n{KEEPING_A_RESULT}" if READ_ONLY_REFUSAL in text else text


def run(path: Path, query: str | None, *, as_csv: bool = False) -> int:
    """Exit code 0 when every statement ran, 1 when the copy is missing or a statement failed,
    2 (usage) when `as_csv` is given queries before the last statement."""
    try:
        conn = open_copy(path)
    except (NoWarehouse, duckdb.Error) as error:
        print(f"onecart sql: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if query is None and sys.stdin.isatty():
            return interactive(conn, path, as_csv=as_csv)
        sql = query if query is not None else sys.stdin.read()
        try:
            run_statements(conn, sql, sys.stdout, as_csv=as_csv)
        except duckdb.Error as error:
            print(f"onecart sql: {describe_error(error)}", file=sys.stderr)
            return EXIT_FAILED
        except SeveralResults as error:
            print(f"onecart sql: {error}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    finally:
        conn.close()
