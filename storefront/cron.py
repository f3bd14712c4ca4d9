"""The order lifecycle's recurring jobs, as an `rq cron` configuration module.

RQ's own cron scheduler enqueues these on an interval from a process of its own, so they resume
by themselves after Redis restarts (empty or not) instead of depending on a job chain that a lost
Redis breaks; the sweeper then dispatches the outbox rows recorded while Redis was away:

    rq cron storefront.cron --connection-class storefront.redis_connection.PatientRedis \
        --url $REDIS_URL

`onecart up` runs that command as the `cron` service next to the worker pool. RQ's scheduler
exits on the first Redis connection error; with PatientRedis (storefront/redis_connection.py)
every command waits for Redis to come back instead. The queue and the
intervals come from JobPolicy's defaults, or from ONECART_ORDER_JOB_POLICY (a JobPolicy as JSON;
the tests and the benchmark run their own queue with short intervals).
"""

from __future__ import annotations

import json
import os

from rq import cron

from storefront.jobs import POLICY_ENV, JobPolicy, sweep_job, track_job

_POLICY = JobPolicy.from_dict(json.loads(os.environ.get(POLICY_ENV) or "{}"))

cron.register(
    sweep_job,
    queue_name=_POLICY.queue_name,
    kwargs={"policy": _POLICY.as_dict()},
    interval=max(1, _POLICY.sweep_interval_seconds),
    job_timeout=_POLICY.job_timeout_seconds,
    name=f"order-sweeper-{_POLICY.queue_name}",
)
cron.register(
    track_job,
    queue_name=_POLICY.queue_name,
    kwargs={"policy": _POLICY.as_dict()},
    interval=max(1, _POLICY.track_interval_seconds),
    job_timeout=_POLICY.job_timeout_seconds,
    name=f"order-tracker-{_POLICY.queue_name}",
)
