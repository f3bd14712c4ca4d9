"""Every skipped tick of our sensors says why, in words a data engineer acts on.

`embeddings_after_downstream_sensor` was a Dagster run-status sensor: a tick with no new run
status showed Dagster's generic "Sensor function returned an empty result" (ops10's leftover),
which does not say whether the sensor is waiting for a downstream run, saw only other jobs'
runs, or left an ingest's run to `onecart ingest`. Real runs on a real (test) instance.
"""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import defs
from pipelines.jobs import CATALOG_DOWNSTREAM_JOB
from pipelines.sensors import (
    EMBEDDINGS_AFTER_DOWNSTREAM_SENSOR,
    INGEST_TRIGGER,
    handled_run_success,
)


@dg.op
def nothing() -> None:
    """A run's one step: the sensor reads the run's job, status and tags only."""


@dg.job(name=CATALOG_DOWNSTREAM_JOB)
def downstream_stand_in() -> None:
    nothing()


@dg.job(name="fx_rates_job")
def other_job() -> None:
    nothing()


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    """One evaluation, as the daemon's: the requests, the skip message and the next cursor."""
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs(), sensor_name=sensor.name
    )
    return sensor.evaluate_tick(context)


def test_every_skip_of_the_embeddings_sensor_says_why() -> None:
    sensor = defs().resolve_sensor_def(EMBEDDINGS_AFTER_DOWNSTREAM_SENSOR)
    with dg.instance_for_test() as instance:
        first = tick(sensor, instance, None)
        assert not first.run_requests
        assert "downstream" in (first.skip_message or "")

        idle = tick(sensor, instance, first.cursor)
        assert not idle.run_requests
        assert idle.skip_message and "empty result" not in idle.skip_message
        assert f"no {CATALOG_DOWNSTREAM_JOB} run succeeded" in idle.skip_message

        other_job.execute_in_process(instance=instance)
        others = tick(sensor, instance, idle.cursor or first.cursor)
        assert not others.run_requests
        assert others.skip_message and f"no {CATALOG_DOWNSTREAM_JOB} run" in others.skip_message
        assert "1 other run" in others.skip_message

        key, value = INGEST_TRIGGER
        ingest_run = downstream_stand_in.execute_in_process(instance=instance, tags={key: value})
        by_ingest = tick(sensor, instance, others.cursor)
        assert not by_ingest.run_requests
        assert by_ingest.skip_message and ingest_run.run_id in by_ingest.skip_message
        assert "onecart ingest" in by_ingest.skip_message

        refresh_run = downstream_stand_in.execute_in_process(instance=instance)
        after_refresh = tick(sensor, instance, by_ingest.cursor)
        assert [request.run_key for request in after_refresh.run_requests or []] == [
            f"embeddings-after-{refresh_run.run_id}"
        ]
        assert tick(sensor, instance, after_refresh.cursor).skip_message


def test_an_instance_upgraded_from_the_run_status_sensor_carries_on_from_its_cursor() -> None:
    """The run-status sensor's cursor (serialized RunStatusSensorCursor) holds the same storage
    id: no run's embeddings are requested twice or lost at the upgrade."""
    old = '{"__class__": "RunStatusSensorCursor", "record_id": 7, "update_timestamp": null}'
    assert handled_run_success(old) == 7
    assert handled_run_success("12") == 12
    assert handled_run_success(None) is None
    assert handled_run_success("not json") is None
