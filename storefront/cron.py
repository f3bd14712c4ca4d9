"""The order lifecycle's recurring jobs, as an `rq cron` configuration module.

RQ's own cron scheduler enqueues these on an interval from a process of its own, so they resume
by themselves after Redis restarts (empty or not) instead of depending on a job chain that a lost
Redis breaks; the sweeper then dispatches the outbox rows recorded while Redis was away:

    rq cron storefront.cron --connection-class storefront.cron.PatientRedis --url $REDIS_URL

`onecart up` runs that command as the `cron` service next to the worker pool. RQ's scheduler
exits on the first Redis connection error; with :class:`PatientRedis` every command waits for
Redis to come back instead (the process supervisor stays the second line of defence). The queue and the
intervals come from JobPolicy's defaults, or from ONECART_ORDER_JOB_POLICY (a JobPolicy as JSON;
the tests and the benchmark run their own queue with short intervals).
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq import cron

from storefront.jobs import POLICY_ENV, JobPolicy, sweep_job, track_job

# Longest wait between two attempts to reach Redis while it is down (seconds).
REDIS_RETRY_CAP_S = 1.0


class PatientRedis(redis.Redis):
    """A Redis client that retries connection errors and timeouts forever, with backoff, so the
    cron scheduler outlives a Redis restart and enqueues again as soon as it is back."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PatientRedis:  # type: ignore[override]
        kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=REDIS_RETRY_CAP_S, base=0.05), -1))
        kwargs.setdefault("retry_on_error", [redis.ConnectionError, redis.TimeoutError])
        kwargs.setdefault("socket_connect_timeout", 2.0)
        kwargs.setdefault("socket_timeout", 10.0)
        return super().from_url(url, **kwargs)


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
