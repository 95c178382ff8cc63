"""The code location: every asset, job, schedule, sensor and resource."""

import os

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    in_process_executor,
)

from pipeline_assets.assets.challengers import challenger_review
from pipeline_assets.assets.derivatives import DERIVATIVE_ASSETS, market_aligned
from pipeline_assets.assets.ensemble import direction_model_linear, ml_ensemble_predictions
from pipeline_assets.assets.families import (
    ml_features_cross_asset,
    ml_features_derivatives,
    ml_features_mtf,
    ml_features_ohlcv_ext,
)
from pipeline_assets.assets.features import ml_features_ohlcv, ml_features_sentiment, ml_labels
from pipeline_assets.assets.inference import dashboard_data, ml_predictions, model_performance, trading_signals
from pipeline_assets.assets.ingestion import raw_ohlcv, raw_sentiment
from pipeline_assets.assets.models import (
    direction_model_xgboost,
    online_model_river,
    training_dataset,
    walk_forward_report,
)
from pipeline_assets.assets.pattern_model import direction_model_patterns
from pipeline_assets.assets.patterns import ml_patterns
from pipeline_assets.assets.returns import ml_return_predictions, return_model_ridge
from pipeline_assets.assets.state_vectors import ml_state_vectors, raw_orderbook
from pipeline_assets.automation.alerts import failed_check_alert_sensor, failed_run_alert_sensor
from pipeline_assets.automation.jobs import (
    challenger_review_job,
    inference_job,
    ingestion_job,
    online_update_job,
    retrain_job,
    warehouse_checks_job,
)
from pipeline_assets.automation.run_health import dead_run_sensor
from pipeline_assets.automation.schedules import (
    daily_challenger_review_schedule,
    daily_retrain_schedule,
    daily_warehouse_checks_schedule,
    hourly_ingestion_schedule,
)
from pipeline_assets.automation.sensors import labelled_rows_sensor, performance_drift_sensor
from pipeline_assets.checks.warehouse import WAREHOUSE_CHECKS, warehouse_tables
from pipeline_assets.resources import MarketDataResource, WarehouseResource

# A range run logs one materialisation (and one planned event) per day partition of each asset.
# Dagster writes them one by one unless DAGSTER_EVENT_BATCH_SIZE is set; batched, a 365-day
# feature asset spends 7.4 s instead of 11.6 s on SQLite instance storage and 6.2 s instead of
# 11.4 s on dagster-postgres (3.6 s of it computing; measured 2026-11-25, README). Dagster reads
# the variable at each event, so this default reaches every process that loads the code location
# (run workers, in-process backfills); an explicit setting wins. Events of a batch are stored when
# the step ends: a process killed mid-step loses that step's events, not its (idempotent) writes.
EVENT_BATCH_SIZE = os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")

ASSETS = [
    raw_ohlcv,
    raw_sentiment,
    raw_orderbook,
    *DERIVATIVE_ASSETS,
    ml_features_ohlcv,
    ml_features_sentiment,
    ml_labels,
    ml_state_vectors,
    market_aligned,
    ml_patterns,
    ml_features_ohlcv_ext,
    ml_features_mtf,
    ml_features_cross_asset,
    ml_features_derivatives,
    training_dataset,
    direction_model_xgboost,
    direction_model_linear,
    direction_model_patterns,
    return_model_ridge,
    online_model_river,
    walk_forward_report,
    ml_predictions,
    ml_ensemble_predictions,
    ml_return_predictions,
    trading_signals,
    dashboard_data,
    model_performance,
    challenger_review,
    warehouse_tables,
]
# Daily-partitioned assets in dependency order (the backfill CLI's default selection).
DAILY_ASSET_NAMES = tuple(a.key.to_user_string() for a in ASSETS if getattr(a, "partitions_def", None) is not None)
INGESTION_ASSET_NAMES = (
    "raw_ohlcv",
    "raw_sentiment",
    "raw_orderbook",
    "raw_funding_rates",
    "raw_open_interest",
    "raw_liquidations",
    "raw_long_short_ratio",
    "ml_features_ohlcv",
    "ml_features_sentiment",
    "ml_labels",
    "ml_state_vectors",
    "market_aligned",
    "ml_patterns",
    "ml_features_ohlcv_ext",
    "ml_features_mtf",
    "ml_features_cross_asset",
    "ml_features_derivatives",
)
INFERENCE_ASSET_NAMES = (
    "ml_predictions",
    "ml_ensemble_predictions",
    "ml_return_predictions",
    "trading_signals",
    "dashboard_data",
    "model_performance",
)

# Declarative automation: new or corrected days flow from ingestion to dashboard rows. On by
# default (it only reacts to materialisations); the schedules that ingest are off by default.
automation_sensor = AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)


class ConfigurationError(ValueError):
    """The environment names something that does not exist; raised when the code location loads
    (so `dagster definitions validate` and the UI show it), not in the first run."""


MARKET_SOURCES = ("synthetic", "csv", "exchange")


def market_resource_from_env() -> MarketDataResource:
    """PIPELINE_MARKET_SOURCE = synthetic | csv | exchange (default: csv when PIPELINE_CSV_DIR is
    set, else synthetic); for the exchange PIPELINE_EXCHANGE (a ccxt id, default binance) and
    PIPELINE_MARKET_TYPE (spot | swap)."""
    csv_directory = os.environ.get("PIPELINE_CSV_DIR")
    source = (os.environ.get("PIPELINE_MARKET_SOURCE") or ("csv" if csv_directory else "synthetic")).strip().lower()
    if source not in MARKET_SOURCES:
        raise ConfigurationError(f"PIPELINE_MARKET_SOURCE={source!r}: expected one of {MARKET_SOURCES}")
    if source == "csv" and (csv_directory is None or not os.path.isdir(csv_directory)):
        raise ConfigurationError(
            f"PIPELINE_CSV_DIR={csv_directory!r} is not a directory (unset it for the synthetic market)"
        )
    exchange_id = (os.environ.get("PIPELINE_EXCHANGE") or "binance").strip().lower()
    market_type = (os.environ.get("PIPELINE_MARKET_TYPE") or "spot").strip().lower()
    if source == "exchange":
        import ccxt

        if exchange_id not in ccxt.exchanges:
            raise ConfigurationError(f"PIPELINE_EXCHANGE={exchange_id!r} is not a ccxt exchange id")
        if market_type not in ("spot", "swap"):
            raise ConfigurationError(f"PIPELINE_MARKET_TYPE={market_type!r}: expected spot or swap")
    headline_path = os.environ.get("PIPELINE_HEADLINES_PATH")
    if headline_path and not os.path.exists(headline_path):
        raise ConfigurationError(f"PIPELINE_HEADLINES_PATH={headline_path!r} does not exist")
    return MarketDataResource(
        headline_path=headline_path or None,
        ohlcv_source=source,
        csv_directory=csv_directory if source == "csv" else None,
        synthetic_seed=int(os.environ.get("PIPELINE_SYNTHETIC_SEED", "7")),
        exchange_id=exchange_id,
        market_type=market_type if market_type in ("spot", "swap") else "spot",
    )


defs = Definitions(
    assets=ASSETS,
    asset_checks=WAREHOUSE_CHECKS,
    jobs=[ingestion_job, inference_job, retrain_job, online_update_job, warehouse_checks_job, challenger_review_job],
    schedules=[
        hourly_ingestion_schedule,
        daily_retrain_schedule,
        daily_challenger_review_schedule,
        daily_warehouse_checks_schedule,
    ],
    sensors=[
        labelled_rows_sensor,
        performance_drift_sensor,
        automation_sensor,
        dead_run_sensor,
        failed_run_alert_sensor,
        failed_check_alert_sensor,
    ],
    # Steps of a run execute in the run's process: every asset is vectorised over the run's whole
    # range, so a subprocess per step (about 4 s of imports each) would cost more than it computes.
    executor=in_process_executor,
    resources={
        "warehouse": WarehouseResource(database_url=EnvVar("PIPELINE_DATABASE_URL")),
        "market": market_resource_from_env(),
    },
)
