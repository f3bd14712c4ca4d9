"""The order lifecycle's recurring jobs, as an `rq cron` configuration module.

RQ's own cron scheduler enqueues these on an interval from a process of its own, so they resume
by themselves after Redis restarts (empty or not) instead of depending on a job chain that a lost
Redis breaks:

    rq cron storefront.cron --url $REDIS_URL

`onecart up` runs that command as the `cron` service next to the worker pool.
"""

from __future__ import annotations

from rq import cron

from storefront.jobs import DEFAULT_QUEUE, JobPolicy, sweep_job, track_job

_POLICY = JobPolicy()

cron.register(
    sweep_job,
    queue_name=DEFAULT_QUEUE,
    interval=_POLICY.sweep_interval_seconds,
    job_timeout=_POLICY.job_timeout_seconds,
    name="order-sweeper",
)
cron.register(
    track_job,
    queue_name=DEFAULT_QUEUE,
    interval=_POLICY.track_interval_seconds,
    job_timeout=_POLICY.job_timeout_seconds,
    name="order-tracker",
)
