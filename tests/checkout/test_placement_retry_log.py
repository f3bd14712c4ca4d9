"""worker.log: a planned placement retry (PlacementRetry, scheduled by the job's Retry) is one
line with its reason and the next attempt's time; an unexpected error keeps its traceback.

Before, RQ logged a full traceback for every planned retry, so the operator reading worker.log
could not tell an expected, scheduled retry from a bug. Real parts: Redis and the OrderWorker.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from rq import Queue, Retry

from storefront.jobs import OrderWorker, PlacementRetry

REASON = "sub-order 7: not placed or outcome unknown, retrying"


def planned_retry() -> None:
    raise PlacementRetry(REASON)


def unexpected_error() -> None:
    raise ValueError("a bug in the adapter")


@pytest.fixture
def queue() -> Iterator[Queue]:
    connection = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    queue = Queue(f"test-retry-log-{uuid.uuid4().hex[:8]}", connection=connection)
    try:
        yield queue
    finally:
        for job_id in queue.scheduled_job_registry.get_job_ids():
            queue.scheduled_job_registry.remove(job_id, delete_job=True)
        for job_id in queue.failed_job_registry.get_job_ids():
            queue.failed_job_registry.remove(job_id, delete_job=True)
        queue.delete(delete_jobs=True)


def _work(queue: Queue) -> None:
    worker = OrderWorker([queue], connection=queue.connection)
    worker.work(burst=True, with_scheduler=False)


def test_a_planned_placement_retry_is_one_line_with_its_next_attempt(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    job = queue.enqueue(planned_retry, retry=Retry(max=2, interval=[90, 300]))
    with caplog.at_level(logging.INFO, logger="rq"):
        _work(queue)

    worker_records = [
        r for r in caplog.records if r.name == "rq.worker" and job.id in r.getMessage()
    ]
    retry_lines = [r.getMessage() for r in worker_records if REASON in r.getMessage()]
    assert len(retry_lines) == 1
    assert "next attempt at " in retry_lines[0] and "(in 90 s, 2 attempt(s) left)" in retry_lines[0]
    assert not any("Traceback" in r.getMessage() or r.exc_info for r in worker_records)
    assert not any(r.levelno >= logging.ERROR for r in worker_records)
    assert job.id in queue.scheduled_job_registry.get_job_ids()  # still retried as planned


def test_an_unexpected_error_keeps_its_traceback(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    job = queue.enqueue(unexpected_error, retry=Retry(max=2, interval=[90, 300]))
    with caplog.at_level(logging.INFO, logger="rq"):
        _work(queue)

    errors = [
        r.getMessage()
        for r in caplog.records
        if r.name == "rq.worker" and r.levelno >= logging.ERROR and job.id in r.getMessage()
    ]
    assert len(errors) == 1
    assert "Traceback" in errors[0] and "ValueError: a bug in the adapter" in errors[0]
