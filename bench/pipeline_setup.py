"""What the pipeline benchmark runs on: its own sandbox and Meilisearch on loopback, the
environment its child processes get (everything pointed at those services), a snapshot of the
committed code so the full and the incremental run execute the same code, and the machine it ran
on. bench.pipeline_bench runs the phases and reports.

Nothing here imports OneCart at module level: run_benchmark puts the code snapshot first on
sys.path before any OneCart module is imported."""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
INDEX_UID = "products"


@dataclass
class Services:
    """What the benchmark started, so it can stop exactly that (by pid)."""

    sandbox_pid: int | None = None
    meili_pid: int | None = None
    sandbox_url: str = ""
    meili_url: str = ""
    started: list[int] = field(default_factory=list)


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (what the report's "Machine:" line names);
    platform.processor()'s answer where that file cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return platform.processor() or ""
    return platform.processor() or ""


def machine_description() -> dict[str, Any]:
    """nproc, memory, CPU model and load at the start, for the results."""
    memory_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "memory_gib": memory_kb / 1024**2,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "load_at_start": os.getloadavg(),
    }


def child_environment(home: Path, services: Services, meili_key: str) -> dict[str, str]:
    """The environment of the pipeline's child processes: everything points at our services."""
    # Imported here, after run_benchmark put the code snapshot first on sys.path. The sandbox
    # accepts any non-empty credentials: the placeholders the tests use, for every marketplace
    # marketplaces.toml serves from it.
    from onecart.services import sandbox_credentials
    from onecart.settings import get_settings

    credentials = sandbox_credentials(get_settings(), environ={})
    sandbox_port = services.sandbox_url.rsplit(":", 1)[1]
    return {
        **os.environ,
        **{name: os.environ.get(name) or value for name, value in credentials.items()},
        "ONECART_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ONECART_SANDBOX_HOST": "127.0.0.1",
        "ONECART_SANDBOX_PORT": sandbox_port,
        "ONECART_SANDBOX_URL": services.sandbox_url,
        "MEILI_URL": services.meili_url,
        "MEILI_MASTER_KEY": meili_key,
        "MEILI_INDEX": INDEX_UID,
        "ONECART_ASSISTANT_EMBEDDINGS": "off",
        "PYTHONUNBUFFERED": "1",
    }


def start_services(
    settings: Any, *, offers: int, seed: int, indexing_memory: str, services: Services
) -> None:
    """Start the sandbox and Meilisearch on free loopback ports and wait until both answer."""
    from onecart import processes

    sandbox_port = processes.free_port()
    sandbox = processes.start_process(
        settings,
        "bench-sandbox",
        processes.sandbox_argv(
            "127.0.0.1", sandbox_port, offers=offers, seed=seed, options=("--quiet",)
        ),
    )
    services.sandbox_pid = sandbox.pid
    services.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    meili_port = processes.free_port()
    meili = processes.start_meilisearch(
        settings,
        "bench-meilisearch",
        settings.home_dir / "meili" / "data.ms",
        f"127.0.0.1:{meili_port}",
    )
    services.meili_pid = meili.pid
    services.meili_url = f"http://127.0.0.1:{meili_port}"
    processes.wait_for_http(f"{services.sandbox_url}/_sandbox/health", timeout=120, process=sandbox)
    processes.wait_for_http(f"{services.meili_url}/health", timeout=60, process=meili)


def stop_services(services: Services) -> None:
    """Stop what start_services started, by pid (process group)."""
    from onecart import processes

    for pid in (services.meili_pid, services.sandbox_pid):
        if pid is not None:
            processes.stop_pid(pid)


def snapshot_code(destination: Path) -> str:
    """Extract the committed tree (``git archive HEAD``) into `destination`, with the benchmarks'
    modules (bench/*.py) as they are now, and return the commit.

    Other engineers commit to the same checkout while a run takes most of an hour; without a
    snapshot the full and the incremental run could execute different code (a changed index
    setting alone turns the incremental sync into a rebuild).
    """
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, filter="data")
        else:  # Python before 3.11.4 (Debian 12's 3.11.2) has no extraction filters
            tar.extractall(destination, members=_plain_members(tar))
    for module in Path(__file__).parent.glob("*.py"):
        shutil.copy2(module, destination / "bench" / module.name)
    # The Meilisearch binary is found under the repository's node_modules.
    (destination / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    return commit


def _plain_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's members when each is a plain file or directory inside the destination: what
    `filter="data"` insists on, for an interpreter without it (git archive makes no others)."""
    members = tar.getmembers()
    for member in members:
        path = Path(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise ValueError(f"unexpected member in the git archive: {member.name!r}")
    return members
