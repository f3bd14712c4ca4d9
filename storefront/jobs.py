"""RQ entry points for orders: place a sub-order, carry out a cancellation, sweep, track.

Jobs take ids (and a small dict of policy values), never objects, and delegate to commerce/.
Right after checkout an order's sub-orders get one job that makes their first placement attempts
side by side (a placement mostly waits on its marketplace, so one worker waits on all of an
order's marketplaces at once); a sub-order that needs more attempts, or that the sweeper
re-queues, gets a job of its own. Placement retries transient and unknown outcomes with RQ's
Retry (RQ's scheduler runs the delayed attempts); the job knows its last attempt from
`job.retries_left`. The sweeper and the
tracker are enqueued on an interval by RQ's own cron scheduler (storefront.cron), a process of
its own, so they resume by themselves when Redis comes back, even empty; the sweeper then
dispatches whatever the outbox recorded while Redis was away.

Run the order workers (jobs run in-process, warm; see OrderWorker) and the cron scheduler:

    rq worker-pool -n $ONECART_RQ_WORKERS -w storefront.jobs.OrderWorker --url $REDIS_URL default
    rq cron storefront.cron --url $REDIS_URL

A plain `rq worker` runs the same jobs correctly, only with RQ's per-job fork cost.
"""

from __future__ import annotations

import importlib
import logging
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry, SimpleWorker, get_current_job
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from commerce.cancellation import carry_out_cancellation
from commerce.db import get_session_factory
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.marketplace_access import adapter_for_marketplace, configured_options
from commerce.models import Marketplace, utc_now
from commerce.notifications import send_notification_emails
from commerce.payments.stripe_gateway import preload_stripe
from commerce.placement import PlacementResult, place_sub_order
from commerce.sweeper import SweepPolicy, dispatch_outbox, sweep
from commerce.tracking import track_open_sub_orders
from commerce.tracking_schedule import TrackingPolicy
from onecart.helper_threads import STOP_SIGNALS
from onecart.production import require_production_ready
from onecart.settings import get_settings
from storefront.site_logging import configure_site_logging

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "default"
REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_SOCKET_TIMEOUT_S = 5.0
REPEATING_RESULT_TTL_S = 600
# Read by storefront.cron: a JobPolicy.as_dict() as JSON (tests and the benchmark use short ones).
POLICY_ENV = "ONECART_ORDER_JOB_POLICY"


class PlacementRetry(Exception):
    """Raised by a placement attempt that failed transiently, so RQ runs the next attempt."""


class CancellationPending(Exception):
    """Raised while some sub-orders of a cancelled order are still being placed."""


@dataclass(frozen=True, slots=True)
class JobPolicy:
    """Queue name and timings for the order jobs; travels with each job as a plain dict.

    The defaults suit production; tests and the benchmark pass shorter ones.
    """

    queue_name: str = DEFAULT_QUEUE
    placement_retry_intervals: tuple[int, ...] = (5, 30, 120, 600)
    cancel_retry_intervals: tuple[int, ...] = (10, 60, 300)
    stuck_after_seconds: int = 300
    stale_pending_seconds: int = 900
    sweep_interval_seconds: int = 60
    track_interval_seconds: int = 60
    # Delivered sub-orders stay watched for the marketplace's refunds (a return) this long after
    # delivery, each asked at most once per `delivered_poll_hours` (commerce.tracking_schedule).
    refund_watch_days: int = 30
    delivered_poll_hours: int = 24
    # A marketplace whose status polls fail is asked again after one tracking pass, then after
    # twice as long at each failure, at most this long (commerce.tracking_health).
    track_backoff_cap_seconds: int = 3600
    job_timeout_seconds: int = 300

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (for job arguments and app.config)."""
        values = asdict(self)
        for name, value in values.items():
            if isinstance(value, tuple):
                values[name] = list(value)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> JobPolicy:
        """A policy from `as_dict` output; unknown keys are ignored, missing ones default."""
        if not values:
            return cls()
        known = {f.name for f in fields(cls)}
        cleaned: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                continue
            cleaned[name] = (
                tuple(int(v) for v in value) if isinstance(value, list | tuple) else value
            )
        return cls(**cleaned)

    @property
    def sweep_policy(self) -> SweepPolicy:
        """The sweeper's thresholds."""
        return SweepPolicy(
            stuck_after=timedelta(seconds=self.stuck_after_seconds),
            stale_pending_after=timedelta(seconds=self.stale_pending_seconds),
            refund_processing_after=timedelta(seconds=self.stuck_after_seconds),
            reconcile_after=timedelta(seconds=self.sweep_interval_seconds),
            # Every attempt of a cancellation job has ended by then (waits between attempts,
            # each attempt at most its timeout), with a margin.
            cancel_job_ended_after=timedelta(
                seconds=sum(self.cancel_retry_intervals)
                + (len(self.cancel_retry_intervals) + 1) * self.job_timeout_seconds
                + self.stuck_after_seconds
            ),
        )

    @property
    def tracking_policy(self) -> TrackingPolicy:
        """What one tracking pass asks the marketplaces about."""
        return TrackingPolicy(
            refund_watch_after_delivery=timedelta(days=self.refund_watch_days),
            delivered_poll_interval=timedelta(hours=self.delivered_poll_hours),
            failure_backoff_first=timedelta(seconds=max(1, self.track_interval_seconds)),
            failure_backoff_cap=timedelta(seconds=self.track_backoff_cap_seconds),
        )


def redis_connection(url: str) -> redis.Redis:
    """A Redis client that fails fast when the server is down (checkout must not hang)."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
    )


def order_queue(connection: redis.Redis, policy: JobPolicy) -> Queue:
    """The queue the order jobs go to."""
    return Queue(policy.queue_name, connection=connection)


def _placement_retry(policy: JobPolicy) -> Retry:
    intervals = list(policy.placement_retry_intervals)
    return Retry(max=len(intervals), interval=intervals)


def enqueue_outbox_message(
    connection: redis.Redis, policy: JobPolicy, message: OutboxMessage
) -> str:
    """Enqueue the job an outbox row asks for; returns the RQ job id."""
    queue = order_queue(connection, policy)
    if message.topic == OutboxTopic.PLACE_SUB_ORDER:
        assert message.sub_order_id is not None
        job = queue.enqueue(
            place_sub_order_job,
            message.sub_order_id,
            policy=policy.as_dict(),
            outbox_id=message.id,
            retry=_placement_retry(policy),
            job_timeout=policy.job_timeout_seconds,
            job_id=f"onecart-place-{policy.queue_name}-{message.sub_order_id}-{message.id}",
            description=f"place sub-order {message.sub_order_id}",
        )
    elif message.topic == OutboxTopic.CANCEL_ORDER:
        intervals = list(policy.cancel_retry_intervals)
        job = queue.enqueue(
            cancel_order_job,
            message.order_id,
            policy=policy.as_dict(),
            retry=Retry(max=len(intervals), interval=intervals),
            job_timeout=policy.job_timeout_seconds,
            job_id=f"onecart-cancel-{policy.queue_name}-{message.order_id}-{message.id}",
            description=f"cancel order {message.order_id}",
        )
    else:  # pragma: no cover - the enum has no other members
        raise ValueError(f"unknown outbox topic {message.topic!r}")
    return job.id


def dispatch_order_jobs(
    session_factory: sessionmaker[Session], redis_url: str, policy: JobPolicy, order_id: int
) -> tuple[int, int]:
    """Enqueue an order's outbox rows right after checkout; returns (dispatched, failed).

    An order's placements (two or more) go out as one job that makes their first attempts side
    by side (place_sub_orders_job); every row is marked with that job's id. Redis being down is
    not an error here: the rows stay undispatched and the sweeper enqueues them (one job per
    sub-order) once Redis is back.
    """
    now = utc_now()
    with session_factory() as session:
        placements = list(
            session.execute(
                select(OutboxMessage.id, OutboxMessage.sub_order_id)
                .where(
                    OutboxMessage.order_id == order_id,
                    OutboxMessage.topic == OutboxTopic.PLACE_SUB_ORDER,
                    OutboxMessage.dispatched_at.is_(None),
                    OutboxMessage.available_at <= now,
                )
                .order_by(OutboxMessage.id)
            )
        )
    together = {message_id: sub_order_id for message_id, sub_order_id in placements}
    group_job_id: list[str] = []
    connection = redis_connection(redis_url)

    def dispatch(message: OutboxMessage) -> str:
        if len(together) < 2 or message.id not in together:
            return enqueue_outbox_message(connection, policy, message)
        if not group_job_id:
            queue = order_queue(connection, policy)
            job = queue.enqueue(
                place_sub_orders_job,
                [sub_order_id for sub_order_id in together.values() if sub_order_id is not None],
                policy=policy.as_dict(),
                outbox_ids={
                    str(sub_order_id): message_id
                    for message_id, sub_order_id in together.items()
                    if sub_order_id is not None
                },
                job_timeout=policy.job_timeout_seconds,
                job_id=f"onecart-place-order-{policy.queue_name}-{order_id}-{min(together)}",
                description=f"place the sub-orders of order {order_id}",
            )
            group_job_id.append(job.id)
        return group_job_id[0]

    try:
        return dispatch_outbox(session_factory, dispatch, order_id=order_id)
    finally:
        connection.close()


def _enqueue_later_attempts(
    connection: redis.Redis,
    policy: JobPolicy,
    sub_order_id: int,
    after_job: str,
    outbox_id: int | None,
) -> str:
    """A sub-order's own job for the attempts left after its first one ran in
    place_sub_orders_job: the schedule its own job would have had from the start (wait the first
    interval, then retry at the others), under the same outbox row."""
    intervals = list(policy.placement_retry_intervals)
    rest = intervals[1:]
    job = order_queue(connection, policy).enqueue_in(
        timedelta(seconds=intervals[0] if intervals else 0),
        place_sub_order_job,
        sub_order_id,
        policy=policy.as_dict(),
        outbox_id=outbox_id,
        retry=Retry(max=len(rest), interval=rest) if rest else None,
        job_timeout=policy.job_timeout_seconds,
        job_id=f"onecart-place-{policy.queue_name}-{sub_order_id}-after-{after_job}",
        description=f"place sub-order {sub_order_id} (next attempts)",
    )
    return job.id


# --- Job entry points ---------------------------------------------------------------------------


def _send_emails() -> None:
    settings = get_settings()
    if settings.smtp_host:
        send_notification_emails(get_session_factory(), settings)


def place_sub_order_job(
    sub_order_id: int, policy: Mapping[str, Any] | None = None, outbox_id: int | None = None
) -> str:
    """Place one sub-order through its marketplace's adapter (one attempt per job run). A job of
    an outbox row the sweeper has since superseded (it re-queued the sub-order) ends quietly:
    the newer job works the sub-order (commerce.placement_claims)."""
    job_policy = JobPolicy.from_dict(policy)
    job = get_current_job()
    final_attempt = job is None or not job.retries_left
    result = place_sub_order(
        get_session_factory(),
        sub_order_id,
        adapter_for=adapter_for_marketplace,
        final_attempt=final_attempt,
        stuck_after=timedelta(seconds=job_policy.stuck_after_seconds),
        overcharge_tolerance_bps=get_settings().overcharge_tolerance_bps,
        outbox_id=outbox_id,
    )
    if job is not None:
        job.meta["placement"] = result.value
        job.save_meta()
    _send_emails()
    if result == PlacementResult.RETRY:
        raise PlacementRetry(f"sub-order {sub_order_id}: not placed or outcome unknown, retrying")
    return result.value


def place_sub_orders_job(
    sub_order_ids: list[int],
    policy: Mapping[str, Any] | None = None,
    outbox_ids: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """The first placement attempt of several sub-orders of one order, side by side.

    A placement mostly waits on its marketplace's reply: with one job per sub-order, an order of
    three marketplaces held three workers (or waited for them), so at a few shoppers at once the
    sub-orders queued for the pool. Here one worker waits on all of an order's marketplaces at
    once, one thread each (each attempt claims its sub-order and opens its own DB sessions, as
    separate workers would). A sub-order that needs another attempt gets a job of its own with
    the rest of the retry schedule; one whose attempt raised is treated the same way.
    `outbox_ids` (sub-order id as text → its outbox row) is what each attempt claims under.
    """
    job_policy = JobPolicy.from_dict(policy)
    rows = {int(sub_id): message_id for sub_id, message_id in (outbox_ids or {}).items()}
    job = get_current_job()
    final_attempt = not job_policy.placement_retry_intervals
    session_factory = get_session_factory()
    tolerance = get_settings().overcharge_tolerance_bps

    def attempt(sub_order_id: int) -> PlacementResult:
        try:
            return place_sub_order(
                session_factory,
                sub_order_id,
                adapter_for=adapter_for_marketplace,
                final_attempt=final_attempt,
                stuck_after=timedelta(seconds=job_policy.stuck_after_seconds),
                overcharge_tolerance_bps=tolerance,
                outbox_id=rows.get(sub_order_id),
            )
        except Exception:
            logger.exception("sub-order %s: placement attempt failed; retrying", sub_order_id)
            return PlacementResult.RETRY

    with ThreadPoolExecutor(
        max_workers=max(1, len(sub_order_ids)), thread_name_prefix="place"
    ) as pool:
        results = dict(zip(sub_order_ids, pool.map(attempt, sub_order_ids), strict=True))
    retry = [sub_id for sub_id, result in results.items() if result == PlacementResult.RETRY]
    if retry:
        connection = (
            job.connection if job is not None else redis_connection(get_settings().redis_url)
        )
        for sub_order_id in retry:
            _enqueue_later_attempts(
                connection,
                job_policy,
                sub_order_id,
                job.id if job is not None else "direct",
                rows.get(sub_order_id),
            )
    summary = {str(sub_id): result.value for sub_id, result in results.items()}
    if job is not None:
        job.meta["placement"] = summary
        job.save_meta()
    _send_emails()
    return summary


def cancel_order_job(order_id: int, policy: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Carry out a shopper's cancellation (retried while sub-orders are still being placed)."""
    job = get_current_job()
    report = carry_out_cancellation(
        get_session_factory(),
        order_id,
        adapter_for=adapter_for_marketplace,
        final_attempt=job is None or not job.retries_left,
    )
    _send_emails()
    if report.in_flight and job is not None and job.retries_left:
        raise CancellationPending(f"order {order_id}: {', '.join(report.in_flight)} in flight")
    return {
        "cancelled": list(report.cancelled),
        "refused": list(report.refused),
        "in_flight": list(report.in_flight),
    }


def sweep_job(policy: Mapping[str, Any] | None = None) -> dict[str, int]:
    """One sweep (see commerce.sweeper); RQ's cron scheduler enqueues the next one."""
    job_policy = JobPolicy.from_dict(policy)
    job = get_current_job()
    connection = job.connection if job is not None else redis_connection(get_settings().redis_url)
    report = sweep(
        get_session_factory(),
        lambda message: enqueue_outbox_message(connection, job_policy, message),
        policy=job_policy.sweep_policy,
    )
    _send_emails()
    return asdict(report)


def track_job(policy: Mapping[str, Any] | None = None) -> dict[str, int]:
    """One tracking pass over open sub-orders and the delivered ones still watched for refunds;
    RQ's cron scheduler enqueues the next one."""
    report = track_open_sub_orders(
        get_session_factory(),
        adapter_for=adapter_for_marketplace,
        policy=JobPolicy.from_dict(policy).tracking_policy,
    )
    _send_emails()
    return asdict(report)


class OrderWorker(SimpleWorker):
    """The RQ worker for order jobs: runs each job in its own process, warm.

    RQ's default worker forks a fresh work-horse per job, which then configures the ORM mappers,
    compiles its SQL, imports the adapter modules and connects to the DB again — about 0.4 s per
    job, more than a marketplace call takes. These jobs are plain Python (HTTP and SQL), so they
    run in the worker process itself, with everything loaded once here. A worker killed mid-job
    loses nothing: the sweeper re-queues placements stuck in `placing`, and they reconcile with
    the marketplace before placing again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # In production a worker with default secrets must not start (onecart.production).
        require_production_ready(get_settings(), "RQ worker")
        # The workers build no Flask app and rq configures only its own loggers, so OneCart's
        # INFO lines (placements, refunds, cancellations) would fall to Python's defaults and be
        # dropped: written here as the site writes them (one JSON line each, on stderr).
        configure_site_logging()
        super().__init__(*args, **kwargs)
        preload_order_code()

    def subscribe(self) -> None:
        """RQ's pubsub thread (worker commands), started with SIGINT and SIGTERM blocked so that
        the kernel hands a stop signal to the main thread. The main thread waits for jobs in a
        blocking Redis read (up to RQ's dequeue timeout, 405 s); Python runs a handler only on
        the main thread, and a signal delivered to the pubsub thread did not interrupt that
        read, so `onecart down` waited out supervisord's 15 s and SIGKILLed the pool."""
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            super().subscribe()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """A planned placement retry is one log line, its reason and when the next attempt runs;
        RQ's own handling logs a full traceback for every raise, which for this expected and
        scheduled event buried the unexpected errors in worker.log. Those keep their traceback,
        as does a PlacementRetry with no attempt left (place_sub_order should never ask for it)."""
        error = exc_info[1] if len(exc_info) > 1 else None
        if not isinstance(error, PlacementRetry) or not job.retries_left:
            super().handle_exception(job, *exc_info)
            return
        # RQ schedules the retry after this (handle_job_failure): same interval, same count.
        interval = job.get_retry_interval()
        next_attempt = datetime.now(UTC) + timedelta(seconds=interval)
        self.log.warning(
            "job %s: %s; next attempt at %s (in %d s, %d attempt(s) left)",
            job.id,
            error,
            next_attempt.strftime("%Y-%m-%d %H:%M:%S UTC"),
            interval,
            job.retries_left,
        )
        call_exception_handlers(self._exc_handlers, job, *exc_info)


def _preload_adapter(marketplace: Marketplace) -> None:
    """Build one marketplace's adapter ahead of its jobs. A marketplace whose adapter cannot be
    built (an admin-added one missing its format's options, a key variable unset) must not stop
    the worker, and with it every other marketplace's orders: it is logged, and its own jobs
    meet the same error and record it."""
    try:
        adapter_for_marketplace(marketplace)
    except Exception as exc:  # a warm-up: whatever it cannot build is left to the jobs
        logger.warning("adapter of %s not preloaded: %s", marketplace.slug, exc)


def preload_order_code() -> None:
    """Do once per worker what the first job would otherwise pay for: import every adapter
    module, configure the ORM mappers, read marketplaces.toml, build the shared SSL context and
    Stripe client, and build the adapter of every active marketplace (an HTTP client each).

    Without it each of the pool's workers paid that on its own first jobs, in the middle of
    placing orders; on a 2-core machine with a dozen workers that CPU showed up as placement
    latency. The adapters need the DB: if it is not reachable yet, the first job builds them.
    """
    from adapters.public_addresses import shared_ssl_context
    from adapters.registry import ADAPTER_KINDS

    for target in ADAPTER_KINDS.values():
        importlib.import_module(target.split(":")[0])
    configure_mappers()
    configured_options()
    shared_ssl_context()
    preload_stripe(get_settings())
    try:
        with get_session_factory()() as session:
            for marketplace in session.scalars(
                select(Marketplace).where(Marketplace.active.is_(True))
            ):
                _preload_adapter(marketplace)
    except SQLAlchemyError as exc:
        logger.warning("adapters not preloaded (storefront DB unavailable): %s", exc)
