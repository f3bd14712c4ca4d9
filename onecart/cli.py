"""`onecart`: the operator's command for running OneCart on one machine.

    onecart up [--ingest] [--profile local|cluster] [--no-site] [--only NAME ...] [--skip NAME ...]
    onecart down [NAME ...]
    onecart status
    onecart ingest [--marketplace SLUG ...]
    onecart sandbox [ARGS ...]
    onecart logs NAME [-n LINES] [-f]
    onecart sql [--csv] [QUERY]

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
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from onecart import catalog_status, dagster_runs, processes, progress, services, supervision
from onecart.cli_parser import build_parser
from onecart.exit_codes import EXIT_FAILED, EXIT_MISSING_PROGRAM, EXIT_OK, EXIT_USAGE
from onecart.home_state import (
    PROFILE_FILE,
    home_problem,
    remember_addresses,
    use_remembered_addresses,
    with_profile,
)
from onecart.ingest_command import (
    demo_history_notice,
    history_replay_interrupted,
    run_history_replay,
    run_ingest,
    wants_demo_history,
)
from onecart.settings import Settings, get_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `onecart` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        problem = home_problem(get_settings().home_dir)
        if problem:
            print(f"onecart: {problem}", file=sys.stderr)
            return EXIT_USAGE
        use_remembered_addresses(get_settings().home_dir)
        settings = with_profile(get_settings(), getattr(args, "profile", None))
    except ValidationError as error:
        print(describe_invalid_settings(error), file=sys.stderr)
        return EXIT_USAGE
    handlers: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
        "up": command_up,
        "down": command_down,
        "status": command_status,
        "ingest": command_ingest,
        "sandbox": command_sandbox,
        "logs": command_logs,
        "localstripe": command_localstripe,
        "sql": command_sql,
    }
    try:
        return handlers[args.command](settings, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went first (`onecart status | head -3`): end as a program killed by
        # SIGPIPE does, without a traceback, and without the one Python would print when it
        # flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE


def describe_invalid_settings(error: ValidationError) -> str:
    """One line per variable the environment got wrong, with its value and what it must be."""
    lines = ["onecart: invalid setting(s) in the environment (docs/configuration.md):"]
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"]) or "settings"
        value = problem.get("input")
        shown = f"{name}={value!r}" if isinstance(value, str) else name
        # A field validator's own message reads "Value error, must be …": keep the "must be".
        lines.append(f"  {shown}: {problem['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def command_up(settings: Settings, args: argparse.Namespace) -> int:
    """Start what is not running, wait until it answers, optionally ingest, print the URLs."""
    skip = list(args.skip)
    if args.no_site:
        skip += ["site", "worker", "cron"]
    catalog = services.build_services(settings)
    selected = services.select_services(catalog, only=args.only, skip=skip)
    print(f"OneCart home: {settings.home_dir} (profile {settings.profile})")
    processes.run_dir(settings).joinpath(PROFILE_FILE).write_text(settings.profile)
    remember_addresses(settings.home_dir, os.environ)
    clock = progress.Stopwatch()
    # With --ingest, the catalogs load as soon as what the ingest needs answers, while the
    # slower services (Dagster, the site) finish starting beside it.
    ingest_needs = services.ingest_needs(settings)
    needed = {"redis", *ingest_needs}
    if settings.profile == "cluster":  # its ingest goes through Dagster's run queue
        needed |= {"dagster", "dagster-daemon"}
    deferred = [s for s in selected if s.name not in needed] if args.ingest else []
    # A failed up stops what it started (below): supervisord too when this up started it.
    supervisord_was_running = supervision.supervisord_running(settings)
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
        if not supervisord_was_running:  # e.g. supervisord started but never answered
            undo_failed_up(settings, [], supervisord_started=True)
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
            for name in ingest_needs
            if not supervision.inspect_service(settings, by_name[name]).healthy
        ]
        if missing:
            print(
                f"ingest not run: {', '.join(missing)} not answering (the reason is above): "
                "fix that, then run `make run` (or `onecart up --ingest`) again",
                file=sys.stderr,
            )
            exit_code = EXIT_FAILED
        elif wants_demo_history(settings):
            if not history_replay_interrupted(settings):
                print(demo_history_notice(settings.demo_history_days))
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
    if failed:
        started = [o.name for o in outcomes if o.action in {"started", "starting"}]
        undo_failed_up(settings, started, supervisord_started=not supervisord_was_running)
    elif any(o.name == "dagster" and o.action in {"started", "already running"} for o in outcomes):
        # What `down` cancelled carries on (after an ingest, what it did not do again).
        from onecart.ingest_command import embeddings_enabled

        skip = (
            frozenset() if embeddings_enabled() else frozenset({dagster_runs.OFFER_EMBEDDINGS_JOB})
        )
        dagster_runs.resume_runs_stopped_by_down(settings, report=print, skip_jobs=skip)
    return exit_code


def undo_failed_up(
    settings: Settings, started: Sequence[str], *, supervisord_started: bool
) -> None:
    """Stop what a failed `up` started, and say so: a half-started set (and a supervisord
    restarting its programs) must not outlive the command that reported the failure. Services
    an earlier `up` started are left running."""
    if supervisord_started and supervision.supervisord_running(settings):
        stopped = [*supervision.stop_services(settings, report=print), "supervisord"]
    elif started:
        stopped = supervision.stop_services(settings, started, report=print)
    else:
        stopped = []
    if stopped:
        print(f"up failed: stopped what it started ({', '.join(stopped)})", file=sys.stderr)
    else:
        print("up failed: it started nothing that is still running", file=sys.stderr)


def command_down(settings: Settings, args: argparse.Namespace) -> int:
    """Stop the services (each with its process group) and supervisord; an external Redis is
    never touched."""
    unknown = set(args.names) - set(services.SERVICE_ORDER)
    if unknown:
        print(
            f"unknown service(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join(services.SERVICE_ORDER)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if (not args.names or "dagster" in args.names) and supervision.program_running(
        settings, "dagster"
    ):
        # Runs end as Dagster's own cancellations (the embeddings run resumes at the next `up`)
        # instead of being torn down with Dagster, which then outlived its stop timeout.
        dagster_runs.cancel_unfinished_runs(settings, report=print)
    stopped = supervision.stop_services(settings, args.names, report=print)
    if not stopped:
        print("nothing to stop")
    return EXIT_OK


def command_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print each service's state; exit 0 whatever the state (status is a question)."""
    print(f"OneCart home: {settings.home_dir} (profile {settings.profile})")
    states = print_service_table(settings, [s.name for s in services.build_services(settings)])
    # Both sections read the same Dagster instance: opened once.
    # The webserver this home's `up` started (ours, answering) has Dagster loaded: asking it
    # spares status importing Dagster and opening the instance (~2.4 s of CPU).
    webserver = next((s for s in states if s.name == "dagster" and s.status == "running"), None)
    dagster = catalog_status.DagsterReader(
        settings, graphql_url=f"{settings.dagster_url}/graphql" if webserver else None
    )
    try:
        print("\n" + "\n".join(catalog_status.describe_catalogs(settings, dagster)))
        print("\n" + "\n".join(catalog_status.describe_checks(settings, dagster)))
    finally:
        dagster.close()
    loading = progress.describe_loading(settings)
    if loading:
        print(f"\n{loading}")
    if not supervision.supervisord_running(settings):
        # Answering services with no supervisord here are most often another home's (a new
        # terminal with another ONECART_HOME): `make run` would start a second set beside them.
        # Redis is left out: a Redis of the machine's own is usual.
        others = [s for s in states if s.status == "external" and s.name != "redis"]
        if others:
            answering = ", ".join(f"{s.name} at {_display_url(s.url)}" for s in others)
            print(f"\nanswering, but not started from this home ({settings.home_dir}): {answering}")
            print(
                "if `onecart up` started them, set ONECART_HOME to the home `onecart up` used "
                "(its first line names it); `onecart status`, `down` and `logs` see them there"
            )
        else:
            print(
                "\nnothing of OneCart runs here: `make run` starts it "
                "(or `.venv/bin/onecart up --ingest`)"
            )
    return EXIT_OK


def print_service_table(settings: Settings, names: Sequence[str]) -> list[supervision.ServiceState]:
    """A table of services: what runs where, its own pid, how often it was restarted."""
    catalog = {service.name: service for service in services.build_services(settings)}
    rows = [("SERVICE", "STATE", "PID", "RESTARTS", "HEALTH", "URL")]
    states = []
    for name in names:
        state = supervision.inspect_service(settings, catalog[name])
        states.append(state)
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
    return states


def _display_url(url: str | None) -> str:
    return services.display_url(url) or "-"


def command_ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Materialize the pipeline once, in this process, with progress on stdout."""
    if args.marketplace:
        unknown = unknown_marketplace_line(settings, args.marketplace)
        if unknown:
            # A usage error, said before anything starts (the pipeline raised it only after
            # building its definitions, and exited as a failed partition does).
            print(unknown, file=sys.stderr)
            return EXIT_USAGE
    if getattr(args, "history", 0):
        exit_code = run_history_replay(settings, args.history)
    else:
        exit_code = run_ingest(settings, marketplaces=args.marketplace)
    if exit_code != EXIT_OK:
        for line in services_not_answering(settings):
            print(line, file=sys.stderr)
    return exit_code


def unknown_marketplace_line(settings: Settings, slugs: Sequence[str]) -> str | None:
    """The line naming the first of `slugs` that is not an active marketplace, with the
    configured ones; None when every one is (or marketplaces.toml cannot be read: the ingest
    says why)."""
    from pipelines.partitions import marketplace_slugs

    try:
        known = marketplace_slugs(settings)
    except Exception:  # the ingest reports an unreadable file itself
        return None
    for slug in slugs:
        if slug not in known:
            return f"onecart ingest: unknown marketplace {slug!r}; configured: {', '.join(known)}"
    return None


def services_not_answering(settings: Settings) -> list[str]:
    """After a failed ingest: the services it needs that do not answer, and how to start them.
    Running it after `make down`, or under another ONECART_HOME than `up`'s (whose addresses are
    remembered there), fails with connection errors that alone do not say so."""
    catalog = {service.name: service for service in services.build_services(settings)}
    lines = [
        f"{name} does not answer at {_display_url(catalog[name].url)}"
        for name in services.ingest_needs(settings)
        if not supervision.inspect_service(settings, catalog[name]).healthy
    ]
    if lines:
        lines.append(
            f"start the services with `make run` or `onecart up` (OneCart home: "
            f"{settings.home_dir}; set ONECART_HOME to the one `up` used), then run this again"
        )
    return lines


def command_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    """Replace this process with the sandbox's own CLI, so Ctrl-C and exit codes are its own."""
    sandbox_args = list(args.args)
    if sandbox_args and sandbox_args[0] == "--":
        sandbox_args = sandbox_args[1:]
    if not sandbox_args:
        sandbox_args = processes.sandbox_serve_args(
            settings.sandbox_host,
            settings.sandbox_port,
            offers=settings.sandbox_offers,
            seed=settings.sandbox_seed,
        )
    argv = [sys.executable, "-m", "sandbox", *sandbox_args]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return EXIT_FAILED  # pragma: no cover - execv does not return


def command_logs(settings: Settings, args: argparse.Namespace) -> int:
    """Print the end of logs/<name>.log; with --follow keep printing until Ctrl-C."""
    log_path = processes.log_dir(settings) / f"{args.name}.log"
    if not log_path.exists():
        # supervisord's AUTO capture files (`<name>-stdout---supervisor-<random>.log`, the
        # restart listener's protocol stream) share the directory but are no service's log.
        available = sorted(
            path.stem
            for path in processes.log_dir(settings).glob("*.log")
            if "---supervisor-" not in path.stem
        )
        print(
            f"no log for {args.name!r} in {log_path.parent}"
            + (f"; logs: {', '.join(available)}" if available else ""),
            file=sys.stderr,
        )
        return EXIT_FAILED
    shown = _for_stdout()
    text = processes.tail(log_path, args.lines)
    if text:
        print(shown(text))
    if args.follow:
        follow_file(log_path, shown=shown)
    return EXIT_OK


# Terminal control sequences (CSI: colours, bold, cursor moves), as Dagster and rq colour lines.
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _for_stdout() -> Callable[[str], str]:
    """Log text as stdout should get it: colours for a terminal, none when piped to a file, grep
    or a ticket (escape codes there are noise)."""
    if sys.stdout.isatty():
        return lambda text: text
    return lambda text: _TERMINAL_CODES.sub("", text)


def follow_file(
    path: Path, *, poll_seconds: float = 0.5, shown: Callable[[str], str] = str
) -> None:
    """Print lines appended to `path` until interrupted (`tail -f` without a subprocess)."""
    with open(path, errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        while True:
            line = handle.readline()
            if line:
                sys.stdout.write(shown(line))
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
    # By hand, where the site and the workers look for it (as `onecart sandbox` serves at
    # ONECART_SANDBOX_PORT); on 127.0.0.1 unless --host says otherwise.
    port = args.port or services.host_port(settings.stripe_api_base or "", 8420)[1]
    web.run_app(app, host=args.host, port=port, access_log=access_log, print=print)
    return EXIT_OK


def command_sql(settings: Settings, args: argparse.Namespace) -> int:
    from warehouse import shell  # the analysts' shell needs none of the services' imports

    return shell.run(settings.warehouse_path, args.query, as_csv=args.csv)


if __name__ == "__main__":
    sys.exit(main())
