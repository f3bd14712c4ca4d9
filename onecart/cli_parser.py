"""`onecart`'s argument parser: its commands, options and their bounds (split from onecart.cli,
which runs the commands; tests and docs inspect the parser on its own)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Final

from onecart import services
from onecart.params import ParameterError, bounded_int
from onecart.settings import MAX_HISTORY_DAYS

# `onecart logs -n`: more than a terminal's scrollback is what the log file itself is for.
MAX_LOG_LINES: Final = 100_000


def _whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: a whole number within [minimum, maximum], read as the site reads one
    (onecart.params), or a usage error naming the range."""

    def parse(raw: str) -> int:
        try:
            return bounded_int(raw, minimum=minimum, maximum=maximum)
        except ParameterError:
            raise argparse.ArgumentTypeError(
                f"a whole number from {minimum} to {maximum}, not {raw!r}"
            ) from None

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so tests and docs can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="onecart",
        description="Run OneCart's services on this machine and load the marketplaces.",
        epilog="State lives under ONECART_HOME (default: the checkout's var/); every setting "
        "comes from the environment (docs/configuration.md). Exit codes: 0 success; 1 a service, "
        "an ingest partition or a downstream asset failed; 2 usage error; 3 a program OneCart "
        "needs (redis-server, the Meilisearch binary) is not installed.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start every service not running yet (idempotent)")
    up.add_argument(
        "--ingest",
        action="store_true",
        help="then load the catalogs and index them (on a fresh demo home the last "
        "ONECART_DEMO_HISTORY_DAYS days first), and start the offer embeddings in the background",
    )
    up.add_argument(
        "--profile",
        choices=services.PROFILES,
        help="local or cluster (Dagster on PostgreSQL, webserver + daemon; docs/deploy.md); "
        "default: ONECART_PROFILE, else the last up's, else local; remembered for later commands",
    )
    up.add_argument(
        "--no-site", action="store_true", help="do not start the site, RQ workers and cron"
    )
    # Several names after one flag (`--only worker cron`, as docs/deploy.md gives a host's
    # role), or the flag repeated: both add up.
    up.add_argument(
        "--only",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        choices=services.SERVICE_ORDER,
        help=f"start only these services (one of: {', '.join(services.SERVICE_ORDER)})",
    )
    up.add_argument(
        "--skip",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        choices=services.SERVICE_ORDER,
        help="do not start these services",
    )

    down = commands.add_parser("down", help="stop what `up` started, in reverse order")
    down.add_argument("names", nargs="*", metavar="NAME", help="only these services")

    commands.add_parser(
        "status",
        help="each service (state, pid, restarts, health, URL), each marketplace's catalog "
        "(last fetch, last run), the checks' latest results, what is loading",
    )

    ingest = commands.add_parser(
        "ingest",
        help="materialize the catalog pipeline once",
        description="Fetch each active marketplace of ONECART_MARKETPLACES (or only those named "
        "with --marketplace) into the warehouse, then the downstream assets and the search index, "
        "in this process, with progress on stdout. Meilisearch (and the sandbox, in sandbox mode) "
        "must answer: `onecart up` starts them. Exit 1 when a marketplace or a downstream asset "
        "failed (the report names it).",
    )
    ingest.add_argument(
        "--marketplace",
        action="append",
        default=[],
        metavar="SLUG",
        help="only this marketplace's partition (repeatable)",
    )
    ingest.add_argument(
        "--history",
        type=_whole_number(1, MAX_HISTORY_DAYS),
        default=0,  # not given: no replay
        metavar="DAYS",
        help=f"sandbox only, 1 to {MAX_HISTORY_DAYS}, before any other ingest of this home: "
        "replay the sandbox's "
        "catalog of each of the last DAYS days, then today's, so a fresh demo has price history "
        "(pipelines/replay.py)",
    )

    sandbox = commands.add_parser(
        "sandbox",
        help="serve the sandbox marketplaces in the foreground",
        description="Without arguments: `serve` on ONECART_SANDBOX_HOST:PORT with the configured "
        "offers and seed. With arguments: passed to `python -m sandbox` unchanged.",
    )
    sandbox.add_argument("args", nargs=argparse.REMAINDER, help="arguments for python -m sandbox")

    logs = commands.add_parser("logs", help="show the end of a service's log")
    logs.add_argument("name", metavar="NAME", help="service name, e.g. meilisearch or site")
    logs.add_argument(
        "-n",
        "--lines",
        type=_whole_number(0, MAX_LOG_LINES),
        default=50,
        help=f"how many lines, 0 to {MAX_LOG_LINES} (default 50; 0 with -f: only new ones)",
    )
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")

    sql = commands.add_parser(
        "sql",
        help="query the analysts' read-only warehouse copy (warehouse/README.md)",
        description="Runs QUERY (or the statements on standard input, or a prompt on a terminal) "
        "against $ONECART_HOME/warehouse.duckdb, read-only, with the pipeline's own duckdb.",
    )
    sql.add_argument("query", nargs="?", metavar="QUERY", help="SQL; several statements with ;")
    sql.add_argument(
        "--csv",
        action="store_true",
        help="print the last statement's rows as one CSV file (with a header); "
        "statements before it may set up (SET, CREATE TEMP TABLE) but not query",
    )

    localstripe = commands.add_parser(
        "localstripe", help="serve localstripe (fake Stripe API) on a loopback address"
    )
    localstripe.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    localstripe.add_argument(
        "--port",
        type=_whole_number(1, 65535),
        help="port (default: STRIPE_API_BASE's, else 8420; `up` passes it)",
    )
    localstripe.add_argument(
        "--from-scratch", action="store_true", help="forget payments saved by an earlier run"
    )
    return parser
