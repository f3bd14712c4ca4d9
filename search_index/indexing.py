"""Sending search documents to Meilisearch: incremental updates, or a zero-downtime rebuild.

Incremental mode reads the `doc_hash` of every document the index holds and sends only documents
whose hash differs (a changed price, group or FX rate changes the hash), then deletes the ids that
disappeared. A full rebuild fills `<uid>_next` with today's settings and all documents, swaps it
with the live index in one atomic step (searches never fail and never see a half-built index),
and deletes the old one. A rebuild happens by itself when the index is missing or was built with
other settings: the settings fingerprint of each index is kept in the small `onecart_meta` index.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import meilisearch
from meilisearch.errors import MeilisearchApiError

from onecart.settings import Settings, get_settings
from search_index.documents import DOCUMENT_HASH_FIELD, VECTORS_FIELD, compute_document_hash
from search_index.settings import (
    DOCUMENT_SCHEMA_VERSION,
    EARLIER_VECTORS_FINGERPRINT,
    EMBEDDER_NAME,
    EMBEDDERS_SETTING,
    EMBEDDING_DIMENSIONS,
    PRIMARY_KEY,
    index_settings,
    settings_fingerprint,
)

META_INDEX_UID: Final = "onecart_meta"
NEXT_INDEX_SUFFIX: Final = "_next"
FETCH_PAGE_SIZE: Final = 10_000
DELETE_BATCH_SIZE: Final = 10_000
# Documents per indexing task. Meilisearch's cost per batch grows with the index (each batch is
# merged into the word, proximity and facet databases of the whole index), and a build streams
# documents slower than Meilisearch indexes small batches, so tasks of a few thousand documents
# were indexed one or two at a time: at 300,000 offers, tasks of 5,000 cost Meilisearch 88 s of
# CPU against 53 s in tasks of 50,000 (bench/RESULTS.md, "Meilisearch's cost per batch").
# A task's documents are spooled to a temporary file as NDJSON, never held as objects.
TASK_DOCUMENTS: Final = 50_000
# A task's request body stays well under Meilisearch's 100 MB limit (--http-payload-size-limit):
# with vectors (384 floats) an offer is about 9 KB, so 50,000 of them would be refused (413).
TASK_BYTES: Final = 64 * 1024 * 1024
DEFAULT_TASK_TIMEOUT_SECONDS: Final = 900.0
CLIENT_TIMEOUT_SECONDS: Final = 60
# Polling a task (wait_for_tasks): the pause after each look is this share of the time waited so
# far, within these bounds (each look is an HTTP round trip on both sides).
POLL_SHARE: Final = 0.1
POLL_MIN_S: Final = 0.01
POLL_MAX_S: Final = 0.5

Progress = Callable[[str], None]


class IndexingError(RuntimeError):
    """Meilisearch refused or failed an indexing task; the message carries its own error."""


@dataclass(frozen=True, slots=True)
class IndexSyncResult:
    """What one :func:`sync_index` call did, for asset metadata and logs.

    `deleted` counts ids removed by an incremental sync; a rebuild replaces the whole index, so
    documents that vanished with it are not counted there.
    """

    sent: int
    deleted: int
    unchanged: int
    rebuilt: bool
    task_uids: tuple[int, ...]
    rebuild_reason: str | None = None


def connect(settings: Settings | None = None) -> meilisearch.Client:
    """A client for MEILI_URL with the master key (the pipeline writes; it needs full rights)."""
    settings = settings or get_settings()
    return meilisearch.Client(
        settings.meili_url, settings.meili_master_key, timeout=CLIENT_TIMEOUT_SECONDS
    )


def sync_index(
    client: meilisearch.Client,
    index_uid: str,
    documents: Iterable[Mapping[str, Any]],
    *,
    full_rebuild: bool = False,
    batch_size: int = TASK_DOCUMENTS,
    progress: Progress | None = None,
    task_timeout: float = DEFAULT_TASK_TIMEOUT_SECONDS,
    vectors: Mapping[str, Sequence[float] | None] | None = None,
    settings: Mapping[str, Any] | None = None,
    schema_version: int | None = None,
) -> IndexSyncResult:
    """Make the index hold exactly `documents`, sending as little as possible.

    Rebuilds (zero downtime) when asked, when the index is missing, or when its stored settings
    fingerprint differs from :func:`settings_fingerprint`; otherwise sends only changed documents
    and deletes the ones that disappeared. Returns after Meilisearch has processed every task, so
    searches see the result; raises :class:`IndexingError` with Meilisearch's own error when a
    task fails or outlives `task_timeout` seconds.

    `vectors` (document id -> embedding) switches the index to the settings with the
    user-provided embedder (a one-off rebuild) and gives every document `_vectors.default`: its
    embedding, or null for a document without one (it stays findable by keywords). None keeps
    the index exactly as without embeddings.

    `settings` and `schema_version` declare another index than the offers index (the product
    index of search_index.groups); by default, the offers index's declaration.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = progress or _ignore_progress
    offers_index = settings is None
    also_current: tuple[str, ...] = ()
    if settings is None:
        settings = index_settings(with_vectors=vectors is not None)
        # The embedder follows the vectors in place (below): it is not in the fingerprint.
        fingerprint = settings_fingerprint()
        also_current = (EARLIER_VECTORS_FINGERPRINT,)
    else:
        fingerprint = settings_fingerprint(
            settings, schema_version=schema_version or DOCUMENT_SCHEMA_VERSION
        )
    if vectors is not None:
        documents = _with_vectors(documents, vectors)
    reason = _rebuild_reason(client, index_uid, fingerprint, full_rebuild, also_current)
    if reason is not None:
        report(f"{index_uid}: full rebuild ({reason})")
        return _rebuild_index(
            client,
            index_uid,
            documents,
            settings=settings,
            fingerprint=fingerprint,
            reason=reason,
            batch_size=batch_size,
            report=report,
            task_timeout=task_timeout,
        )
    embedder = offers_index and has_embedder(client, index_uid)
    if offers_index and vectors is None and embedder:
        # Meilisearch refuses a document without `_vectors.default` while the embedder exists.
        report(f"{index_uid}: removing the embedder (no offer embeddings any more)")
        wait_for_tasks(
            client, [client.index(index_uid).reset_embedders().task_uid], timeout=task_timeout
        )
    result = _update_index(
        client,
        index_uid,
        documents,
        batch_size=batch_size,
        report=report,
        task_timeout=task_timeout,
    )
    if offers_index and vectors is not None and not embedder:
        # Only now that every document carries `_vectors.default` (a vector or null): Meilisearch
        # refuses a user-provided embedder while a document has none. The embedder's presence is
        # what switches the assistant to hybrid search (assistant.retrieval).
        report(f"{index_uid}: adding the embedder (the documents carry their vectors)")
        task = client.index(index_uid).update_embedders(dict(EMBEDDERS_SETTING))
        wait_for_tasks(client, [task.task_uid], timeout=task_timeout)
    return result


def has_embedder(client: meilisearch.Client, index_uid: str) -> bool:
    """Whether the index declares the user-provided embedder of the offer vectors."""
    embedders = client.http.get(f"indexes/{index_uid}/settings/embedders")
    return isinstance(embedders, Mapping) and EMBEDDER_NAME in embedders


def index_exists(client: meilisearch.Client, index_uid: str) -> bool:
    """True when Meilisearch has an index with this uid."""
    try:
        client.get_raw_index(index_uid)
    except MeilisearchApiError as exc:
        if exc.code == "index_not_found":
            return False
        raise
    return True


def stored_fingerprint(client: meilisearch.Client, index_uid: str) -> str | None:
    """The settings fingerprint recorded when the index was last built, or None if unknown."""
    try:
        record = client.index(META_INDEX_UID).get_document(index_uid)
    except MeilisearchApiError as exc:
        if exc.code in {"index_not_found", "document_not_found"}:
            return None
        raise
    return getattr(record, "settings_fingerprint", None)


def wait_for_tasks(
    client: meilisearch.Client,
    task_uids: Iterable[int],
    *,
    timeout: float = DEFAULT_TASK_TIMEOUT_SECONDS,
) -> None:
    """Wait for each task in turn (Meilisearch runs them in order); raise on failure or timeout.

    Each task gets its own `timeout`, so a long queue of large batches is not cut short by a
    budget sized for one batch. Meilisearch has no call that blocks until a task ends, so the
    task is polled, at a tenth of the time waited so far (POLL_SHARE, between POLL_MIN_S and
    POLL_MAX_S): a task seen late is seen at most ~10% late. (Doubling the interval up to 0.5 s
    saw the one-second tasks of a refresh up to a third of a second late, in every search step.)
    """
    for task_uid in task_uids:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            task = client.get_task(task_uid)
            if task.status == "succeeded":
                break
            if task.status in {"failed", "canceled"}:
                raise IndexingError(_describe_failed_task(task))
            if time.monotonic() >= deadline:
                raise IndexingError(
                    f"Meilisearch task {task_uid} ({task.type} on {task.index_uid}) still "
                    f"{task.status} after {timeout:.0f}s"
                )
            waited = time.monotonic() - started
            time.sleep(min(max(waited * POLL_SHARE, POLL_MIN_S), POLL_MAX_S))


def _describe_failed_task(task: Any) -> str:
    error = task.error or {}
    return (
        f"Meilisearch task {task.uid} ({task.type} on {task.index_uid}) {task.status}: "
        f"{error.get('message', 'no error message')} "
        f"[code={error.get('code')}, type={error.get('type')}, link={error.get('link')}]"
    )


def _ignore_progress(_message: str) -> None:
    return None


def _rebuild_reason(
    client: meilisearch.Client,
    index_uid: str,
    fingerprint: str,
    full_rebuild: bool,
    also_current: Sequence[str] = (),
) -> str | None:
    if full_rebuild:
        return "requested"
    if not index_exists(client, index_uid):
        return "index missing"
    if stored_fingerprint(client, index_uid) not in {fingerprint, *also_current}:
        return "settings changed"
    return None


def _hashed_documents(documents: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """Copy each document with a fresh `doc_hash`, so callers cannot send a stale one."""
    for position, source in enumerate(documents):
        document_id = source.get(PRIMARY_KEY)
        if not isinstance(document_id, str) or not document_id:
            raise IndexingError(f"document #{position} has no string {PRIMARY_KEY!r}: {source!r}")
        document = dict(source)
        document[DOCUMENT_HASH_FIELD] = compute_document_hash(document)
        yield document


def _with_vectors(
    documents: Iterable[Mapping[str, Any]], vectors: Mapping[str, Sequence[float] | None]
) -> Iterator[dict[str, Any]]:
    """Each document with `_vectors.default` set from `vectors` (null when it has none)."""
    for source in documents:
        document = dict(source)
        vector = vectors.get(str(document.get(PRIMARY_KEY)))
        if vector is not None:
            if len(vector) != EMBEDDING_DIMENSIONS:
                raise IndexingError(
                    f"document {document.get(PRIMARY_KEY)!r} has a {len(vector)}-dimension "
                    f"vector; the embedder expects {EMBEDDING_DIMENSIONS}"
                )
            vector = [float(value) for value in vector]
        document[VECTORS_FIELD] = {EMBEDDER_NAME: vector}
        yield document


class _TaskSpool:
    """Documents written as NDJSON to a temporary file until a task's worth is there, then sent
    as one task: a task of 50,000 documents costs its payload's bytes in memory, once, when it
    is sent, not 50,000 dictionaries while it fills."""

    def __init__(
        self, client: meilisearch.Client, index_uid: str, batch_size: int, *, partial: bool = False
    ) -> None:
        self._index = client.index(index_uid)
        # Partial: each document's fields are set on the stored one (PUT), not replacing it.
        self._send = (
            self._index.update_documents_ndjson if partial else self._index.add_documents_ndjson
        )
        self._batch_size = batch_size
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._pending = 0
        self.sent = 0
        self.task_uids: list[int] = []

    def add(self, document: Mapping[str, Any]) -> int | None:
        """Spool one document; the uid of a task it completed, if it completed one (a task is
        sent when it holds `batch_size` documents, or before it would pass TASK_BYTES)."""
        line = json.dumps(document, separators=(",", ":")).encode() + b"\n"
        sent = None
        if self._pending and self._file.tell() + len(line) > TASK_BYTES:
            sent = self.flush()
        self._file.write(line)
        self._pending += 1
        return self.flush() if self._pending >= self._batch_size else sent

    def flush(self) -> int | None:
        """Send what is spooled as one task (nothing when empty); its uid."""
        if not self._pending:
            return None
        self._file.seek(0)
        payload = self._file.read()
        self._file.seek(0)
        self._file.truncate()
        task_uid = self._send(payload, primary_key=PRIMARY_KEY).task_uid
        self.task_uids.append(task_uid)
        self.sent += self._pending
        self._pending = 0
        return task_uid

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _TaskSpool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _rebuild_index(
    client: meilisearch.Client,
    index_uid: str,
    documents: Iterable[Mapping[str, Any]],
    *,
    settings: Mapping[str, Any],
    fingerprint: str,
    reason: str,
    batch_size: int,
    report: Progress,
    task_timeout: float,
) -> IndexSyncResult:
    next_uid = f"{index_uid}{NEXT_INDEX_SUFFIX}"
    task_uids: list[int] = []

    def run(task_uid: int) -> None:
        task_uids.append(task_uid)
        wait_for_tasks(client, [task_uid], timeout=task_timeout)

    if index_exists(client, next_uid):
        # Left over from an interrupted rebuild: start from a clean slate.
        run(client.delete_index(next_uid).task_uid)
    run(client.create_index(next_uid, {"primaryKey": PRIMARY_KEY}).task_uid)
    run(client.index(next_uid).update_settings(dict(settings)).task_uid)

    with _TaskSpool(client, next_uid, batch_size) as spool:
        for document in _hashed_documents(documents):
            if spool.add(document) is not None:
                report(f"{next_uid}: {spool.sent} documents sent")
        spool.flush()
    sent, batch_tasks = spool.sent, spool.task_uids
    task_uids.extend(batch_tasks)
    report(f"{next_uid}: waiting for {len(batch_tasks)} indexing tasks ({sent} documents)")
    wait_for_tasks(client, batch_tasks, timeout=task_timeout)

    if not index_exists(client, index_uid):
        # Swapping needs both sides; an empty live index is replaced at once.
        run(client.create_index(index_uid, {"primaryKey": PRIMARY_KEY}).task_uid)
    run(client.swap_indexes([{"indexes": [index_uid, next_uid]}]).task_uid)
    report(f"{index_uid}: swapped in the rebuilt index")
    run(client.delete_index(next_uid).task_uid)
    run(_record_fingerprint(client, index_uid, fingerprint))
    return IndexSyncResult(
        sent=sent,
        deleted=0,
        unchanged=0,
        rebuilt=True,
        task_uids=tuple(task_uids),
        rebuild_reason=reason,
    )


def _record_fingerprint(client: meilisearch.Client, index_uid: str, fingerprint: str) -> int:
    record = {
        "id": index_uid,
        "settings_fingerprint": fingerprint,
        "built_at": int(time.time()),
    }
    return client.index(META_INDEX_UID).add_documents([record], primary_key="id").task_uid


def fetch_document_hashes(client: meilisearch.Client, index_uid: str) -> dict[str, str | None]:
    """Every document id the index holds with its `doc_hash` (None for documents without one)."""
    index = client.index(index_uid)
    hashes: dict[str, str | None] = {}
    offset = 0
    while True:
        page = index.get_documents(
            {
                "fields": [PRIMARY_KEY, DOCUMENT_HASH_FIELD],
                "limit": FETCH_PAGE_SIZE,
                "offset": offset,
            }
        )
        for document in page.results:
            fields = dict(document)
            hashes[str(fields[PRIMARY_KEY])] = fields.get(DOCUMENT_HASH_FIELD)
        offset += len(page.results)
        if not page.results or offset >= page.total:
            return hashes


def _update_index(
    client: meilisearch.Client,
    index_uid: str,
    documents: Iterable[Mapping[str, Any]],
    *,
    batch_size: int,
    report: Progress,
    task_timeout: float,
) -> IndexSyncResult:
    existing = fetch_document_hashes(client, index_uid)
    report(f"{index_uid}: {len(existing)} documents in the index")
    seen: set[str] = set()
    task_uids: list[int] = []
    unchanged = 0

    def changed() -> Iterator[dict[str, Any]]:
        nonlocal unchanged
        for document in _hashed_documents(documents):
            document_id = document[PRIMARY_KEY]
            repeated = document_id in seen
            seen.add(document_id)
            # A repeated id is always sent: the last occurrence must win, as in a rebuild.
            if not repeated and existing.get(document_id) == document[DOCUMENT_HASH_FIELD]:
                unchanged += 1
                continue
            yield document

    sent = _send_in_batches(client, index_uid, changed(), batch_size, task_uids)
    gone = [document_id for document_id in existing if document_id not in seen]
    _delete_in_batches(client, index_uid, gone, task_uids)
    report(f"{index_uid}: {sent} changed, {len(gone)} removed, {unchanged} unchanged")
    wait_for_tasks(client, task_uids, timeout=task_timeout)
    return IndexSyncResult(
        sent=sent,
        deleted=len(gone),
        unchanged=unchanged,
        rebuilt=False,
        task_uids=tuple(task_uids),
    )


def _send_in_batches(
    client: meilisearch.Client,
    index_uid: str,
    documents: Iterable[dict[str, Any]],
    batch_size: int,
    task_uids: list[int],
) -> int:
    """Send `documents`, `batch_size` at a time as each task fills (spooled to a file, never
    all held at once), adding each task to `task_uids`; returns how many were sent."""
    with _TaskSpool(client, index_uid, batch_size) as spool:
        for document in documents:
            spool.add(document)
        spool.flush()
    task_uids.extend(spool.task_uids)
    return spool.sent


def _delete_in_batches(
    client: meilisearch.Client, index_uid: str, ids: list[str], task_uids: list[int]
) -> None:
    for start in range(0, len(ids), DELETE_BATCH_SIZE):
        task_uids.append(
            _delete_documents(client, index_uid, ids[start : start + DELETE_BATCH_SIZE])
        )


def _delete_documents(client: meilisearch.Client, index_uid: str, ids: list[str]) -> int:
    # The client flags deletion by ids as deprecated in favour of filters, but the server's
    # delete-batch route is current and needs no filterable primary key.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message="The use of ids")
        task = client.index(index_uid).delete_documents(list(ids))
    return task.task_uid


def update_document_fields(
    client: meilisearch.Client,
    index_uid: str,
    changes: Iterable[Mapping[str, Any]],
    *,
    batch_size: int = TASK_DOCUMENTS,
    task_timeout: float = DEFAULT_TASK_TIMEOUT_SECONDS,
) -> int:
    """Set the fields of `changes` (each with its document's id) on the documents already in the
    index, leaving their other fields (embeddings included) as they are; returns how many were
    changed once Meilisearch has processed them. The caller recomputes `doc_hash` itself."""
    with _TaskSpool(client, index_uid, batch_size, partial=True) as spool:
        for change in changes:
            spool.add(change)
        spool.flush()
    wait_for_tasks(client, spool.task_uids, timeout=task_timeout)
    return spool.sent


def pending_rebuild_reason(client: meilisearch.Client, index_uid: str) -> str | None:
    """Why :func:`sync_index` would rebuild the offers index now (missing, other settings), or
    None when an incremental update would do (with or without vectors: the embedder is set in
    place)."""
    return _rebuild_reason(
        client, index_uid, settings_fingerprint(), False, (EARLIER_VECTORS_FINGERPRINT,)
    )


def document_count(client: meilisearch.Client, index_uid: str) -> int:
    """How many documents the index holds (after its processed tasks)."""
    return int(client.index(index_uid).get_stats().number_of_documents)


def apply_document_changes(
    client: meilisearch.Client,
    index_uid: str,
    documents: Iterable[Mapping[str, Any]],
    deleted_ids: Iterable[str],
    *,
    batch_size: int = TASK_DOCUMENTS,
    progress: Progress | None = None,
    task_timeout: float = DEFAULT_TASK_TIMEOUT_SECONDS,
) -> IndexSyncResult:
    """Send `documents` (replacing the documents of the same ids) and delete `deleted_ids`,
    when the caller already knows what changed (pipelines/search_state.py keeps that record);
    returns after Meilisearch processed every task, like :func:`sync_index`.

    `documents` is read once, `batch_size` at a time, and each batch sent as it fills (a
    streamed refresh never holds every changed document); `deleted_ids` is read only after the
    last document was sent, so a generator of the documents may still add to it."""
    report = progress or _ignore_progress
    task_uids: list[int] = []
    sent = _send_in_batches(client, index_uid, _hashed_documents(documents), batch_size, task_uids)
    deleted = list(deleted_ids)
    _delete_in_batches(client, index_uid, deleted, task_uids)
    report(f"{index_uid}: {sent} changed, {len(deleted)} removed")
    wait_for_tasks(client, task_uids, timeout=task_timeout)
    return IndexSyncResult(
        sent=sent,
        deleted=len(deleted),
        unchanged=0,
        rebuilt=False,
        task_uids=tuple(task_uids),
    )
