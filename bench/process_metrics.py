"""Process metrics for the benchmarks, from /proc: resident memory of a process tree (sampled, and
each process's own high-water mark) and CPU seconds, without psutil."""

from __future__ import annotations

import os
import resource
import threading
import time

SAMPLE_INTERVAL_S = 0.1


# ---------------------------------------------------------------------------------------------
# Memory: a sampler of the process tree's resident set, from /proc (no psutil).


def _status_bytes(pid: int, field_name: str) -> int:
    """A `kB` field of /proc/<pid>/status in bytes (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return found


def _proportional_bytes(pid: int) -> int:
    """Pss of `pid` (its resident set with shared pages split among their sharers), in bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return 0


def _command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


def _descendants(pid: int) -> list[int]:
    found, pending = [], _children(pid)
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(_children(current))
    return found


def process_tree_rss(
    pid: int, seen_children: set[str] | None = None, descendants: list[int] | None = None
) -> int:
    """Resident bytes of `pid` and all its descendants right now (`descendants`: the tree
    already walked by the caller).

    Alone, the process's VmRSS (cheap). With children, the sum of everyone's Pss instead: a
    freshly forked child shares its parent's pages, and adding two VmRSS would count those
    twice. Children's command names are added to `seen_children`.
    """
    if descendants is None:
        descendants = _descendants(pid)
    if not descendants:
        return _status_bytes(pid, "VmRSS")
    if seen_children is not None:
        seen_children.update(_command_name(child) for child in descendants)
    return sum(_proportional_bytes(member) for member in [pid, *descendants])


def peak_rss_of(pid: int) -> int:
    """The kernel's high-water mark of `pid`'s resident set (VmHWM), in bytes."""
    return _status_bytes(pid, "VmHWM")


class RssSampler:
    """Samples the resident set of this process and its children in a background thread, so the
    peak can be attributed to the pipeline step that was running at the time."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.children: set[str] = set()
        # The largest VmHWM of any one process of the tree: the kernel keeps it per process,
        # so a burst between two samples still shows up at the next one.
        self.peak_hwm_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            tree = _descendants(pid)
            self.samples.append((time.time(), process_tree_rss(pid, self.children, tree)))
            for member in [pid, *tree]:
                self.peak_hwm_process = max(self.peak_hwm_process, peak_rss_of(member))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), process_tree_rss(os.getpid())))

    @property
    def peak(self) -> int:
        """The highest sampled resident set, in bytes."""
        return max((rss for _, rss in self.samples), default=0)

    def peak_between(self, start: float, end: float) -> int:
        """The highest sample taken between two `time.time()` instants (widened by one sampling
        interval, so a step shorter than the interval still gets the samples around it)."""
        low, high = start - self.interval, end + self.interval
        return max((rss for t, rss in self.samples if low <= t <= high), default=0)


def rusage_peaks() -> dict[str, int]:
    """The kernel's high-water marks, in bytes: this process's own (VmHWM) and ru_maxrss of
    this process and of its largest waited-for child.

    Only `hwm_self` describes this process alone. Linux carries ru_maxrss across exec: a
    process started by a 2.5 GiB parent (subprocess uses vfork + exec) reports the parent's
    high-water mark as its own ru_maxrss from its first instruction. That is how this bench's
    own orchestrator (which exports the raw payloads between the two runs) once showed up as a
    2.47 GiB "refresh" peak; VmHWM belongs to the process's own address space and is not
    inherited.
    """
    return {
        "hwm_self": peak_rss_of(os.getpid()),
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }


def _live_child_cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of `pid`'s live children (a forkserver's own CPU and that
    of the workers it has reaped), from /proc/<child>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After "(comm)": state is field 3, utime..cstime are fields 14..17 of the whole line.
        total += sum(int(value) for value in fields[11:15]) / ticks
    return total


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads; 0 when it is gone), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """User + system CPU time of this process, of its waited-for children and of its live ones
    (with what they waited for: the partition workers, forked by a forkserver), in seconds. Less
    sensitive than wall time to other processes on a shared machine, though not immune."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return waited + _live_child_cpu_seconds(os.getpid())


class MemoryWatch:
    """Samples another process's anonymous and file-backed resident memory (Meilisearch maps its
    LMDB files, so its VmRSS mixes heap with page cache the kernel can drop)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_anon = 0
        self.peak_file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meili-memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_anon = max(self.peak_anon, _status_bytes(self.pid, "RssAnon"))
            self.peak_file = max(self.peak_file, _status_bytes(self.pid, "RssFile"))
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (the peaks stay readable)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
