"""Jobs the schedules and sensors launch; each selects by group or tag, never by listing assets."""

from dagster import AssetSelection, define_asset_job

from pipeline_assets.checks.warehouse import WAREHOUSE_CHECKS

# Run monitoring (deploy/dagster-postgres.yaml) fails a run still alive past this many seconds.
MAX_RUNTIME = {"dagster/max_runtime": str(2 * 3600)}

ingestion_job = define_asset_job(
    "ingestion_job",
    selection=AssetSelection.groups("ingestion"),
    tags=MAX_RUNTIME,
    description="Ingest the closed hours of the partition's days for every symbol. Features, labels, "
    "predictions, signals and dashboard rows follow by declarative automation.",
)

inference_job = define_asset_job(
    "inference_job",
    selection=AssetSelection.groups("inference", "dashboard", "monitoring"),
    tags=MAX_RUNTIME,
    description="Predictions, signals, dashboard rows and realised model performance (manual re-runs; "
    "automation keeps them current).",
)

retrain_job = define_asset_job(
    "retrain_job",
    selection=AssetSelection.tag("trigger", "retrain"),
    tags=MAX_RUNTIME,
    description="Retrain the batch direction models; promotes a candidate that beats the champion.",
)

challenger_review_job = define_asset_job(
    "challenger_review_job",
    selection=AssetSelection.tag("trigger", "review"),
    tags=MAX_RUNTIME,
    description="Judge every shadow challenger on its realised rows: promote, retire or keep (recorded).",
)

online_update_job = define_asset_job(
    "online_update_job",
    selection=AssetSelection.tag("trigger", "online"),
    tags=MAX_RUNTIME,
    description="Teach the online model the labelled rows it has not seen.",
)

warehouse_checks_job = define_asset_job(
    "warehouse_checks_job",
    selection=AssetSelection.checks(*WAREHOUSE_CHECKS),
    description="Scan every stored bar and prediction against the contract, the leakage rule and freshness.",
)
