"""The code location: every asset, job, schedule, sensor and resource."""

import os

from dagster import Definitions, EnvVar

from pipeline_assets.assets.features import ml_features_ohlcv, ml_features_sentiment, ml_labels
from pipeline_assets.assets.inference import dashboard_data, ml_predictions, model_performance, trading_signals
from pipeline_assets.assets.ingestion import raw_ohlcv, raw_sentiment
from pipeline_assets.assets.models import direction_model_xgboost, online_model_river
from pipeline_assets.automation.jobs import (
    inference_job,
    ingestion_job,
    online_update_job,
    retrain_job,
    warehouse_checks_job,
)
from pipeline_assets.automation.schedules import (
    daily_retrain_schedule,
    daily_warehouse_checks_schedule,
    hourly_inference_schedule,
    hourly_ingestion_schedule,
)
from pipeline_assets.automation.sensors import labelled_rows_sensor, performance_drift_sensor
from pipeline_assets.checks.warehouse import WAREHOUSE_CHECKS
from pipeline_assets.resources import MarketDataResource, WarehouseResource

ASSETS = [
    raw_ohlcv,
    raw_sentiment,
    ml_features_ohlcv,
    ml_features_sentiment,
    ml_labels,
    direction_model_xgboost,
    online_model_river,
    ml_predictions,
    trading_signals,
    dashboard_data,
    model_performance,
]


def market_resource_from_env() -> MarketDataResource:
    csv_directory = os.environ.get("PIPELINE_CSV_DIR")
    return MarketDataResource(
        ohlcv_source="csv" if csv_directory else "synthetic",
        csv_directory=csv_directory,
        synthetic_seed=int(os.environ.get("PIPELINE_SYNTHETIC_SEED", "7")),
    )


defs = Definitions(
    assets=ASSETS,
    asset_checks=WAREHOUSE_CHECKS,
    jobs=[ingestion_job, inference_job, retrain_job, online_update_job, warehouse_checks_job],
    schedules=[
        hourly_ingestion_schedule,
        hourly_inference_schedule,
        daily_retrain_schedule,
        daily_warehouse_checks_schedule,
    ],
    sensors=[labelled_rows_sensor, performance_drift_sensor],
    resources={
        "warehouse": WarehouseResource(database_url=EnvVar("PIPELINE_DATABASE_URL")),
        "market": market_resource_from_env(),
    },
)
