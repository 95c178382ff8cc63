"""Cross-symbol daily assets: predictions, trading signals and dashboard rows."""

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipeline_assets.assets._common import closed_bars_end, frame_metadata, stats_metadata
from pipeline_assets.assets.features import ml_features_ohlcv, ml_features_sentiment, ml_labels
from pipeline_assets.assets.ingestion import raw_ohlcv
from pipeline_assets.assets.models import direction_model_xgboost
from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml.dataset import MODEL_FEATURE_SET_ID, DatasetError, split_complete_rows
from pipeline_assets.ml.performance import evaluate_predictions
from pipeline_assets.ml.signals import SIGNAL_RULE_ID, signals_from_probabilities, strategy_returns
from pipeline_assets.partitions import SYMBOLS, all_symbols_of_day, daily_partitions, day_window
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store import models as registry
from pipeline_assets.store.frames import read_frame, upsert_frame
from pipeline_assets.store.warehouse import (
    read_labels,
    read_leaking_predictions,
    read_model_inputs,
    read_ohlcv,
    read_predictions,
    read_signals,
)

LEAKAGE_CHECK = "model_trained_before_prediction_time"
PROBABILITY_CHECK = "probabilities_sum_to_one"


def _require_all_symbols(frame: pd.DataFrame, what: str, date_key: str) -> None:
    missing = sorted(set(SYMBOLS) - set(frame["symbol"].unique()))
    if missing:
        raise Failure(f"{what} {date_key}: no rows for symbol(s) {missing}; materialise their partitions first")


@asset(
    partitions_def=daily_partitions,
    group_name="inference",
    kinds={"xgboost", "postgres"},
    deps=[
        AssetDep(ml_features_ohlcv, partition_mapping=all_symbols_of_day),
        AssetDep(ml_features_sentiment, partition_mapping=all_symbols_of_day),
        direction_model_xgboost,
    ],
    check_specs=[
        AssetCheckSpec(
            LEAKAGE_CHECK,
            asset="ml_predictions",
            blocking=True,
            description="Every prediction comes from a model whose training labels all matured "
            "before the predicted hour.",
        ),
        AssetCheckSpec(
            PROBABILITY_CHECK,
            asset="ml_predictions",
            blocking=True,
            description="Class probabilities are in [0, 1] and sum to 1.",
        ),
    ],
)
def ml_predictions(context: AssetExecutionContext, warehouse: WarehouseResource):
    """SELL/HOLD/BUY probabilities for every symbol and hour of the day, from the newest promoted
    XGBoost model whose training labels had all matured before the day began (point-in-time)."""
    date_key = context.partition_key
    start, day_end = day_window(date_key)
    end = closed_bars_end(day_end)
    with warehouse.transaction() as conn:
        inputs = read_model_inputs(conn, SYMBOLS, start, end)
        _require_all_symbols(inputs, "ml_predictions", date_key)
        try:
            record = registry.model_for_prediction(conn, direction_xgb.MODEL_NAME, start)
        except registry.ModelNotFoundError as exc:
            raise Failure(f"ml_predictions {date_key}: {exc}") from exc
        if record.feature_set_id != MODEL_FEATURE_SET_ID:
            raise Failure(
                f"ml_predictions {date_key}: model {record.model_id} uses feature set {record.feature_set_id}, "
                f"features are {MODEL_FEATURE_SET_ID}; retrain direction_model_xgboost"
            )
        _, artifact = registry.load_artifact(conn, record.model_id)
    model = direction_xgb.deserialize(artifact)
    try:
        complete, incomplete = split_complete_rows(inputs)
    except DatasetError as exc:
        raise Failure(f"ml_predictions {date_key}: {exc}") from exc
    if complete.empty:
        raise Failure(f"ml_predictions {date_key}: no row has complete features ({len(incomplete)} incomplete)")
    proba = direction_xgb.predict_proba(model, complete)
    predictions = pd.DataFrame(
        {
            "symbol": complete["symbol"],
            "ts": complete["ts"],
            "model_name": direction_xgb.MODEL_NAME,
            "model_id": record.model_id,
            "prob_sell": proba[:, 0],
            "prob_hold": proba[:, 1],
            "prob_buy": proba[:, 2],
            "predicted_direction": proba.argmax(axis=1).astype(np.int16),
        }
    )
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "ml_predictions", predictions, ["symbol", "ts", "model_name"])
        leaks = read_leaking_predictions(conn, start, day_end)
        stored = read_predictions(conn, SYMBOLS, start, day_end, direction_xgb.MODEL_NAME)
    total = stored[["prob_sell", "prob_hold", "prob_buy"]].sum(axis=1)
    bad_proba = stored[
        ((total - 1).abs() > 1e-5)
        | (stored[["prob_sell", "prob_hold", "prob_buy"]] < 0).any(axis=1)
        | (stored[["prob_sell", "prob_hold", "prob_buy"]] > 1).any(axis=1)
    ]
    checks = [
        AssetCheckResult(
            asset_key="ml_predictions",
            check_name=LEAKAGE_CHECK,
            passed=leaks.empty,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "violations": len(leaks),
                "model_id": record.model_id,
                "model_labels_matured_until": record.labels_matured_until.isoformat(),
                **(
                    {"first_violation": MetadataValue.md(leaks.head(10).to_markdown(index=False))} if len(leaks) else {}
                ),
            },
        ),
        AssetCheckResult(
            asset_key="ml_predictions",
            check_name=PROBABILITY_CHECK,
            passed=bad_proba.empty,
            severity=AssetCheckSeverity.ERROR,
            metadata={"violations": len(bad_proba)},
        ),
    ]
    return MaterializeResult(
        metadata={
            **frame_metadata(predictions),
            **stats_metadata(stats),
            "model_id": MetadataValue.int(record.model_id),
            "model_version": MetadataValue.int(record.version),
            "rows_without_complete_features": MetadataValue.int(len(incomplete)),
            "predicted_direction_counts": MetadataValue.json(
                {str(k): int(v) for k, v in predictions["predicted_direction"].value_counts().items()}
            ),
        },
        check_results=checks,
    )


@asset(
    partitions_def=daily_partitions,
    group_name="inference",
    kinds={"postgres"},
    deps=[ml_predictions],
    metadata={"signal_rule_id": SIGNAL_RULE_ID},
)
def trading_signals(context: AssetExecutionContext, warehouse: WarehouseResource):
    """BUY / SELL / HOLD per symbol and hour from the day's direction probabilities."""
    start, end = day_window(context.partition_key)
    with warehouse.transaction() as conn:
        predictions = read_predictions(conn, SYMBOLS, start, end, direction_xgb.MODEL_NAME)
    if predictions.empty:
        raise Failure(f"trading_signals {context.partition_key}: no predictions; materialise ml_predictions")
    rule = signals_from_probabilities(predictions["prob_sell"].to_numpy(), predictions["prob_buy"].to_numpy())
    signals = pd.concat([predictions[["symbol", "ts", "model_id"]], rule], axis=1).assign(signal_rule_id=SIGNAL_RULE_ID)
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "trading_signals", signals, ["symbol", "ts"])
    return MaterializeResult(
        metadata={
            **frame_metadata(signals),
            **stats_metadata(stats),
            "signal_counts": MetadataValue.json({k: int(v) for k, v in signals["signal"].value_counts().items()}),
        }
    )


@asset(
    partitions_def=daily_partitions,
    group_name="dashboard",
    kinds={"postgres"},
    deps=[
        trading_signals,
        AssetDep(raw_ohlcv, partition_mapping=all_symbols_of_day),
        AssetDep(ml_labels, partition_mapping=all_symbols_of_day),
    ],
)
def dashboard_data(context: AssetExecutionContext, warehouse: WarehouseResource):
    """One row per symbol and hour: price, signal, probabilities and, once the label has matured,
    the realised forward return and what the signal earned."""
    start, end = day_window(context.partition_key)
    with warehouse.transaction() as conn:
        signals = read_signals(conn, SYMBOLS, start, end)
        bars = read_ohlcv(conn, SYMBOLS, start, end)
        labels = read_labels(conn, SYMBOLS, start, end)
        predictions = read_predictions(conn, SYMBOLS, start, end, direction_xgb.MODEL_NAME)
    if signals.empty:
        raise Failure(f"dashboard_data {context.partition_key}: no trading signals; materialise trading_signals")
    rows = (
        signals.merge(predictions[["symbol", "ts", "prob_buy", "prob_sell"]], on=["symbol", "ts"], how="left")
        .merge(bars[["symbol", "ts", "close"]], on=["symbol", "ts"], how="left")
        .merge(labels[["symbol", "ts", "forward_return"]], on=["symbol", "ts"], how="left")
    )
    no_bar = rows["close"].isna()
    if no_bar.any():
        first = rows.loc[no_bar].iloc[0]
        raise Failure(f"dashboard_data: signal without a stored bar for {first['symbol']} at {first['ts']}")
    rows["strategy_return"] = strategy_returns(rows["position"].to_numpy(), rows["forward_return"].to_numpy())
    columns = [
        "symbol",
        "ts",
        "close",
        "signal",
        "position",
        "prob_buy",
        "prob_sell",
        "forward_return",
        "strategy_return",
        "model_id",
    ]
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "dashboard_data", rows[columns], ["symbol", "ts"])
    traded = rows[(rows["position"] != 0) & rows["forward_return"].notna()]
    return MaterializeResult(
        metadata={
            **frame_metadata(rows[columns]),
            **stats_metadata(stats),
            "traded_hours_matured": MetadataValue.int(len(traded)),
            "hit_rate": MetadataValue.float(float((traded["strategy_return"] > 0).mean()) if len(traded) else 0.0),
            "sum_strategy_return": MetadataValue.float(float(traded["strategy_return"].sum())),
        }
    )


@asset(
    partitions_def=daily_partitions,
    group_name="monitoring",
    kinds={"postgres"},
    deps=[ml_predictions, AssetDep(ml_labels, partition_mapping=all_symbols_of_day)],
)
def model_performance(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Realised accuracy and log loss of the day's predictions whose labels have matured, per model,
    next to the model's own held-out log loss (the drift sensor compares the two)."""
    day = context.partition_key
    start, end = day_window(day)
    with warehouse.transaction() as conn:
        frame = read_frame(
            conn,
            """
            SELECT p.model_id, p.prob_sell, p.prob_hold, p.prob_buy, p.predicted_direction, l.direction
            FROM ml_predictions p JOIN ml_labels l USING (symbol, ts)
            WHERE p.ts >= %s AND p.ts < %s AND p.model_name = %s
            """,
            (start, end, direction_xgb.MODEL_NAME),
        )
        (predicted,) = conn.execute(
            "SELECT count(*) FROM ml_predictions WHERE ts >= %s AND ts < %s AND model_name = %s",
            (start, end, direction_xgb.MODEL_NAME),
        ).fetchone()
        if frame.empty:
            return MaterializeResult(metadata={"predictions": predicted, "matured_rows": 0})
        rows = []
        for model_id, group in frame.groupby("model_id"):
            record = registry.get_model(conn, int(model_id))
            metrics = evaluate_predictions(group)
            rows.append(
                {
                    "day": start.date(),
                    "model_name": record.model_name,
                    "model_id": int(model_id),
                    **metrics,
                    "reference_log_loss": float(record.metrics["test"]["log_loss"]),
                }
            )
        performance = pd.DataFrame(rows)
        stats = upsert_frame(conn, "model_performance", performance, ["day", "model_name", "model_id"])
    return MaterializeResult(
        metadata={
            **stats_metadata(stats),
            "predictions": MetadataValue.int(predicted),
            "matured_rows": MetadataValue.int(int(performance["matured_rows"].sum())),
            "accuracy": MetadataValue.float(float(performance["accuracy"].iloc[0])),
            "log_loss": MetadataValue.float(float(performance["log_loss"].iloc[0])),
            "reference_log_loss": MetadataValue.float(float(performance["reference_log_loss"].iloc[0])),
            "table": MetadataValue.md(performance.to_markdown(index=False, floatfmt=".4f")),
        }
    )
