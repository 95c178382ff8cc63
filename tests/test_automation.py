from __future__ import annotations

from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    MultiPartitionKey,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
)
from dagster_helpers import run_assets

from pipeline_assets.automation.schedules import (
    daily_retrain_schedule,
    daily_warehouse_checks_schedule,
    hourly_inference_schedule,
    hourly_ingestion_schedule,
)
from pipeline_assets.automation.sensors import labelled_rows_sensor
from pipeline_assets.definitions import defs
from pipeline_assets.partitions import SYMBOLS, daily_symbol_key


def _requests(schedule, when):
    context = build_schedule_context(scheduled_execution_time=when)
    result = schedule(context)
    return list(result) if not hasattr(result, "run_key") else [result]


def test_hourly_ingestion_requests_today_and_catches_up_yesterday_after_midnight():
    late = _requests(hourly_ingestion_schedule, datetime(2024, 3, 5, 14, 5, tzinfo=UTC))
    assert [r.partition_key for r in late] == [daily_symbol_key("2024-03-05", s) for s in SYMBOLS]
    assert all(isinstance(r.partition_key, MultiPartitionKey) for r in late)
    early = _requests(hourly_ingestion_schedule, datetime(2024, 3, 5, 2, 5, tzinfo=UTC))
    assert {r.partition_key.keys_by_dimension["date"] for r in early} == {"2024-03-04", "2024-03-05"}
    assert len(early) == 2 * len(SYMBOLS)
    assert len({r.run_key for r in early}) == len(early)
    midnight = _requests(hourly_ingestion_schedule, datetime(2024, 3, 5, 0, 5, tzinfo=UTC))
    assert {r.partition_key.keys_by_dimension["date"] for r in midnight} == {"2024-03-04"}
    # the keys are valid partitions of the job the schedule targets
    job_keys = set(
        defs.resolve_job_def("ingestion_job").partitions_def.get_partition_keys(
            current_time=datetime(2024, 3, 6, tzinfo=UTC)
        )
    )
    assert {str(r.partition_key) for r in early} <= job_keys


def test_inference_and_retrain_schedules():
    assert [r.partition_key for r in _requests(hourly_inference_schedule, datetime(2024, 3, 5, 9, 20, tzinfo=UTC))] == [
        "2024-03-05"
    ]
    (retrain,) = _requests(daily_retrain_schedule, datetime(2024, 3, 5, 0, 30, tzinfo=UTC))
    assert retrain.run_config["ops"]["direction_model_xgboost"]["config"]["train_end"] == "2024-03-05T00:30:00+00:00"
    (checks,) = _requests(daily_warehouse_checks_schedule, datetime(2024, 3, 5, 2, 15, tzinfo=UTC))
    assert checks.run_key == "checks|2024-03-05"
    assert daily_warehouse_checks_schedule.job_name == "warehouse_checks_job"


def test_sensor_cursor_sees_every_new_label_materialisation_once(warehouse_url):
    instance = DagsterInstance.ephemeral()
    context = build_sensor_context(instance=instance)
    assert isinstance(labelled_rows_sensor(context), SkipReason)

    for day in ("2024-03-05", "2024-03-06"):
        run_assets(["raw_ohlcv"], warehouse_url, daily_symbol_key(day, "BTCUSDT"), instance)
    run_assets(["ml_labels"], warehouse_url, daily_symbol_key("2024-03-05", "BTCUSDT"), instance)
    run_assets(["ml_labels"], warehouse_url, daily_symbol_key("2024-03-06", "BTCUSDT"), instance)

    first = labelled_rows_sensor(build_sensor_context(instance=instance))
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["new_labelled_rows"] == str(24 + 20)  # 06-06 lacks 03-07's bars
    assert first.run_requests[0].tags["label_partitions"] == "2"
    cursor = first.cursor

    # no new materialisation: skipped, cursor unchanged
    again = labelled_rows_sensor(build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(again, SkipReason)

    # re-materialised with identical rows: no run, but the cursor moves past it
    run_assets(["ml_labels"], warehouse_url, daily_symbol_key("2024-03-05", "BTCUSDT"), instance)
    unchanged = labelled_rows_sensor(build_sensor_context(instance=instance, cursor=cursor))
    assert not unchanged.run_requests and int(unchanged.cursor) > int(cursor)

    # new rows after the cursor: exactly one request covering them
    run_assets(["raw_ohlcv"], warehouse_url, daily_symbol_key("2024-03-07", "BTCUSDT"), instance)
    run_assets(["ml_labels"], warehouse_url, daily_symbol_key("2024-03-06", "BTCUSDT"), instance)
    newer = labelled_rows_sensor(build_sensor_context(instance=instance, cursor=unchanged.cursor))
    assert len(newer.run_requests) == 1 and newer.run_requests[0].tags["new_labelled_rows"] == "4"
    assert newer.run_requests[0].run_key != first.run_requests[0].run_key
