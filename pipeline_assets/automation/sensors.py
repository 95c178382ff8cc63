"""Sensors: new labelled rows -> online model update; performance drift -> retrain.

The label sensor is a custom sensor with a storage-id cursor rather than @asset_sensor,
which can drop events when several materialisations land between ticks."""

from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from pipeline_assets.assets.models import RETRAINED_MODELS, retrain_run_config
from pipeline_assets.automation.alerts import send_alert
from pipeline_assets.automation.jobs import online_update_job, retrain_job
from pipeline_assets.ml.direction_xgb import MODEL_NAME
from pipeline_assets.ml.drift import performance_cusum
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store import models as registry
from pipeline_assets.store.frames import read_frame

LABELS_KEY = AssetKey("ml_labels")
PAGE_SIZE = 500


@sensor(job=online_update_job, minimum_interval_seconds=60)
def labelled_rows_sensor(context: SensorEvaluationContext):
    """Request one online update for all ml_labels materialisations since the cursor that
    brought new or changed rows."""
    after = int(context.cursor) if context.cursor else None
    last_seen = after
    new_rows = 0
    partitions: set[str] = set()
    while True:
        result = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=LABELS_KEY, after_storage_id=last_seen),
            limit=PAGE_SIZE,
            ascending=True,
        )
        for record in result.records:
            last_seen = record.storage_id
            materialization = record.asset_materialization
            value = materialization.metadata.get("new_or_changed_rows") if materialization else None
            changed = int(value.value) if value is not None else 0
            if changed:
                new_rows += changed
                partitions.add(str(materialization.partition))
        if not result.has_more:
            break
    if last_seen == after:
        return SkipReason("no ml_labels materialisation since the last tick")
    if new_rows == 0:
        return SensorResult(skip_reason=SkipReason("labels re-materialised without new rows"), cursor=str(last_seen))
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"online-update|{last_seen}",
                tags={"new_labelled_rows": str(new_rows), "label_partitions": str(len(partitions))},
            )
        ],
        cursor=str(last_seen),
    )


@sensor(job=retrain_job, minimum_interval_seconds=3600)
def performance_drift_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    """Retrain when a CUSUM of the champion's realised daily log loss over its own held-out log
    loss, standardised with overlapping labels counted once per horizon, crosses its threshold
    (ml/drift.py; false-alarm rate measured in benchmarks/bench_drift.py)."""
    with warehouse.transaction() as conn:
        current = registry.champion(conn, MODEL_NAME)
        if current is None:
            return SkipReason(f"no {MODEL_NAME} champion yet")
        history = read_frame(
            conn,
            "SELECT day, matured_rows, log_loss, log_loss_std FROM model_performance WHERE model_id = %s ORDER BY day",
            (current.model_id,),
        )
    decision = performance_cusum(history, float(current.metrics["test"]["log_loss"]))
    if not decision.drifted:
        return SkipReason(f"model {current.model_id}: {decision.reason}")
    last_day = history["day"].max()
    now = datetime.now(UTC)
    send_alert("drift", f"{MODEL_NAME} model {current.model_id}: performance drift, retrain requested", decision.reason)
    return RunRequest(
        run_key=f"drift-retrain|{current.model_id}|{last_day}",
        run_config=retrain_run_config(now, models=RETRAINED_MODELS),
        tags={"trigger": "performance_drift", "drift_reason": decision.reason[:200]},
    )
