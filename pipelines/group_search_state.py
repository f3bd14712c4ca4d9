"""A product-index refresh that builds only the product documents of groups that changed.

A product document (search_index.groups) is made from the search documents of its group's offers,
their matching method and confidence, and the catalog's rating mean (the Bayesian prior). So once
search_products has recorded every offer document's doc_hash (pipelines/search_state.py), a
group's inputs are the doc_hashes, methods and confidences of its offers: DuckDB hashes them per
group in one pass, the warehouse keeps the hash and the product document's doc_hash per group
(table search_group_state), and a refresh reads, builds and compares only the groups whose hash
moved (compared inside DuckDB; the changed groups' offers come back from a Parquet file, group by
group, as in search_state). The prior, FX rates, marketplace cards and the document code make the
context hash; when it moves, or the product index is missing or redeclared, or its document count
drifted, or an offer has no group, every product document is built and compared as before.

Hashing every group (an md5 over each group's offers, 752k groups at a million offers) cost most
of a refresh, so the warehouse also keeps, per offer of a product document, the group it was in
and a cheap marker of its doc_hash and matching (table search_group_members, MEMBER_SQL: DuckDB's
64-bit hash()). A refresh hashes only the groups an offer whose marker moved is or was in (new and
vanished offers included; an empty table, as before it existed, makes that every group); the
other groups' offers, and so their hashes, did not move.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import duckdb
import meilisearch
import polars as pl
import pyarrow.dataset

import search_index.groups
from onecart.progress import counted_noun
from pipelines import search_records, search_sync
from search_index.documents import DOCUMENT_HASH_FIELD, compute_document_hash
from search_index.groups import (
    DEFAULT_RATING_PRIOR_MEAN,
    GroupDocument,
    build_group_documents,
)
from search_index.indexing import (
    IndexSyncResult,
    apply_document_changes,
    index_exists,
    stored_fingerprint,
    sync_index,
)
from search_index.settings import (
    GROUP_DOCUMENT_SCHEMA_VERSION,
    GROUP_INDEX_SETTINGS,
    settings_fingerprint,
)
from warehouse.connection import transaction
from warehouse.derived import OFFER_EXPORT_SQL

Connect = Callable[..., Any]

# Per group of the offers index's recorded documents: a hash of its offers' doc_hashes, matching
# methods and confidences. Offers that could not become a document are in no product document.
GROUP_HASH_SQL = """
SELECT g.group_id,
       md5(string_agg(CAST(ROW(s.marketplace, s.external_id, s.doc_hash, g.method, g.confidence)
                           AS VARCHAR), ',' ORDER BY s.marketplace, s.external_id)) AS input_hash
FROM search_document_state AS s
JOIN product_groups AS g USING (marketplace, external_id)
WHERE s.index_uid = $offers_uid AND s.doc_hash IS NOT NULL
GROUP BY g.group_id
"""


# Per offer of a product document (an offers-index document): its group and a marker of what the
# group's hash reads of it.
MEMBER_SQL = """
SELECT s.marketplace, s.external_id, g.group_id,
       hash(s.doc_hash, g.group_id, g.method, g.confidence) AS member_marker
FROM search_document_state AS s
JOIN product_groups AS g USING (marketplace, external_id)
WHERE s.index_uid = $offers_uid AND s.doc_hash IS NOT NULL
"""
_MEMBERS_SCHEMA = pl.Schema(
    {
        "marketplace": pl.String,
        "external_id": pl.String,
        "group_id": pl.String,
        "member_marker": pl.UInt64,
    }
)
# The offer rows of the groups in the temp table `changed_groups`: the tables the offer frame
# reads, shadowed by their rows of those groups (the whole price history window took a second
# at a million offers); products by rowid, as in search_records.CANDIDATE_INPUT_HASH_SQL.
CHANGED_GROUP_OFFERS_SQL = f"""
WITH product_groups AS (
    SELECT * FROM main.product_groups WHERE group_id IN (SELECT group_id FROM changed_groups)
),
products AS (
    SELECT * FROM main.products WHERE rowid IN (
        SELECT rowid FROM main.products SEMI JOIN product_groups USING (marketplace, external_id)
    )
),
price_history AS (
    SELECT * FROM main.price_history SEMI JOIN product_groups USING (marketplace, external_id)
)
SELECT * FROM ({OFFER_EXPORT_SQL})
"""


def catalog_prior(conn: duckdb.DuckDBPyConnection, offers_uid: str) -> Decimal:
    """The rating mean of every indexed offer, as build_group_documents computes it
    (catalog_rating_mean: each rating weighs its review count, at least one), summed by DuckDB:
    ratings are DECIMAL(3, 2), which a document keeps as they are (an indexed offer's rating is
    within 0-5), so the sums are exact there as in Decimal. Read into Python, the rows of a
    million offers took two seconds of every refresh."""
    row = conn.execute(
        "SELECT sum(p.rating * greatest(coalesce(p.rating_count, 0), 1)), "
        "sum(greatest(coalesce(p.rating_count, 0), 1)) "
        "FROM products AS p JOIN search_document_state AS s "
        "USING (marketplace, external_id) WHERE s.index_uid = ? AND s.doc_hash IS NOT NULL "
        "AND p.rating IS NOT NULL",
        [offers_uid],
    ).fetchone()
    weighted, reviews = row if row else (None, None)
    if not reviews:
        return DEFAULT_RATING_PRIOR_MEAN
    return (Decimal(weighted) / int(reviews)).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)


def _context_hash(offers_context: str, prior: Decimal) -> str:
    code = inspect.getsource(search_index.groups)
    return hashlib.sha256(f"{offers_context}|{prior}|{code}".encode()).hexdigest()


class DocHashColumns:
    """The doc_hash of every product document a build made, by group id, kept as Polars columns
    filled a chunk at a time: as a dict, the 550,000 groups of a million offers held ~100 MB of
    string pairs for the whole build, at the product index step's peak (bench/RESULTS.md)."""

    CHUNK = 50_000

    def __init__(self) -> None:
        self._group_ids: list[str] = []
        self._doc_hashes: list[str] = []
        self._parts: list[pl.DataFrame] = []
        self.count = 0

    def add(self, group_id: str, doc_hash: str) -> None:
        self._group_ids.append(group_id)
        self._doc_hashes.append(doc_hash)
        self.count += 1
        if len(self._group_ids) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        self._parts.append(
            pl.DataFrame(
                {"group_id": self._group_ids, "doc_hash": self._doc_hashes},
                schema={"group_id": pl.String, "doc_hash": pl.String},
            )
        )
        self._group_ids, self._doc_hashes = [], []

    def frame(self) -> pl.DataFrame:
        """group_id, doc_hash: one row per document added."""
        self._flush()
        return pl.concat(self._parts, rechunk=True)


def _with_doc_hashes(groups: pl.DataFrame, doc_hashes: pl.DataFrame) -> pl.DataFrame:
    """`groups` (group_id, input_hash) with the doc_hash of each group's product document from
    `doc_hashes` (group_id, doc_hash; null for a group that made none)."""
    return groups.join(doc_hashes, on="group_id", how="left", maintain_order="left")


def _write(
    conn: duckdb.DuckDBPyConnection,
    uid: str,
    rows: pl.DataFrame,
    gone: list[str],
    members: pl.DataFrame | pyarrow.dataset.Dataset,
    left: pl.DataFrame,
    *,
    replace_all: bool,
    shared: str,
) -> int:
    """Record the groups' hashes and doc_hashes (`rows`, less the `gone` groups) and the members
    the hashes were read from (`members` upserted, the offers of `left` removed; a Parquet
    dataset is scanned by DuckDB without being read into Python)."""
    conn.register("group_rows", rows.select("group_id", "input_hash", "doc_hash").to_arrow())
    conn.register(
        "gone_groups", pl.DataFrame({"group_id": gone}, schema={"group_id": pl.String}).to_arrow()
    )
    conn.register(
        "member_rows", members.to_arrow() if isinstance(members, pl.DataFrame) else members
    )
    conn.register("left_members", left.select("marketplace", "external_id").to_arrow())
    try:
        with transaction(conn):
            if replace_all:
                conn.execute("DELETE FROM search_group_state WHERE index_uid = ?", [uid])
                conn.execute("DELETE FROM search_group_members WHERE index_uid = ?", [uid])
            else:
                conn.execute(
                    "DELETE FROM search_group_state WHERE index_uid = ? "
                    "AND group_id IN (SELECT group_id FROM gone_groups)",
                    [uid],
                )
                conn.execute(
                    "DELETE FROM search_group_members AS m WHERE index_uid = ? AND EXISTS ("
                    "SELECT 1 FROM left_members AS l WHERE l.marketplace = m.marketplace "
                    "AND l.external_id = m.external_id)",
                    [uid],
                )
            conn.execute(
                "INSERT INTO search_group_members "
                "(index_uid, marketplace, external_id, group_id, member_marker) "
                "SELECT ?, marketplace, external_id, group_id, member_marker FROM member_rows "
                "ON CONFLICT (index_uid, marketplace, external_id) DO UPDATE SET "
                "group_id = excluded.group_id, member_marker = excluded.member_marker",
                [uid],
            )
            conn.execute(
                "INSERT INTO search_group_state (index_uid, group_id, input_hash, doc_hash) "
                "SELECT ?, group_id, input_hash, doc_hash FROM group_rows "
                "ON CONFLICT (index_uid, group_id) DO UPDATE SET "
                "input_hash = excluded.input_hash, doc_hash = excluded.doc_hash",
                [uid],
            )
            (documents,) = conn.execute(
                "SELECT count(doc_hash) FROM search_group_state WHERE index_uid = ?", [uid]
            ).fetchall()[0]
            search_records.record_index_context(conn, uid, shared, int(documents))
    finally:
        for name in ("group_rows", "gone_groups", "member_rows", "left_members"):
            conn.unregister(name)
    return int(documents)


@dataclass(frozen=True, slots=True)
class GroupIndexSync:
    """What the product-index refresh did (the asset's metadata)."""

    result: IndexSyncResult
    products: int
    several_offers: int
    skipped: dict[str, str]
    mode: str  # "full" or "changed"
    fallback_reason: str = ""
    built: int = 0


def _several_offers(conn: duckdb.DuckDBPyConnection, uid: str) -> int:
    (count,) = conn.execute(
        "SELECT count(*) FROM (SELECT g.group_id FROM search_document_state AS s JOIN "
        "product_groups AS g USING (marketplace, external_id) WHERE s.index_uid = ? "
        "AND s.doc_hash IS NOT NULL GROUP BY g.group_id HAVING count(*) > 1)",
        [uid],
    ).fetchall()[0]
    return int(count)


@dataclass(frozen=True, slots=True)
class _GroupBuild:
    """What both ways of refreshing the product index (every group, or the changed ones) work
    from: the offers index the groups summarize, the product index they fill, and the inputs
    every product document depends on (their hash is `shared`, the context hash)."""

    offers_uid: str
    uid: str
    rates: Mapping[str, Decimal]
    marketplaces: Mapping[str, Mapping[str, Any]]
    active: list[str]
    prior: Decimal
    shared: str
    progress: Callable[[str], None]

    def group_documents(self, batch: pl.DataFrame, skipped: dict[str, str]) -> list[GroupDocument]:
        """The product documents of one batch of exported offers (every offer of its groups);
        offers that cannot become a document are noted in `skipped`."""
        offer_documents = search_sync.iter_offer_documents(
            batch, marketplaces=self.marketplaces, rates=self.rates, skipped=skipped
        )
        return build_group_documents(
            offer_documents,
            matches=search_sync.offer_matches(batch),
            prior_mean=self.prior,
        )


def _sync_all(
    connect: Connect, client: meilisearch.Client, build: _GroupBuild, *, reason: str
) -> GroupIndexSync:
    """Every product document built and synced, streamed group by group from an export of the
    active offers ordered by group, so memory stays flat however large the catalog."""
    skipped: dict[str, str] = {}
    doc_hashes = DocHashColumns()
    with search_sync.spill_directory(connect) as spill:
        exported = spill / "offers_by_group.parquet"
        # Every group's input hash and every member's marker, from the export's snapshot, wait
        # on disk until the state is written: read into Python before the build, they were held
        # through all of it (~150 MB at a million offers, at the step's peak).
        hashes_file, members_file = spill / "group_hashes.parquet", spill / "members.parquet"

        def save_inputs(conn: duckdb.DuckDBPyConnection) -> None:
            params = {"offers_uid": build.offers_uid}
            conn.sql(GROUP_HASH_SQL, params=params).write_parquet(str(hashes_file))
            conn.sql(MEMBER_SQL, params=params).write_parquet(str(members_file))

        search_sync.export_active_offers(
            connect,
            OFFER_EXPORT_SQL,
            exported,
            active=build.active,
            order_by="ORDER BY group_id NULLS LAST, marketplace, external_id",
            also=save_inputs,
        )

        def documents() -> Iterator[GroupDocument]:
            # A batch holds every exported offer of its groups, and every one of them counts
            # (only active marketplaces are exported), so each batch's own group summaries are
            # the groups' whole ones: no summary of every group is held for the whole build.
            for batch in search_sync.iter_group_batches(exported):
                for document in build.group_documents(batch, skipped):
                    doc_hashes.add(document["id"], compute_document_hash(document))
                    yield document

        result = sync_index(
            client,
            build.uid,
            documents(),
            progress=build.progress,
            settings=GROUP_INDEX_SETTINGS,
            schema_version=GROUP_DOCUMENT_SCHEMA_VERSION,
        )
        state = _with_doc_hashes(pl.read_parquet(hashes_file), doc_hashes.frame())
        with connect() as conn:
            _write(
                conn,
                build.uid,
                state,
                [],
                pyarrow.dataset.dataset(members_file),
                pl.DataFrame(schema=_MEMBERS_SCHEMA),
                replace_all=True,
                shared=build.shared,
            )
            several = _several_offers(conn, build.offers_uid)
    return GroupIndexSync(
        result=result,
        products=doc_hashes.count,
        several_offers=several,
        skipped=skipped,
        mode="full",
        fallback_reason=reason,
        built=doc_hashes.count,
    )


def sync_group_index(
    connect: Connect,
    client: meilisearch.Client,
    offers_uid: str,
    uid: str,
    *,
    rates: Mapping[str, Decimal],
    marketplaces: Mapping[str, Mapping[str, Any]],
    active: list[str],
    progress: Callable[[str], None],
) -> GroupIndexSync:
    """Make the product index `uid` hold the groups of the active offers (module docstring)."""
    offers_context = search_records.context_hash(rates, marketplaces, active)
    with connect() as conn, search_sync.limited_memory(conn):
        prior = catalog_prior(conn, offers_uid)
        shared = _context_hash(offers_context, prior)
        held = search_records.held_context(conn, uid)
        (ungrouped,) = conn.execute(
            "SELECT count(*) FROM products AS p WHERE NOT EXISTS (SELECT 1 FROM product_groups "
            "AS g WHERE g.marketplace = p.marketplace AND g.external_id = p.external_id)"
        ).fetchall()[0]
    fingerprint = settings_fingerprint(
        GROUP_INDEX_SETTINGS, schema_version=GROUP_DOCUMENT_SCHEMA_VERSION
    )
    if not index_exists(client, uid) or stored_fingerprint(client, uid) != fingerprint:
        reason: str | None = "the product index is missing or declared otherwise"
    elif ungrouped:
        reason = (
            f"{counted_noun(ungrouped, 'offer')} {'has' if ungrouped == 1 else 'have'} no group yet"
        )
    else:
        reason = search_records.stale_record_reason(
            client,
            uid,
            held,
            shared,
            index="product index",
            context="FX rates, marketplaces, the rating prior or the document code",
        )
    build = _GroupBuild(
        offers_uid=offers_uid,
        uid=uid,
        rates=rates,
        marketplaces=marketplaces,
        active=active,
        prior=prior,
        shared=shared,
        progress=progress,
    )
    if reason is not None:
        progress(f"{uid}: building every product document ({reason})")
        return _sync_all(connect, client, build, reason=reason)
    return _sync_changed(connect, client, build)


@dataclass(frozen=True, slots=True)
class _GroupChanges:
    changed: pl.DataFrame  # group_id, input_hash, held_doc_hash: groups whose hash moved
    gone: pl.DataFrame  # group_id, doc_hash: recorded groups with no offer left
    members: pl.DataFrame  # _MEMBERS_SCHEMA: offers whose marker moved, as they are now
    left: pl.DataFrame  # marketplace, external_id: recorded members no longer in a document


def _export_changed_groups(
    connect: Connect, offers_uid: str, uid: str, target: Path
) -> _GroupChanges:
    """The groups whose input hash moved (hashed only for the groups an offer whose member marker
    moved is or was in), with the doc_hash the index holds for them, and the recorded groups that
    are gone; the offers of the changed groups go to the Parquet file `target`, ordered by group.
    All of it inside DuckDB under the search builds' memory limit: the group hashes of every
    group, read into Python and registered back, took this refresh to 2.2 GiB at a million
    offers. Every frame holds changed rows only."""
    with connect() as conn, search_sync.limited_memory(conn):
        params = {"offers_uid": offers_uid, "uid": uid}
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE current_members AS {MEMBER_SQL}",
            {"offers_uid": offers_uid},
        )
        try:
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE member_changes AS "
                "SELECT marketplace, external_id, c.member_marker IS NOT NULL AS is_member, "
                "c.group_id AS group_now, m.group_id AS group_before, c.member_marker "
                "FROM current_members AS c FULL JOIN "
                "(SELECT * FROM search_group_members WHERE index_uid = $uid) AS m "
                "USING (marketplace, external_id) "
                "WHERE c.member_marker IS DISTINCT FROM m.member_marker",
                {"uid": uid},
            )
            search_records.create_candidate_groups(conn, "member_changes")
            # GROUP_HASH_SQL over the candidate groups' rows of product_groups: the same hashes.
            changed = conn.sql(
                "WITH product_groups AS (SELECT * FROM main.product_groups "
                "WHERE group_id IN (SELECT group_id FROM candidate_groups)), "
                f"current_groups AS ({GROUP_HASH_SQL}) "
                "SELECT c.group_id, c.input_hash, s.doc_hash AS held_doc_hash "
                "FROM current_groups AS c LEFT JOIN search_group_state AS s "
                "ON s.index_uid = $uid AND s.group_id = c.group_id "
                "WHERE s.input_hash IS DISTINCT FROM c.input_hash ORDER BY c.group_id",
                params=params,
            ).pl()
            # A key-only anti-join: cheap, and right even without a record of the members.
            gone = conn.sql(
                "SELECT group_id, doc_hash FROM search_group_state WHERE index_uid = $uid "
                "AND group_id NOT IN (SELECT group_id FROM current_members) ORDER BY group_id",
                params={"uid": uid},
            ).pl()
            members = conn.sql(
                "SELECT marketplace, external_id, group_now AS group_id, member_marker "
                "FROM member_changes WHERE is_member"
            ).pl()
            left = conn.sql(
                "SELECT marketplace, external_id FROM member_changes WHERE NOT is_member"
            ).pl()
        finally:
            for table in ("current_members", "member_changes", "candidate_groups"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.register("changed_groups", changed.select("group_id").to_arrow())
        try:
            conn.execute(
                f"COPY (SELECT * FROM ({CHANGED_GROUP_OFFERS_SQL}) "
                "ORDER BY group_id, marketplace, external_id) "
                f"TO {search_sync.sql_text(target)} (FORMAT parquet)"
            )
        finally:
            conn.unregister("changed_groups")
    return _GroupChanges(
        changed=changed,
        gone=gone,
        members=members.cast(dict(_MEMBERS_SCHEMA)),  # type: ignore[arg-type]
        left=left,
    )


def _sync_changed(
    connect: Connect, client: meilisearch.Client, build: _GroupBuild
) -> GroupIndexSync:
    """Build the product documents of the groups whose inputs changed, group by group from an
    export of their offers, and send those whose doc_hash changed; delete the gone groups'."""
    skipped: dict[str, str] = {}
    doc_hashes: dict[str, str] = {}
    with search_sync.spill_directory(connect) as spill:
        exported = spill / "changed_groups.parquet"
        changes = _export_changed_groups(connect, build.offers_uid, build.uid, exported)
        changed, gone = changes.changed, changes.gone
        held_hashes = dict(changed.select("group_id", "held_doc_hash").iter_rows())

        def changed_documents() -> Iterator[GroupDocument]:
            for batch in search_sync.iter_group_batches(exported):
                batch = batch.filter(pl.col("marketplace").is_in(build.active))
                for document in build.group_documents(batch, skipped):
                    document[DOCUMENT_HASH_FIELD] = compute_document_hash(document)
                    doc_hashes[document["id"]] = document[DOCUMENT_HASH_FIELD]
                    if held_hashes.get(document["id"]) != document[DOCUMENT_HASH_FIELD]:
                        yield document
            # A changed group left with offers of inactive marketplaces only (a marketplace an
            # admin disabled) makes no document: the one the index holds must go.
            delete.extend(
                group_id
                for group_id, held in held_hashes.items()
                if held is not None and group_id not in doc_hashes
            )

        delete = [g for g, doc_hash in gone.iter_rows() if doc_hash is not None]
        result = apply_document_changes(
            client, build.uid, changed_documents(), delete, progress=build.progress
        )
    build.progress(
        f"{build.uid}: {counted_noun(changed.height, 'group')} with changed offers, "
        f"{counted_noun(result.sent, 'product document')} changed, {result.deleted} deleted"
    )
    state = _with_doc_hashes(
        changed.drop("held_doc_hash"),
        pl.DataFrame(
            {"group_id": list(doc_hashes), "doc_hash": list(doc_hashes.values())},
            schema={"group_id": pl.String, "doc_hash": pl.String},
        ),
    )
    with connect() as conn:
        total = _write(
            conn,
            build.uid,
            state,
            gone.get_column("group_id").to_list(),
            changes.members,
            changes.left,
            replace_all=False,
            shared=build.shared,
        )
        several = _several_offers(conn, build.offers_uid)
    return GroupIndexSync(
        # What was sent and deleted, and the rest of the recorded documents as unchanged.
        result=replace(result, unchanged=total - result.sent),
        products=total,
        several_offers=several,
        skipped=skipped,
        mode="changed",
        built=len(doc_hashes),
    )
