"""Which file the next analysts' copy is written into, and the swap that publishes it.

A publish never writes the file analysts read: it brings `warehouse.next.duckdb` up to date and
`os.replace`s it over `warehouse.duckdb`, so a reader with the old file open keeps its snapshot.
The next copy used to start as a byte copy of the published file: at a million offers ~0.7 GB
written on every refresh, whatever the refresh changed. But the snapshot the swap displaces is
an up-to-date copy too, only one publish older, and the publish merges by content (whatever copy
it starts from, it writes what differs from the pipeline's tables). So the swap keeps the
displaced snapshot as `warehouse.spare.duckdb` (a second name for the same file: the published
path exists at every moment), and the next publish writes into the spare instead of copying,
as long as nobody still reads it:

- another process holding it open (an analyst's connection, made before the last swap) holds
  DuckDB's own lock on it, so opening it for writing fails, and the publish copies as before;
- a connection of this very process holds no lock that the process itself would collide with
  (POSIX record locks belong to the process), so the file is not reused while any descriptor of
  this process points at it (/proc/self/fd; where that is missing, never reused);
- a spare made under another layout (schema, views) is not reused either.

A spare that cannot be reused is unlinked (its readers keep their snapshot: the inode lives on
while they hold it). A publish that starts from an empty copy (the first one, or a new layout)
copies its result to the spare, so the next publish has one to start from: a fresh build writes
the whole file anyway, the refreshes after it then write only what changed.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import duckdb

# How the next copy started (PublishResult.started_from).
FROM_SPARE, FROM_COPY, FROM_EMPTY = "spare", "copy", "empty"

Connect = Callable[[Path], duckdb.DuckDBPyConnection]


def next_path_for(published: Path) -> Path:
    """`warehouse.duckdb` -> `warehouse.next.duckdb` (built beside it, then renamed over it)."""
    return published.with_name(f"{published.stem}.next{published.suffix}")


def spare_path_for(published: Path) -> Path:
    """`warehouse.duckdb` -> `warehouse.spare.duckdb` (the snapshot the last swap displaced)."""
    return published.with_name(f"{published.stem}.spare{published.suffix}")


def remove_database_file(path: Path) -> None:
    """`path` and its write-ahead log, if there."""
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def open_in_this_process(path: Path) -> bool | None:
    """Whether a file descriptor of this process points at `path`'s file; None when that cannot
    be told (no /proc/self/fd)."""
    try:
        target = os.stat(path)
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in descriptors:
        try:
            held = os.stat(f"/proc/self/fd/{name}")
        except OSError:  # closed since the listing (the listing's own descriptor among them)
            continue
        if (held.st_dev, held.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


def _layouts(conn: duckdb.DuckDBPyConnection) -> set[str]:
    try:
        return {
            value
            for (value,) in conn.execute("SELECT DISTINCT layout FROM published_tables").fetchall()
        }
    except duckdb.Error:  # made before published_tables existed
        return set()


def _reuse_spare(
    published: Path, next_path: Path, layout: str, connect: Connect
) -> duckdb.DuckDBPyConnection | None:
    """The spare renamed to `next_path` and opened for writing, or None (and no spare left)."""
    spare = spare_path_for(published)
    if not spare.exists():
        return None
    if (
        not published.exists()  # removed by hand: start afresh
        or os.path.samefile(spare, published)  # a swap cut short
        or open_in_this_process(spare) is not False
    ):
        remove_database_file(spare)
        return None
    os.chmod(spare, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    os.replace(spare, next_path)
    try:
        conn = connect(next_path)
    except duckdb.IOException:  # another process reads it: DuckDB's lock on the file is held
        remove_database_file(next_path)
        return None
    if _layouts(conn) != {layout}:
        conn.close()
        remove_database_file(next_path)
        return None
    return conn


def _copy_published(published: Path, next_path: Path, layout: str) -> bool:
    """Copy the published file to `next_path` when it was made with the current layout; return
    whether it was (else `next_path` does not exist and the copy starts empty)."""
    if not published.exists():
        return False
    try:
        reader = duckdb.connect(str(published), read_only=True)
    except duckdb.Error:
        return False
    try:
        layouts = _layouts(reader)
    finally:
        reader.close()
    if layouts != {layout}:
        return False
    shutil.copyfile(published, next_path)
    return True


def open_next(
    published: Path, layout: str, connect: Connect
) -> tuple[duckdb.DuckDBPyConnection, str]:
    """The next copy opened for writing, and how it started: the spare (FROM_SPARE), a copy of
    the published file (FROM_COPY), or empty (FROM_EMPTY: the caller creates the tables). A copy
    left by an interrupted publish is discarded, never written on."""
    next_path = next_path_for(published)
    remove_database_file(next_path)
    conn = _reuse_spare(published, next_path, layout, connect)
    if conn is not None:
        return conn, FROM_SPARE
    started_from = FROM_COPY if _copy_published(published, next_path, layout) else FROM_EMPTY
    return connect(next_path), started_from


def swap_in(published: Path, started_from: str) -> None:
    """Make the (closed) next copy read-only and rename it over `published`; the displaced
    snapshot stays as the spare (after a fresh build, a copy of the new one)."""
    next_path, spare = next_path_for(published), spare_path_for(published)
    os.chmod(next_path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    remove_database_file(spare)
    if published.exists() and started_from != FROM_EMPTY:
        os.link(published, spare)
    os.replace(next_path, published)
    if started_from == FROM_EMPTY:
        shutil.copyfile(published, spare)
