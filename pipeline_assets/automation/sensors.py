"""Sensor: new labelled rows -> online model update.

A custom sensor with a storage-id cursor rather than @asset_sensor, which can drop events
when several materialisations land between ticks."""

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from pipeline_assets.automation.jobs import online_update_job

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
