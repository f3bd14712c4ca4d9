"""`onecart`: the operator's command for running OneCart on one machine.

    onecart up [--ingest] [--profile local|cluster] [--no-site] [--only NAME ...] [--skip NAME ...]
    onecart down [NAME ...]
    onecart status
    onecart ingest [--marketplace SLUG ...]
    onecart sandbox [ARGS ...]
    onecart logs NAME [-n LINES] [-f]

Services (start order): redis, meilisearch, sandbox, localstripe, dagster (+ dagster-daemon in the
cluster profile), site, worker, cron. supervisord runs them and restarts one that dies
(onecart/supervision.py). State lives under ONECART_HOME; every setting comes from the
environment (docs/configuration.md, docs/deploy.md).

Exit codes: 0 success; 1 a service, an ingest partition or a downstream asset failed; 2 usage
error; 3 a program OneCart needs (redis-server, the Meilisearch binary) is not installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from onecart import processes, progress, services, supervision
from onecart.settings import Settings, get_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MISSING_PROGRAM = 3

# What a pipeline run reads from and writes to.
INGEST_NEEDS = ("meilisearch", "sandbox")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so tests and docs can inspect it)."""
    parser = argparse.ArgumentParser(
        prog="onecart",
        description="Run OneCart's services on this machine and load the marketplaces.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start every service not running yet (idempotent)")
    up.add_argument(
        "--ingest", action="store_true", help="materialize the pipeline once after starting"
    )
    up.add_argument(
        "--profile",
        choices=services.PROFILES,
        help="local (default) or cluster (Dagster on PostgreSQL, webserver + daemon; "
        "docs/deploy.md); remembered for later commands",
    )
    up.add_argument(
        "--no-site", action="store_true", help="do not start the site, RQ workers and cron"
    )
    up.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        choices=services.SERVICE_ORDER,
        help="start only this service (repeatable)",
    )
    up.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="NAME",
        choices=services.SERVICE_ORDER,
        help="do not start this service (repeatable)",
    )

    down = commands.add_parser("down", help="stop what `up` started, in reverse order")
    down.add_argument("names", nargs="*", metavar="NAME", help="only these services")

    commands.add_parser("status", help="each service: state, pid, restarts, health, URL")

    ingest = commands.add_parser("ingest", help="materialize the catalog pipeline once")
    ingest.add_argument(
        "--marketplace",
        action="append",
        default=[],
        metavar="SLUG",
        help="only this marketplace's partition (repeatable)",
    )
    ingest.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="DAYS",
        help="sandbox only: first replay the sandbox's catalog of each of the last DAYS days, so a "
        "fresh demo has price history (pipelines/replay.py)",
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
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")

    localstripe = commands.add_parser(
        "localstripe", help="serve localstripe (fake Stripe API) on a loopback address"
    )
    localstripe.add_argument("--host", default="127.0.0.1")
    localstripe.add_argument("--port", type=int, default=8420)
    localstripe.add_argument(
        "--from-scratch", action="store_true", help="forget payments saved by an earlier run"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `onecart` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    settings = with_profile(get_settings(), getattr(args, "profile", None))
    handlers: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
        "up": command_up,
        "down": command_down,
        "status": command_status,
        "ingest": command_ingest,
        "sandbox": command_sandbox,
        "logs": command_logs,
        "localstripe": command_localstripe,
    }
    try:
        return handlers[args.command](settings, args)
    except KeyboardInterrupt:
        return 130


PROFILE_FILE = "profile"


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


def command_up(settings: Settings, args: argparse.Namespace) -> int:
    """Start what is not running, wait until it answers, optionally ingest, print the URLs."""
    skip = list(args.skip)
    if args.no_site:
        skip += ["site", "worker", "cron"]
    catalog = services.build_services(settings)
    selected = services.select_services(catalog, only=args.only, skip=skip)
    print(f"OneCart home: {settings.home_dir} (profile {settings.profile})")
    processes.run_dir(settings).joinpath(PROFILE_FILE).write_text(settings.profile)
    clock = progress.Stopwatch()
    # With --ingest, the catalogs load as soon as what the ingest needs answers, while the
    # slower services (Dagster, the site) finish starting beside it.
    needed = {"redis", *INGEST_NEEDS}
    if settings.profile == "cluster":  # its ingest goes through Dagster's run queue
        needed |= {"dagster", "dagster-daemon"}
    deferred = [s for s in selected if s.name not in needed] if args.ingest else []
    try:
        outcomes = supervision.start_services(
            settings,
            selected,
            catalog=catalog,
            report=print,
            defer=[s.name for s in deferred],
        )
    except processes.MissingProgramError as exc:
        print(exc, file=sys.stderr)
        return EXIT_MISSING_PROGRAM
    except processes.ProcessError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    starting = [
        s for s in deferred if any(o.name == s.name and o.action == "starting" for o in outcomes)
    ]
    waiter = None
    if starting:
        late: list[supervision.ServiceOutcome] = []
        waiter = threading.Thread(
            target=lambda: late.extend(
                supervision.wait_for_services(settings, starting, report=print)
            ),
            name="wait-for-services",
        )
        waiter.start()
    exit_code = EXIT_OK
    if args.ingest:
        by_name = {service.name: service for service in catalog}
        missing = [
            name
            for name in INGEST_NEEDS
            if not supervision.inspect_service(settings, by_name[name]).healthy
        ]
        if missing:
            print(f"ingest not run: {', '.join(missing)} not answering", file=sys.stderr)
            exit_code = EXIT_FAILED
        elif wants_demo_history(settings):
            print(
                f"first run of the demo: replaying the sandbox's last {settings.demo_history_days} "
                "days first, so price charts and price drops have data "
                "(ONECART_DEMO_HISTORY_DAYS=0 loads today's catalog only)"
            )
            exit_code = run_history_replay(
                settings, settings.demo_history_days, before_embeddings=waiter
            )
        else:
            exit_code = run_ingest(settings, marketplaces=(), before_embeddings=waiter)
    if waiter is not None:
        waiter.join()
        done = {o.name: o for o in late}
        outcomes = [done.get(o.name, o) for o in outcomes]
    print(f"done in {clock.elapsed():.0f}s")
    failed = [outcome for outcome in outcomes if outcome.action == "failed"]
    exit_code = max(exit_code, EXIT_FAILED if failed else EXIT_OK)
    print()
    print_service_table(settings, [s.name for s in selected])
    for outcome in failed:
        print(f"\n{outcome.name} failed: {outcome.detail}", file=sys.stderr)
    return exit_code


def command_down(settings: Settings, args: argparse.Namespace) -> int:
    """Stop the services (each with its process group) and supervisord; an external Redis is
    never touched."""
    unknown = set(args.names) - set(services.SERVICE_ORDER)
    if unknown:
        print(f"unknown service(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return EXIT_USAGE
    stopped = supervision.stop_services(settings, args.names, report=print)
    if not stopped:
        print("nothing to stop")
    return EXIT_OK


def command_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print each service's state; exit 0 whatever the state (status is a question)."""
    print(f"OneCart home: {settings.home_dir} (profile {settings.profile})")
    print_service_table(settings, [s.name for s in services.build_services(settings)])
    loading = progress.describe_loading(settings)
    if loading:
        print(f"\n{loading}")
    return EXIT_OK


def print_service_table(settings: Settings, names: Sequence[str]) -> None:
    """A table of services: what runs where, its own pid, how often it was restarted."""
    catalog = {service.name: service for service in services.build_services(settings)}
    rows = [("SERVICE", "STATE", "PID", "RESTARTS", "HEALTH", "URL")]
    for name in names:
        state = supervision.inspect_service(settings, catalog[name])
        rows.append(
            (
                state.name,
                state.status,
                str(state.pid) if state.pid else "-",
                str(state.restarts),
                "ok" if state.healthy else "no answer",
                _display_url(state.url),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _display_url(url: str | None) -> str:
    """URLs without credentials: REDIS_URL may carry a password."""
    if not url:
        return "-"
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def command_ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Materialize the pipeline once, in this process, with progress on stdout."""
    if getattr(args, "history", 0):
        return run_history_replay(settings, args.history)
    return run_ingest(settings, marketplaces=args.marketplace)


def wants_demo_history(settings: Settings) -> bool:
    """pipelines.replay.demo_history_wanted, imported only when asked (Dagster is slow to load)."""
    from pipelines.replay import demo_history_wanted

    return demo_history_wanted(settings)


def run_history_replay(
    settings: Settings, days: int, *, before_embeddings: threading.Thread | None = None
) -> int:
    """`ingest --history DAYS`: delegate to pipelines.replay, then start the offer embeddings
    once, as a plain ingest does (in the background when Dagster answers); exit 1 naming what
    failed when a day's run failed."""
    for variable, value in services.child_environment(settings).items():
        os.environ.setdefault(variable, value)
    services.write_dagster_yaml(settings)
    from pipelines.replay import HistoryReplayError, replay_sandbox_history

    started = time.monotonic()
    try:
        reports = replay_sandbox_history(days, progress=print)
    except HistoryReplayError as exc:
        print(f"ingest --history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    failures = [
        line
        for report in reports
        for line in ingest_failure_lines(
            report, failed_steps_of_run=lambda run_id: failed_steps_of_run(settings, run_id)
        )
    ]
    if failures:
        for line in failures:
            print(line, file=sys.stderr)
        return EXIT_FAILED
    print(
        f"ingest with {days} days of history finished in {time.monotonic() - started:.0f}s: "
        "keyword search is live"
    )
    if before_embeddings is not None:
        before_embeddings.join()  # the Dagster UI that takes the background run
    return start_offer_embeddings(settings)


def run_ingest(
    settings: Settings,
    *,
    marketplaces: Sequence[str],
    before_embeddings: threading.Thread | None = None,
) -> int:
    """Call `pipelines.run.materialize_all`; exit 1 naming what failed: the partitions
    (marketplaces), the downstream assets, or the downstream run's failed steps.

    Runs are recorded in the same DAGSTER_HOME as `dagster dev`, so they appear in its UI.
    """
    for variable, value in services.child_environment(settings).items():
        os.environ.setdefault(variable, value)
    postgres = services.dagster_postgres_url(settings)
    if postgres:  # with the driver dagster-postgres needs named
        os.environ["ONECART_DAGSTER_POSTGRES_URL"] = postgres
    services.write_dagster_yaml(settings)
    try:
        from pipelines.run import materialize_all
    except ImportError as exc:
        print(f"ingest unavailable: pipelines.run does not import ({exc})", file=sys.stderr)
        return EXIT_FAILED
    # Keyword search goes live first; the embeddings follow in a background run.
    options: dict[str, Any] = {"progress": print, "embeddings": False}
    if marketplaces:
        options["marketplaces"] = list(marketplaces)
    print(
        "ingest: materializing the pipeline"
        + (f" for {', '.join(marketplaces)}" if marketplaces else "")
    )
    started = time.monotonic()
    try:
        if settings.profile == "cluster":
            result = ingest_through_the_queue(settings, marketplaces)
        else:
            result = materialize_all(**options)
    except Exception as exc:  # the pipeline's own failure: report it, never a traceback wall
        print(f"ingest failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    failures = ingest_failure_lines(
        result, failed_steps_of_run=lambda run_id: failed_steps_of_run(settings, run_id)
    )
    if failures:
        for line in failures:
            print(line, file=sys.stderr)
        return EXIT_FAILED
    print(f"ingest finished in {time.monotonic() - started:.0f}s: keyword search is live")
    if before_embeddings is not None:
        before_embeddings.join()  # the Dagster UI that takes the background run
    return start_offer_embeddings(settings)


def ingest_through_the_queue(settings: Settings, marketplaces: Sequence[str]) -> object:
    """The cluster profile's ingest: queued runs that the daemon launches concurrently."""
    from pipelines.queued_run import materialize_all_queued

    by_name = {service.name: service for service in services.build_services(settings)}
    if not supervision.inspect_service(settings, by_name["dagster"]).healthy:
        raise processes.ProcessError(
            f"the cluster profile ingests through Dagster's run queue, and nothing answers at "
            f"{settings.dagster_url}: start `dagster` and `dagster-daemon` (docs/deploy.md)"
        )
    return materialize_all_queued(settings, marketplaces=list(marketplaces) or None)


def start_offer_embeddings(settings: Settings) -> int:
    """Run the offer embeddings in the background through Dagster when its webserver answers
    (the assistant switches to hybrid search when they are in), else here in the foreground."""
    from pipelines.run import dagster_instance, launch_offer_embeddings

    by_name = {service.name: service for service in services.build_services(settings)}
    if supervision.inspect_service(settings, by_name["dagster"]).healthy:
        try:
            run_id = launch_offer_embeddings(settings)
        except Exception as exc:  # Dagster refused the run: say so and embed here instead
            print(f"offer embeddings: background run refused ({exc}); embedding here")
        else:
            print(
                f"offer embeddings: background run {run_id} "
                f"({settings.dagster_url}/runs/{run_id}); the assistant uses keyword search "
                "until it finishes (`onecart status` shows its progress)"
            )
            return EXIT_OK
    from dagster import DagsterEventType

    from pipelines.definitions import build_definitions
    from pipelines.jobs import OFFER_EMBEDDINGS_JOB
    from pipelines.run import QUIET_RUN_CONFIG, dagster_home

    instance = dagster_instance(dagster_home(settings))
    try:
        job = build_definitions(settings).resolve_job_def(OFFER_EMBEDDINGS_JOB)
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
    finally:
        instance.dispose()
    if not result.success:
        failed = sorted(
            {
                e.step_key or ""
                for e in result.all_events
                if e.event_type == DagsterEventType.STEP_FAILURE
            }
        )
        print(f"offer embeddings failed in step(s): {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    print("offer embeddings: done; the assistant uses hybrid search")
    return EXIT_OK


def _read_result(result: object, key: str) -> Any:
    """`key` of materialize_all's result: an attribute of `pipelines.run.IngestReport`, or the
    same key of a mapping."""
    if result is None:
        return None
    return result.get(key) if isinstance(result, Mapping) else getattr(result, key, None)


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence | set | frozenset):
        return [str(item) for item in value]
    return []


def failed_partitions(result: object) -> list[str]:
    """The marketplaces whose partition failed in `materialize_all`'s result."""
    return _names(_read_result(result, "failed_partitions"))


def failed_downstream_assets(result: object) -> list[str]:
    """The downstream assets (fx_rates, product_groups, search_products, …) that failed."""
    return _names(_read_result(result, "failed_downstream_assets"))


def ingest_failure_lines(
    result: object, *, failed_steps_of_run: Callable[[str], list[str]] | None = None
) -> list[str]:
    """What the operator is told when an ingest fails; empty when it succeeded.

    Partitions and downstream assets are named on lines of their own, so a broken search index
    is never reported as a broken marketplace. When the report says the run failed but names
    neither (a failed asset check, or a run that failed before any step), the downstream run's
    failed steps are looked up with `failed_steps_of_run`, and the run id is given either way so
    the operator can open its log in the Dagster UI.
    """
    partitions = failed_partitions(result)
    assets = failed_downstream_assets(result)
    lines = []
    if partitions:
        lines.append(
            f"ingest failed for partition(s): {', '.join(partitions)} "
            "(their last good catalogs are kept)"
        )
    if assets:
        lines.append(f"ingest failed in downstream asset(s): {', '.join(assets)}")
    reported_failure = _read_result(result, "success") is False
    if reported_failure and not partitions and not assets:
        run_id = _read_result(result, "downstream_run_id")
        steps = failed_steps_of_run(run_id) if run_id and failed_steps_of_run else []
        where = f"downstream run {run_id}" if run_id else "the downstream run"
        if steps:
            lines.append(f"ingest failed in {where}, step(s): {', '.join(steps)}")
        else:
            lines.append(
                f"ingest failed: {where} reported failure without a failed asset or step; "
                "its log is in the Dagster UI (onecart up, then Runs)"
            )
    return lines


def failed_steps_of_run(settings: Settings, run_id: str) -> list[str]:
    """The step keys that failed in one run of the Dagster instance `ingest` records into (asset
    checks have steps of their own, which the ingest report does not name)."""
    import dagster as dg

    from pipelines.run import dagster_home, dagster_instance

    instance = dagster_instance(dagster_home(settings))
    try:
        entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    finally:
        instance.dispose()
    return sorted({entry.step_key for entry in entries if entry.step_key})


def command_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    """Replace this process with the sandbox's own CLI, so Ctrl-C and exit codes are its own."""
    sandbox_args = list(args.args)
    if sandbox_args and sandbox_args[0] == "--":
        sandbox_args = sandbox_args[1:]
    if not sandbox_args:
        sandbox_args = [
            "serve",
            "--host",
            settings.sandbox_host,
            "--port",
            str(settings.sandbox_port),
            "--offers",
            str(settings.sandbox_offers),
            "--seed",
            str(settings.sandbox_seed),
        ]
    argv = [sys.executable, "-m", "sandbox", *sandbox_args]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return EXIT_FAILED  # pragma: no cover - execv does not return


def command_logs(settings: Settings, args: argparse.Namespace) -> int:
    """Print the end of logs/<name>.log; with --follow keep printing until Ctrl-C."""
    log_path = processes.log_dir(settings) / f"{args.name}.log"
    if not log_path.exists():
        available = sorted(path.stem for path in processes.log_dir(settings).glob("*.log"))
        print(
            f"no log for {args.name!r} in {log_path.parent}"
            + (f"; logs: {', '.join(available)}" if available else ""),
            file=sys.stderr,
        )
        return EXIT_FAILED
    text = processes.tail(log_path, args.lines)
    if text:
        print(text)
    if args.follow:
        follow_file(log_path)
    return EXIT_OK


def follow_file(path: Path, *, poll_seconds: float = 0.5) -> None:
    """Print lines appended to `path` until interrupted (`tail -f` without a subprocess)."""
    with open(path, errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while True:
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(poll_seconds)


def command_localstripe(settings: Settings, args: argparse.Namespace) -> int:
    """Serve localstripe on one address (its own CLI listens on every interface).

    Its store is saved under ONECART_HOME instead of the world-writable /tmp/localstripe.pickle,
    so payments survive a restart without loading a pickle anyone on the machine could write.
    """
    import logging
    import pickle

    from aiohttp import web
    from localstripe.resources import store
    from localstripe.server import app

    state_path = settings.home_dir / "localstripe" / "store.pickle"
    state_path.parent.mkdir(parents=True, exist_ok=True)

    def save_store() -> None:
        temporary = state_path.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            pickle.dump(dict(store), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, state_path)

    if not args.from_scratch and state_path.exists():
        with open(state_path, "rb") as handle:
            store.update(pickle.load(handle))
    store.dump_to_disk = save_store  # the library's Store calls this after every change

    access_log = logging.getLogger("aiohttp.access")
    access_log.setLevel(logging.INFO)
    access_log.addHandler(logging.StreamHandler())
    web.run_app(app, host=args.host, port=args.port, access_log=access_log, print=print)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
