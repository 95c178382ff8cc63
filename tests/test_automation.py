from __future__ import annotations

from datetime import UTC, datetime

from dagster import (
    AssetKey,
    DagsterInstance,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
)
from dagster_helpers import run_assets

from pipeline_assets.automation.schedules import (
    daily_retrain_schedule,
    daily_warehouse_checks_schedule,
    hourly_ingestion_schedule,
)
from pipeline_assets.automation.sensors import labelled_rows_sensor
from pipeline_assets.definitions import defs
from pipeline_assets.partitions import SYMBOLS


def _requests(schedule, when):
    context = build_schedule_context(scheduled_execution_time=when)
    result = schedule(context)
    return list(result) if not hasattr(result, "run_key") else [result]


def test_hourly_ingestion_requests_today_and_catches_up_yesterday_after_midnight():
    late = _requests(hourly_ingestion_schedule, datetime(2024, 3, 5, 14, 5, tzinfo=UTC))
    assert [r.partition_key for r in late] == ["2024-03-05"]  # one run, every symbol inside
    early = _requests(hourly_ingestion_schedule, datetime(2024, 3, 5, 2, 5, tzinfo=UTC))
    assert [r.partition_key for r in early] == ["2024-03-04", "2024-03-05"]
    assert len({r.run_key for r in early}) == len(early)
    midnight = _requests(hourly_ingestion_schedule, datetime(2024, 3, 5, 0, 5, tzinfo=UTC))
    assert [r.partition_key for r in midnight] == ["2024-03-04"]
    # the keys are valid partitions of the job the schedule targets
    job_keys = set(
        defs.resolve_job_def("ingestion_job").partitions_def.get_partition_keys(
            current_time=datetime(2024, 3, 6, tzinfo=UTC)
        )
    )
    assert {r.partition_key for r in early} <= job_keys


def test_retrain_and_check_schedules():
    (retrain,) = _requests(daily_retrain_schedule, datetime(2024, 3, 5, 0, 30, tzinfo=UTC))
    assert retrain.run_config["ops"]["training_dataset"]["config"]["train_end"] == "2024-03-05T00:30:00+00:00"
    (checks,) = _requests(daily_warehouse_checks_schedule, datetime(2024, 3, 5, 2, 15, tzinfo=UTC))
    assert checks.run_key == "checks|2024-03-05"
    assert daily_warehouse_checks_schedule.job_name == "warehouse_checks_job"


def test_jobs_select_by_group_and_tag():
    ingestion = {k.to_user_string() for k in defs.resolve_job_def("ingestion_job").asset_layer.selected_asset_keys}
    assert ingestion == {
        "raw_ohlcv",
        "raw_sentiment",
        "raw_orderbook",
        "raw_funding_rates",
        "raw_open_interest",
        "raw_liquidations",
        "raw_long_short_ratio",
    }
    retrain = {k.to_user_string() for k in defs.resolve_job_def("retrain_job").asset_layer.selected_asset_keys}
    assert retrain == {
        "training_dataset",
        "direction_model_xgboost",
        "direction_model_linear",
        "direction_model_patterns",
        "return_model_ridge",
    }


def test_sensor_cursor_sees_every_new_label_materialisation_once(warehouse_url):
    instance = DagsterInstance.ephemeral()
    context = build_sensor_context(instance=instance)
    assert isinstance(labelled_rows_sensor(context), SkipReason)

    run_assets(["raw_ohlcv"], warehouse_url, instance=instance, partition_range=("2024-03-05", "2024-03-06"))
    # one range run materialises two partitions; each event carries its own day's count
    run_assets(["ml_labels"], warehouse_url, instance=instance, partition_range=("2024-03-05", "2024-03-06"))

    first = labelled_rows_sensor(build_sensor_context(instance=instance))
    assert len(first.run_requests) == 1
    n = len(SYMBOLS)
    assert first.run_requests[0].tags["new_labelled_rows"] == str((24 + 20) * n)  # 03-06 lacks 03-07's bars
    assert first.run_requests[0].tags["label_partitions"] == "2"
    cursor = first.cursor

    # no new materialisation: skipped, cursor unchanged
    again = labelled_rows_sensor(build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(again, SkipReason)

    # re-materialised with identical rows: no run, but the cursor moves past it
    run_assets(["ml_labels"], warehouse_url, "2024-03-05", instance)
    unchanged = labelled_rows_sensor(build_sensor_context(instance=instance, cursor=cursor))
    assert not unchanged.run_requests and int(unchanged.cursor) > int(cursor)

    # new rows after the cursor: exactly one request covering them
    run_assets(["raw_ohlcv"], warehouse_url, "2024-03-07", instance)
    run_assets(["ml_labels"], warehouse_url, "2024-03-06", instance)
    newer = labelled_rows_sensor(build_sensor_context(instance=instance, cursor=unchanged.cursor))
    assert len(newer.run_requests) == 1 and newer.run_requests[0].tags["new_labelled_rows"] == str(4 * n)
    assert newer.run_requests[0].run_key != first.run_requests[0].run_key


def _requested(result, asset: str) -> set[str]:
    return set(result.get_requested_partitions(AssetKey(asset)))


def test_automation_follows_a_corrected_old_day_through_its_lookback(warehouse_url):
    """Re-materialising raw_ohlcv for an old day requests the features of that day and of the days
    whose lookback covers it, and the labels of the day before (look-forward) — not only the latest
    partition, as AutomationCondition.eager() would."""
    instance = DagsterInstance.ephemeral()
    days = ("2024-03-01", "2024-03-10")
    run_assets(["raw_ohlcv", "ml_features_ohlcv", "ml_labels"], warehouse_url, instance=instance, partition_range=days)
    when = datetime(2024, 3, 11, 6, tzinfo=UTC)
    first = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=when)
    assert first.total_requested == 0  # nothing changed since the graph was built

    run_assets(["raw_ohlcv"], warehouse_url, "2024-03-04", instance)  # a correction of an old day
    second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor, evaluation_time=when)
    features = _requested(second, "ml_features_ohlcv")
    assert features == {"2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"}
    assert _requested(second, "ml_labels") == {"2024-03-03", "2024-03-04"}
    # predictions need a model first: none was trained, so nothing downstream is requested
    assert _requested(second, "ml_predictions") == set()
