"""Listings without a disabled marketplace's offers, rebuilt as soon as an admin disables or
enables it.

Listings read the product index (`<index>_groups`, search_index.groups): each document carries
its offers' summary, count, marketplaces and cheapest price. When an admin disables a marketplace
those must stop counting its offers at once, not at the next pipeline run, and without any work
per listing request (the listing page's CPU is a benchmarked target). So the documents of every
group that has an offer on that marketplace are rebuilt here, by the same builder the pipeline
uses (search_index.groups.build_group_documents), from the offer documents of those groups in
the offers index, leaving out the offers of every disabled marketplace; groups left without an
offer are deleted. Enabling the marketplace rebuilds the same groups with its offers again.

The offer documents of those groups say the same of their group (`group_size`,
`group_marketplaces`, `group_min_price_usd_minor`: the cards drawn from the offers index, the
assistant's suggestions), so they are set here too, over the enabled marketplaces' offers
(search_index.documents.summarize_groups, as the pipeline's search_products counts them), with
their doc_hash recomputed: the next pipeline run finds them as it would build them and sends
nothing. (An offer document with an embedding is hashed by the pipeline with it, which is not
read back here: the pipeline then sends that document again, unchanged but for the hash.)

The offers index is the source because it holds exactly the offer documents the pipeline built
the product documents from (it keeps a disabled marketplace's offers; its readers leave them out
with search_index.filters.withheld_marketplaces_clause), so a rebuilt document is the one the
pipeline builds for the same marketplaces (tests/pipelines/test_product_listings.py compares
their doc_hashes), and the worker needs neither the pipeline's DuckDB file nor its host. Two
inputs are not in offer documents and are passed in: the matching method and confidence of each
offer (the storefront DB holds them), and the Bayesian prior, the rating mean of every indexed
offer (`catalog_rating_prior`, read from the offers index as the pipeline reads it from what it
indexed).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import meilisearch

from search_index.documents import (
    DOCUMENT_HASH_FIELD,
    VECTORS_FIELD,
    compute_document_hash,
    group_fields,
    summarize_groups,
)
from search_index.filters import quote_filter_value
from search_index.groups import GROUPED_OFFER_FIELDS, build_group_documents, catalog_rating_mean
from search_index.indexing import (
    DEFAULT_TASK_TIMEOUT_SECONDS,
    FETCH_PAGE_SIZE,
    IndexSyncResult,
    apply_document_changes,
    index_exists,
    update_document_fields,
)
from search_index.settings import group_index_uid

# Groups rebuilt per round trip: their ids go into one `group_id IN [...]` filter.
GROUPS_PER_BATCH: Final = 500
_OFFER_FIELDS: Final = (*GROUPED_OFFER_FIELDS, "group_id")

Matches = Mapping[str, tuple[str, Decimal]]
MatchesOf = Callable[[Sequence[str]], Matches]


@dataclass(frozen=True, slots=True)
class VisibilityRefresh:
    """What one refresh did: the groups that sell on the marketplace, the product documents
    written and deleted, and the offer documents whose group fields changed."""

    groups: int
    result: IndexSyncResult
    offers_updated: int = 0


def _documents(
    client: meilisearch.Client,
    index_uid: str,
    fields: Sequence[str] | None,
    filter_expression: str,
) -> Iterator[dict[str, Any]]:
    """Every document of `index_uid` matching the filter (documents route: no hit limit), with
    `fields` only, or whole (embeddings aside) when None."""
    index = client.index(index_uid)
    offset = 0
    while True:
        parameters: dict[str, Any] = {
            "filter": filter_expression,
            "limit": FETCH_PAGE_SIZE,
            "offset": offset,
        }
        if fields is not None:
            parameters["fields"] = list(fields)
        page = index.get_documents(parameters)
        for document in page.results:
            yield dict(document)
        offset += len(page.results)
        if not page.results or offset >= page.total:
            return


def catalog_rating_prior(client: meilisearch.Client, offers_uid: str) -> Decimal:
    """The rating mean of every offer in the offers index (the pipeline's Bayesian prior,
    pipelines.group_search_state.catalog_prior, which reads the offers it indexed)."""
    index = client.index(offers_uid)
    offers: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = index.get_documents(
            {"fields": ["rating", "rating_count"], "limit": FETCH_PAGE_SIZE, "offset": offset}
        )
        offers.extend(
            {"rating": d.get("rating"), "rating_count": d.get("rating_count")}
            for d in (dict(document) for document in page.results)
            if d.get("rating") is not None
        )
        offset += len(page.results)
        if not page.results or offset >= page.total:
            return catalog_rating_mean(offers)


def groups_selling_on(
    client: meilisearch.Client, offers_uid: str, slug: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """The ids of the groups with an offer of marketplace `slug`, and the offers of `slug`
    that have no group (each is a product of its own, its document id its group id)."""
    group_ids: set[str] = set()
    alone: list[dict[str, Any]] = []
    for offer in _documents(
        client, offers_uid, _OFFER_FIELDS, f"marketplace = {quote_filter_value(slug)}"
    ):
        if offer.get("group_id"):
            group_ids.add(str(offer["group_id"]))
        else:
            alone.append(offer)
    return sorted(group_ids), alone


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def refresh_marketplace_groups(
    client: meilisearch.Client,
    offers_uid: str,
    slug: str,
    *,
    disabled: Collection[str],
    matches_of: MatchesOf,
    prior: Decimal | None = None,
    progress: Callable[[str], None] | None = None,
    task_timeout: float = DEFAULT_TASK_TIMEOUT_SECONDS,
) -> VisibilityRefresh:
    """Rebuild the product document of every group with an offer of marketplace `slug` from
    the offers of the marketplaces not in `disabled`, and delete the groups left with none; set
    the group fields of those groups' offer documents to count the same offers.

    Run after `slug` was disabled (it is in `disabled`) or enabled (it is not): the same call
    either way, so running it twice, or after another toggle, leaves the index as the DB says.
    `matches_of(group_ids)` gives the matching method and confidence by offer document id.
    """
    report = progress or (lambda _message: None)
    products_uid = group_index_uid(offers_uid)
    if not (index_exists(client, offers_uid) and index_exists(client, products_uid)):
        # Nothing built yet: the pipeline's first build leaves disabled marketplaces out (and
        # documents sent now would create the product index without its settings).
        report(f"{slug}: no product index yet, nothing to refresh")
        return VisibilityRefresh(
            groups=0,
            result=IndexSyncResult(sent=0, deleted=0, unchanged=0, rebuilt=False, task_uids=()),
        )
    group_ids, alone = groups_selling_on(client, offers_uid, slug)
    if prior is None:
        prior = catalog_rating_prior(client, offers_uid)
    hidden = set(disabled)
    deleted: list[str] = []
    offer_changes: list[dict[str, Any]] = []

    def rebuilt() -> Iterator[dict[str, Any]]:
        for batch in _batches(group_ids, GROUPS_PER_BATCH):
            listed = ", ".join(quote_filter_value(group_id) for group_id in batch)
            # Whole documents: a changed offer document's doc_hash covers every field.
            members = list(_documents(client, offers_uid, None, f"group_id IN [{listed}]"))
            offers = [offer for offer in members if offer.get("marketplace") not in hidden]
            offer_changes.extend(_group_field_changes(members, offers))
            yield from _built(offers, batch, matches_of(batch), prior, deleted)
        if alone and slug not in hidden:
            yield from _built(alone, [], {}, prior, deleted)
        elif alone:
            deleted.extend(str(offer["id"]) for offer in alone)

    result = apply_document_changes(
        client,
        products_uid,
        rebuilt(),
        deleted,
        progress=report,
        task_timeout=task_timeout,
    )
    offers_updated = update_document_fields(
        client, offers_uid, offer_changes, task_timeout=task_timeout
    )
    report(
        f"{slug}: {len(group_ids) + len(alone)} products sell there; {result.sent} product "
        f"documents rebuilt, {result.deleted} left with no offer, {offers_updated} offer "
        "documents recounted"
    )
    return VisibilityRefresh(
        groups=len(group_ids) + len(alone), result=result, offers_updated=offers_updated
    )


def _group_field_changes(
    members: Sequence[Mapping[str, Any]], counted: Iterable[Mapping[str, Any]]
) -> Iterator[dict[str, Any]]:
    """The group fields (and doc_hash) of each offer document of `members` whose group now
    counts differently: over the `counted` offers (the enabled marketplaces'), a disabled
    marketplace's own documents included, as the pipeline builds them."""
    summaries = summarize_groups(
        (
            offer.get("group_id"),
            str(offer.get("marketplace")),
            offer.get("price_usd_minor"),
            bool(offer.get("available")),
        )
        for offer in counted
    )
    for offer in members:
        group_id = str(offer["group_id"])
        summary = summaries.get(group_id)
        fields = group_fields(
            summary.as_group(group_id) if summary else {"group_id": group_id},
            int(offer["price_usd_minor"]),
        )
        if all(offer.get(name) == value for name, value in fields.items()):
            continue
        document = {
            name: value
            for name, value in {**offer, **fields}.items()
            if name not in (DOCUMENT_HASH_FIELD, VECTORS_FIELD)
        }
        yield {"id": offer["id"], **fields, DOCUMENT_HASH_FIELD: compute_document_hash(document)}


def _built(
    offers: Iterable[Mapping[str, Any]],
    group_ids: Sequence[str],
    matches: Matches,
    prior: Decimal,
    deleted: list[str],
) -> Iterator[dict[str, Any]]:
    """The product documents of `offers` (dicts, as apply_document_changes sends them); the
    groups of `group_ids` that made none go to `deleted`."""
    documents = build_group_documents(offers, matches=matches, prior_mean=prior)
    made = {document["id"] for document in documents}
    deleted.extend(group_id for group_id in group_ids if group_id not in made)
    for document in documents:
        yield dict(document)
