"""RQ entry point that takes a disabled marketplace's offers out of listings (and puts an enabled
one's back) right after the admin's click, instead of at the next pipeline run.

The admin views enqueue `refresh_marketplace_listings_job` with the marketplace's slug; the job
rebuilds the product documents of the groups it sells, and recounts those groups in their offer
documents (search_index.marketplace_visibility), as the storefront DB says now, so a job that ran late, twice, or after another toggle still leaves
the index right. The latest job id per marketplace is kept in Redis so the admin page can show
whether the change is still on its way. Runs on the order workers' queue:

    rq worker-pool -n $ONECART_RQ_WORKERS -w storefront.jobs.OrderWorker --url $REDIS_URL default
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

import redis
from rq import Queue, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job

from commerce.catalog import disabled_marketplace_slugs, group_matches
from commerce.db import get_session_factory
from onecart.settings import get_settings
from search_index.indexing import connect
from search_index.marketplace_visibility import refresh_marketplace_groups
from storefront.jobs import DEFAULT_QUEUE, redis_connection

logger = logging.getLogger(__name__)

LISTINGS_JOB_TIMEOUT_S: Final = 1800
# Rebuilds in one job when the marketplace was toggled again while it ran.
MAX_REFRESH_ROUNDS: Final = 3
# How long the admin page can show a finished job's outcome.
LISTINGS_RESULT_TTL_S: Final = 86_400
_LATEST_JOB_KEY: Final = "onecart:listings-refresh:{slug}"


def enqueue_listings_refresh(
    redis_url: str, slug: str, offers_index_uid: str, *, queue_name: str = DEFAULT_QUEUE
) -> str:
    """Queue the refresh of `slug`'s groups in the product index of the offers index
    `offers_index_uid` (the site's MEILI_INDEX); returns the job id.

    Raises redis.RedisError when Redis cannot take it (the caller tells the admin that the next
    pipeline run will do it)."""
    connection = redis_connection(redis_url)
    try:
        job = Queue(queue_name, connection=connection).enqueue(
            refresh_marketplace_listings_job,
            slug,
            offers_index_uid,
            job_timeout=LISTINGS_JOB_TIMEOUT_S,
            result_ttl=LISTINGS_RESULT_TTL_S,
            failure_ttl=LISTINGS_RESULT_TTL_S,
            description=f"refresh the listings of marketplace {slug}",
        )
        connection.set(_LATEST_JOB_KEY.format(slug=slug), job.id, ex=LISTINGS_RESULT_TTL_S)
        return job.id
    finally:
        connection.close()


def listings_refresh_states(redis_url: str, slugs: Sequence[str]) -> dict[str, str]:
    """Per marketplace slug, the state of its latest listings refresh ("queued", "started",
    "finished", "failed", ...), for those that had one recently; empty when Redis is down."""
    connection = redis_connection(redis_url)
    states: dict[str, str] = {}
    try:
        for slug in slugs:
            job_id = connection.get(_LATEST_JOB_KEY.format(slug=slug))
            if not job_id:
                continue
            try:
                status = Job.fetch(job_id.decode(), connection=connection).get_status()
            except NoSuchJobError:
                continue
            if status is not None:
                states[slug] = str(getattr(status, "value", status))
    except redis.RedisError as exc:
        logger.warning("listings refresh states unavailable: %s", exc)
        return {}
    finally:
        connection.close()
    return states


def refresh_marketplace_listings_job(slug: str, offers_index_uid: str) -> dict[str, int]:
    """Rebuild the product documents of every group selling on `slug` (in the product index of
    `offers_index_uid`) from the offers of the marketplaces enabled now
    (commerce.catalog.disabled_marketplace_slugs), and count only those offers in the group
    fields of the groups' offer documents."""
    settings = get_settings()
    factory = get_session_factory()

    def matches_of(group_ids: Sequence[str]) -> dict[str, tuple[str, Decimal]]:
        with factory() as session:
            return group_matches(session, group_ids)

    job = get_current_job()
    with factory() as session:
        disabled = disabled_marketplace_slugs(session)
    for _attempt in range(MAX_REFRESH_ROUNDS):
        refresh = refresh_marketplace_groups(
            connect(settings),
            offers_index_uid,
            slug,
            disabled=disabled,
            matches_of=matches_of,
            progress=logger.info,
        )
        # An admin may have toggled it again meanwhile, and that toggle's job may have finished
        # first: whichever job writes last must write what the DB says now.
        with factory() as session:
            now_disabled = disabled_marketplace_slugs(session)
        if (slug in now_disabled) == (slug in disabled):
            break
        disabled = now_disabled
    outcome = {
        "products": refresh.groups,
        "rebuilt": refresh.result.sent,
        "deleted": refresh.result.deleted,
        "offers_recounted": refresh.offers_updated,
        "disabled": int(slug in disabled),
    }
    if job is not None:
        job.meta["listings"] = outcome
        job.save_meta()
    return outcome
