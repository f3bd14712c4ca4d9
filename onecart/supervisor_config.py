"""supervisord's configuration for `onecart up`: where its files and control socket live, and
the supervisord.conf rendered from the service catalog (onecart/services.py), one program per
service with the environment OneCart's settings read. Starting, stopping and watching the
programs is onecart/supervision.py's job.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from onecart.processes import log_dir, run_dir
from onecart.services import Service, child_environment
from onecart.settings import REPO_ROOT, Settings

# A program that exits within STARTSECS of its start failed to start; supervisord retries it with
# a growing back-off (1 s, 2 s, ...). One that dies later is restarted at once.
STARTSECS: Final = 3
STARTRETRIES: Final = 5
STOPWAITSECS: Final = 15
LOG_MAXBYTES: Final = "20MB"
# AF_UNIX paths are limited to 107 bytes; deep homes (pytest's tmp_path) get a socket in /tmp.
MAX_SOCKET_PATH: Final = 100
# Variables OneCart's settings read: a program's environment carries them explicitly, so a
# changed setting changes the program's configuration (and `up` restarts it).
FORWARDED_PREFIXES: Final = ("ONECART_", "MEILI_", "STRIPE_", "SMTP_", "DAGSTER_", "HF_")
FORWARDED_NAMES: Final = frozenset({"REDIS_URL", "DATABASE_URL", "SECRET_KEY"})
RESTARTS_FILE: Final = "restarts.json"
LISTENER: Final = "restart-listener"


def supervisor_dir(settings: Settings) -> Path:
    path = settings.home_dir / "supervisor"
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_path(settings: Settings) -> Path:
    return supervisor_dir(settings) / "supervisord.conf"


def socket_path(settings: Settings) -> Path:
    """supervisord's control socket: under ONECART_HOME/run, or in /tmp when that path is too
    long for a Unix socket (named after the home, so two homes never share one)."""
    path = run_dir(settings) / "supervisor.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(settings.home_dir).encode()).hexdigest()[:16]
    return Path("/tmp") / f"onecart-supervisor-{digest}.sock"


def _quote(value: str) -> str:
    """A value for supervisord's config: `%` is its interpolation character."""
    return value.replace("%", "%%")


def _environment_line(variables: Mapping[str, str]) -> str:
    pairs = []
    for key, value in sorted(variables.items()):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        pairs.append(f'{key}="{escaped}"')
    return _quote(",".join(pairs))


def forwarded_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """OneCart's own variables from `environ`, plus what every service gets (child_environment)."""
    forwarded = {
        key: value
        for key, value in environ.items()
        if key.startswith(FORWARDED_PREFIXES) or key in FORWARDED_NAMES
    }
    return {**forwarded, **child_environment(settings)}


def render_config(
    settings: Settings, services: Sequence[Service], environ: Mapping[str, str] | None = None
) -> str:
    """supervisord.conf: the control socket, the restart listener and one program per service
    this machine can run. Programs never start by themselves: `up` starts them in order."""
    environ = os.environ if environ is None else environ
    logs = log_dir(settings)
    shared_env = forwarded_environment(settings, environ)
    sections = [
        "; Written by `onecart up` (onecart/supervisor_config.py); edits are overwritten.",
        "[unix_http_server]",
        f"file={_quote(str(socket_path(settings)))}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_quote(str(logs / 'supervisord.log'))}",
        f"logfile_maxbytes={LOG_MAXBYTES}",
        f"pidfile={_quote(str(run_dir(settings) / 'supervisord.pid'))}",
        f"childlogdir={_quote(str(logs))}",
        f"directory={_quote(str(REPO_ROOT))}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_quote(str(socket_path(settings)))}",
        "",
        f"[eventlistener:{LISTENER}]",
        "command="
        + _quote(
            shlex.join(
                [sys.executable, "-m", "onecart.restart_listener", str(restarts_path(settings))]
            )
        ),
        "events=PROCESS_STATE_EXITED",
        "autostart=true",
        "autorestart=true",
        f"stderr_logfile={_quote(str(logs / 'restart-listener.log'))}",
        "",
    ]
    for service in services:
        if not service.managed or not service.argv:
            continue
        environment = {**shared_env, **service.env}
        sections += [
            f"[program:{service.name}]",
            f"command={_quote(shlex.join(service.argv))}",
            f"directory={_quote(str(REPO_ROOT))}",
            f"environment={_environment_line(environment)}",
            "autostart=false",
            "autorestart=true",
            f"startsecs={STARTSECS}",
            f"startretries={STARTRETRIES}",
            # The whole group gets the signal: uWSGI's, dagster's and the pool's children too.
            "stopasgroup=true",
            "killasgroup=true",
            f"stopwaitsecs={STOPWAITSECS}",
            "redirect_stderr=true",
            f"stdout_logfile={_quote(str(logs / f'{service.name}.log'))}",
            f"stdout_logfile_maxbytes={LOG_MAXBYTES}",
            "stdout_logfile_backups=2",
            "",
        ]
    return "\n".join(sections)


def restarts_path(settings: Settings) -> Path:
    return run_dir(settings) / RESTARTS_FILE


def restart_counts(settings: Settings) -> dict[str, int]:
    """Unexpected exits per service since supervisord started (each was followed by a restart)."""
    try:
        counts = json.loads(restarts_path(settings).read_text())
    except (OSError, ValueError):
        return {}
    return {str(name): int(count) for name, count in counts.items()}
