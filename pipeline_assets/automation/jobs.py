"""Jobs the schedules and sensors launch."""

from dagster import AssetSelection, define_asset_job

from pipeline_assets.checks.warehouse import WAREHOUSE_CHECKS

ingestion_job = define_asset_job(
    "ingestion_job",
    selection=AssetSelection.assets(
        "raw_ohlcv", "raw_sentiment", "ml_features_ohlcv", "ml_features_sentiment", "ml_labels"
    ),
    description="Ingest one (day, symbol) partition and compute its features and labels.",
)

inference_job = define_asset_job(
    "inference_job",
    selection=AssetSelection.assets("ml_predictions", "trading_signals", "dashboard_data", "model_performance"),
    description="Predictions, signals, dashboard rows and realised model performance for one day.",
)

retrain_job = define_asset_job(
    "retrain_job",
    selection=AssetSelection.assets("direction_model_xgboost"),
    description="Retrain the XGBoost direction model; promotes it if it beats the champion.",
)

online_update_job = define_asset_job(
    "online_update_job",
    selection=AssetSelection.assets("online_model_river"),
    description="Teach the River online model the labelled rows it has not seen.",
)

warehouse_checks_job = define_asset_job(
    "warehouse_checks_job",
    selection=AssetSelection.checks(*WAREHOUSE_CHECKS),
    description="Scan every stored bar and prediction against the contract and the leakage rule.",
)
