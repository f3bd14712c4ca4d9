"""`onecart up/down/status` on top of supervisord: every service runs as a supervisor program
that is restarted when it dies, started, restarted and stopped with its whole process group.

`onecart up` writes $ONECART_HOME/supervisor/supervisord.conf from the service catalog
(onecart/services.py), starts supervisord if it is not running (or has it reread the file), then
starts the selected programs in order and waits until each answers its health probe. A small
event listener (onecart/restart_listener.py) counts each program's unexpected exits for
`onecart status` and stops what is left of a dead program's process group, so a killed worker's
children never outlive it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from supervisor.xmlrpc import Faults

from onecart.processes import MissingProgramError, ProcessError, log_dir, run_dir, tail
from onecart.services import STOP_TIERS, Service, child_environment, host_port, is_this_machine
from onecart.settings import REPO_ROOT, Settings
from onecart.supervisor_config import (
    LISTENER,
    config_path,
    render_config,
    restart_counts,
    restarts_path,
    socket_path,
)

RUNNING_STATES: Final = frozenset({"STARTING", "RUNNING", "BACKOFF"})
# supervisord's startProcess answers with one of these when the program died before the call
# returned (it reaps the child at once): the same failure `wait_until_healthy` reports later
# when the death comes after the call.
DIED_WHILE_STARTING_FAULTS: Final = frozenset({Faults.SPAWN_ERROR, Faults.ABNORMAL_TERMINATION})
FAILED_STATES: Final = frozenset({"BACKOFF", "FATAL", "EXITED"})
# A program asked to stop is down once it leaves these.
STOPPING_STATES: Final = frozenset({"STOPPING", "STARTING", "RUNNING"})


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What `status` shows for one service.

    status: `running` (ours, answering), `starting` (ours, alive, not answering yet),
    `restarting` (ours, between a death and its restart), `failed` (ours, gave up restarting),
    `external` (answering, not started by OneCart), `stopped`.
    """

    name: str
    title: str
    status: str
    pid: int | None
    url: str | None
    healthy: bool
    restarts: int


@dataclass(frozen=True, slots=True)
class ServiceOutcome:
    """What `up` did with one service: started, already running, external, skipped or failed."""

    name: str
    action: str
    pid: int | None = None
    detail: str = ""


def rpc(settings: Settings) -> Any:
    """An XML-RPC proxy to supervisord over its Unix socket."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{socket_path(settings)}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def supervisord_running(settings: Settings) -> bool:
    if not socket_path(settings).exists():
        return False
    try:
        return rpc(settings).supervisor.getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def ensure_supervisord(
    settings: Settings, services: Sequence[Service], *, report: Callable[[str], None]
) -> None:
    """Write the config; start supervisord, or make a running one apply the new config (only
    programs whose configuration changed are restarted)."""
    path = config_path(settings)
    text = render_config(settings, services)
    changed = not path.exists() or path.read_text() != text
    if changed:
        path.write_text(text)
        path.chmod(0o600)  # it carries the services' environment (keys, passwords)
    if supervisord_running(settings):
        if changed:
            apply_config_changes(settings)
        return
    restarts_path(settings).unlink(missing_ok=True)
    log_path = log_dir(settings) / "supervisord.log"
    completed = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(path)],
        env={**os.environ, **child_environment(settings)},
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise ProcessError(
            f"supervisord did not start: {completed.stderr.strip()}\n{tail(log_path)}"
        )
    deadline = time.monotonic() + 30
    while not supervisord_running(settings):
        if time.monotonic() > deadline:
            raise ProcessError(f"supervisord did not answer within 30s:\n{tail(log_path)}")
        time.sleep(0.1)
    report(f"  supervisord started ({path})")


def apply_config_changes(settings: Settings) -> None:
    """What `supervisorctl update` does: reread the file, restart changed programs, add new
    ones (stopped: `up` starts them) and remove vanished ones."""
    server = rpc(settings)
    [[added, changed, removed]] = server.supervisor.reloadConfig()
    for name in removed + changed:
        info = _process_info(settings, name)
        if info and info["statename"] in RUNNING_STATES:
            server.supervisor.stopProcess(name)
        server.supervisor.removeProcessGroup(name)
    for name in added + changed:
        server.supervisor.addProcessGroup(name)


def _process_info(settings: Settings, name: str) -> dict[str, Any] | None:
    try:
        return rpc(settings).supervisor.getProcessInfo(name)
    except xmlrpc.client.Fault:
        return None  # not a program (not managed here, or the config does not have it)
    except OSError:
        return None  # supervisord is not running


def program_running(settings: Settings, name: str) -> bool:
    """Whether supervisord runs the program (starting, running or between restarts)."""
    if not supervisord_running(settings):
        return False
    info = _process_info(settings, name)
    return info is not None and info["statename"] in RUNNING_STATES


def _running_pid(info: Mapping[str, Any] | None) -> int | None:
    if info and info["statename"] in {"STARTING", "RUNNING"} and info["pid"]:
        return int(info["pid"])
    return None


def inspect_service(settings: Settings, service: Service) -> ServiceState:
    """The service's supervisor state, its pid, its health probe and its restart count."""
    info = _process_info(settings, service.name) if supervisord_running(settings) else None
    pid = _running_pid(info)
    healthy = service.probe(pid) if (pid is not None or service.url) else False
    state = info["statename"] if info else "STOPPED"
    if pid is not None:
        status = "running" if healthy else "starting"
    elif state == "BACKOFF":
        status = "restarting"
    elif state == "FATAL":
        status = "failed"
    else:
        status = "external" if healthy else "stopped"
    return ServiceState(
        name=service.name,
        title=service.title,
        status=status,
        pid=pid,
        url=service.url,
        healthy=healthy,
        restarts=restart_counts(settings).get(service.name, 0),
    )


def exited_while_starting(settings: Settings, name: str) -> ProcessError:
    log_path = log_dir(settings) / f"{name}.log"
    return ProcessError(
        f"{name} exited while starting; last lines of {log_path}:\n{tail(log_path)}"
    )


def start_program(settings: Settings, name: str) -> None:
    """Have supervisord start the program without waiting for it to come up.

    A program that dies at once may be reaped inside the call, which then fails with
    SPAWN_ERROR: it is reported like a death noticed later (with its log's end), and stopped so
    supervisord does not retry it in the background."""
    server = rpc(settings)
    try:
        server.supervisor.startProcess(name, False)
    except xmlrpc.client.Fault as fault:
        if fault.faultCode not in DIED_WHILE_STARTING_FAULTS:
            raise
        with contextlib.suppress(xmlrpc.client.Fault):  # already given up (FATAL)
            server.supervisor.stopProcess(name)
        raise exited_while_starting(settings, name) from fault


def wait_until_healthy(settings: Settings, service: Service, *, timeout: float) -> int:
    """Poll the program's state and the service's probe until it answers; returns its pid.
    Fails early, with the log's end, when the program exits while starting."""
    log_path = log_dir(settings) / f"{service.name}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _process_info(settings, service.name)
        if info is None or info["statename"] in FAILED_STATES | {"STOPPED"}:
            raise exited_while_starting(settings, service.name)
        pid = _running_pid(info)
        if pid is not None and service.probe(pid):
            return pid
        time.sleep(0.25)
    raise ProcessError(
        f"{service.name} did not answer within {timeout:.0f}s; last lines of {log_path}:\n"
        f"{tail(log_path)}"
    )


def start_services(
    settings: Settings,
    services: Sequence[Service],
    *,
    catalog: Sequence[Service] | None = None,
    report: Callable[[str], None] = print,
    defer: Iterable[str] = (),
) -> list[ServiceOutcome]:
    """Start what is not running yet, leave the rest alone (idempotent), wait until each answers.

    Services start without waiting for each other, except where one `requires` another; a
    failure stops that service (and skips its dependants) but not the others. Services named in
    `defer` are started but not waited for (outcome `starting`): :func:`wait_for_services`
    does that later, so `up --ingest` loads catalogs while Dagster and the site come up. `catalog` is every
    service of the profile (the supervisor config lists them all, so a later `up --only` finds
    its program). Raises :class:`MissingProgramError` before starting anything when Redis is
    needed, absent and not installed, because nothing else would work without it.
    """
    for directory in ("logs", "run", "meili", "redis"):
        (settings.home_dir / directory).mkdir(parents=True, exist_ok=True)
    for service in services:
        if service.name == "redis" and service.managed and not service.probe(None):
            reason = service.why_unavailable()
            if reason:
                raise MissingProgramError(reason)
    taken = [
        message
        for service in services
        if (message := _port_held_by_another_program(settings, service)) is not None
    ]
    if taken:
        raise ProcessError("nothing started: " + "\n".join(taken))
    if not supervisord_running(settings) and all(
        service.url and service.probe(None) for service in services
    ):
        # Everything asked for already answers and none of it is ours (e.g. `make test`'s
        # `up --only redis` beside the machine's Redis): no supervisord to leave behind.
        for service in services:
            report(f"= {service.title} answers at {service.url} (not started by onecart)")
        return [
            ServiceOutcome(
                service.name, "external", None, "answering, not started by onecart; left alone"
            )
            for service in services
        ]
    ensure_supervisord(settings, catalog or services, report=report)
    server = rpc(settings)

    outcomes: dict[str, ServiceOutcome] = {}
    pending: dict[str, Service] = {}

    def fail(service: Service, detail: str) -> None:
        outcomes[service.name] = ServiceOutcome(service.name, "failed", None, detail)
        report(f"✗ {service.title}: {detail}")

    def settle(name: str) -> None:
        service = pending.pop(name)
        try:
            pid = wait_until_healthy(settings, service, timeout=service.startup_timeout)
        except ProcessError as exc:
            if _process_info(settings, name) is not None:
                # Already stopped or fatal: nothing left to stop.
                with contextlib.suppress(xmlrpc.client.Fault):
                    server.supervisor.stopProcess(name)
            fail(service, str(exc))
        else:
            outcomes[name] = ServiceOutcome(name, "started", pid)
            report(f"✓ {service.title} started (pid {pid}) {service.url or ''}".rstrip())

    for service in services:
        info = _process_info(settings, service.name)
        pid = _running_pid(info)
        if pid is not None:
            if service.probe(pid):
                outcomes[service.name] = ServiceOutcome(service.name, "already running", pid)
                report(f"= {service.title} already running (pid {pid})")
            else:
                pending[service.name] = service  # an earlier `up` is still bringing it up
            continue
        if service.url and service.probe(None):
            outcomes[service.name] = ServiceOutcome(
                service.name, "external", None, "answering, not started by onecart; left alone"
            )
            report(f"= {service.title} answers at {service.url} (not started by onecart)")
            continue
        if not service.managed:
            fail(service, f"nothing answers at {service.url}, and it is not on this machine")
            continue
        missing = service.missing_program()
        if missing:
            fail(service, missing)
            continue
        reason = service.why_unavailable()
        if reason:
            outcomes[service.name] = ServiceOutcome(service.name, "skipped", None, reason)
            report(f"- {service.title} skipped: {reason}")
            continue
        for dependency in service.requires:
            if dependency in pending:
                settle(dependency)
        failed = [
            dependency
            for dependency in service.requires
            if outcomes.get(dependency) and outcomes[dependency].action in {"failed", "skipped"}
        ]
        if failed:
            detail = f"needs {', '.join(failed)}, which did not start"
            outcomes[service.name] = ServiceOutcome(service.name, "skipped", None, detail)
            report(f"- {service.title} skipped: {detail}")
            continue
        try:
            note = service.prepare() if service.prepare is not None else None
            if note:
                report(f"  {note}")
            if info is not None and info["statename"] in RUNNING_STATES:
                server.supervisor.stopProcess(service.name)  # BACKOFF: start it afresh
            start_program(settings, service.name)
        except (ProcessError, OSError, xmlrpc.client.Fault) as exc:
            fail(service, str(exc))
            continue
        pending[service.name] = service

    deferred = set(defer)
    for name in list(pending):
        if name in deferred:
            outcomes[name] = ServiceOutcome(name, "starting")
        else:
            settle(name)
    return [outcomes[service.name] for service in services]


def port_in_use(host: str, port: int) -> bool:
    """Whether another socket listens on host:port (binding there, as the service would, fails)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the servers do: a closed connection's TIME_WAIT does not count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _port_held_by_another_program(settings: Settings, service: Service) -> str | None:
    """Why the service cannot listen where the settings say, when another program (one that does
    not answer as this service) holds its port; None otherwise. Said before anything starts,
    instead of after a start that ends in the server's own `Address already in use`."""
    if not (service.managed and service.url and service.address_variable):
        return None
    host, port = host_port(service.url, 0)
    if not port or not is_this_machine(host):
        return None
    if supervisord_running(settings):
        info = _process_info(settings, service.name)
        if info is not None and info["statename"] in RUNNING_STATES:
            return None  # ours, running or on its way up: `up` leaves it alone
    if service.probe(None) or not port_in_use(host, port):
        return None  # the service itself answers there (left alone), or the port is free
    return (
        f"port {port} on {host} is already in use by another program, which does not answer "
        f"as {service.title}: stop that program (`ss -ltnp 'sport = :{port}'` names it), "
        f"or set {service.address_variable} to a free port (docs/configuration.md)"
    )


def wait_for_services(
    settings: Settings,
    services: Sequence[Service],
    *,
    report: Callable[[str], None] = print,
) -> list[ServiceOutcome]:
    """Wait until each service `start_services(defer=...)` left starting answers (or stop it
    and report why it did not)."""
    outcomes = []
    for service in services:
        try:
            pid = wait_until_healthy(settings, service, timeout=service.startup_timeout)
        except ProcessError as exc:
            with contextlib.suppress(xmlrpc.client.Fault, OSError):
                rpc(settings).supervisor.stopProcess(service.name)
            outcomes.append(ServiceOutcome(service.name, "failed", None, str(exc)))
            report(f"✗ {service.title}: {exc}")
        else:
            outcomes.append(ServiceOutcome(service.name, "started", pid))
            report(f"✓ {service.title} started (pid {pid}) {service.url or ''}".rstrip())
    return outcomes


def stop_services(
    settings: Settings,
    names: Iterable[str] = (),
    *,
    report: Callable[[str], None] = print,
) -> list[str]:
    """Stop the programs (each with its process group) tier by tier (services.STOP_TIERS: the
    programs of a tier at once, the next tier once they are all down); with no names, stop the
    restart listener and supervisord too. Services OneCart did not start (an external Redis) are
    never touched."""
    if not supervisord_running(settings):
        return []
    server = rpc(settings)
    wanted = set(names)
    programs = {info["name"]: info for info in server.supervisor.getAllProcessInfo()}
    stopped: list[str] = []
    for tier in STOP_TIERS:
        running = {
            name: programs[name]["pid"]
            for name in tier
            if name in programs
            and (not wanted or name in wanted)
            and programs[name]["statename"] in RUNNING_STATES
        }
        stopped += _stop_together(server, running, report)
    if not wanted:
        # The listener last (it cleans up after programs that die), and before the shutdown:
        # supervisord stops one program group per turn of its loop, which idles a second when
        # nothing happens, so a listener left to it waited for every other group's turn.
        with contextlib.suppress(xmlrpc.client.Fault):  # not running (it died and gave up)
            server.supervisor.stopProcess(LISTENER)
        pid_file = run_dir(settings) / "supervisord.pid"
        supervisord_pid = int(pid_file.read_text()) if pid_file.exists() else None
        server.supervisor.shutdown()
        deadline = time.monotonic() + 30
        while supervisord_pid and _alive(supervisord_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        socket_path(settings).unlink(missing_ok=True)
    return stopped


def _stop_together(
    server: Any, running: Mapping[str, int], report: Callable[[str], None]
) -> list[str]:
    """Ask supervisord to stop every program of `running` (name -> pid) without waiting, then
    wait until each is down (supervisord SIGKILLs a group after STOPWAITSECS); returns the
    names asked."""
    asked: list[str] = []
    for name in running:
        try:
            server.supervisor.stopProcess(name, False)
        except xmlrpc.client.Fault as fault:
            # NOT_RUNNING: it exited meanwhile, and is down like the others.
            if fault.faultCode != Faults.NOT_RUNNING:
                report(f"could not stop {name}: {fault.faultString}")
                continue
        asked.append(name)
    pending = {name: running[name] for name in asked}
    while pending:
        for name in list(pending):
            if server.supervisor.getProcessInfo(name)["statename"] not in STOPPING_STATES:
                report(f"stopped {name} (pid {pending.pop(name)})")
        if pending:
            time.sleep(0.1)
    return asked


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
