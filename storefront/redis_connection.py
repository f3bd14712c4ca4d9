"""The Redis client class of OneCart's long-running RQ processes (the worker pool and `rq cron`).

RQ's worker and cron scheduler exit on the first Redis connection error. A worker finishing a job
while Redis restarts dies in its heartbeat, and one started while Redis is down dies at once (the
process supervisor gives up after a few quick deaths). With :class:`PatientRedis` every command
waits for Redis to come back instead, so the processes outlive a Redis restart and carry on as
soon as it answers; the supervisor stays the second line of defence:

    rq worker-pool --connection-class storefront.redis_connection.PatientRedis ...
    rq cron storefront.cron --connection-class storefront.redis_connection.PatientRedis ...
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# Longest wait between two attempts to reach Redis while it is down (seconds).
REDIS_RETRY_CAP_S = 1.0
# The dotted path RQ's `--connection-class` option takes.
PATIENT_REDIS_CLASS = "storefront.redis_connection.PatientRedis"


class PatientRedis(redis.Redis):
    """A Redis client that retries connection errors and timeouts forever, with backoff.

    RQ raises the socket timeout of a worker's connection above its blocking dequeue by itself.
    """

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PatientRedis:  # type: ignore[override]
        kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=REDIS_RETRY_CAP_S, base=0.05), -1))
        kwargs.setdefault("retry_on_error", [redis.ConnectionError, redis.TimeoutError])
        kwargs.setdefault("socket_connect_timeout", 2.0)
        kwargs.setdefault("socket_timeout", 10.0)
        return super().from_url(url, **kwargs)
