"""Feature and label tables per (day, symbol); lookback and look-forward read explicit ranges."""

import math
from datetime import timedelta

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

from pipeline_assets.assets._common import frame_metadata, stats_metadata
from pipeline_assets.assets.ingestion import raw_ohlcv, raw_sentiment
from pipeline_assets.features.ohlcv_features import (
    FEATURE_COLUMNS,
    FEATURE_SET_ID,
    LOOKBACK_HOURS,
    compute_ohlcv_features,
)
from pipeline_assets.features.sentiment import LOOKBACK_HOURS as SENTIMENT_LOOKBACK_HOURS
from pipeline_assets.features.sentiment import compute_sentiment_features
from pipeline_assets.ml.labels import HORIZON_HOURS, LABEL_SET_ID, compute_labels
from pipeline_assets.partitions import (
    daily_symbol_key,
    daily_symbol_partitions,
    day_window,
    same_symbol_days,
    split_key,
)
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store.frames import upsert_frame
from pipeline_assets.store.warehouse import read_headlines, read_ohlcv
from pipeline_assets.store.watermarks import covered_until

OHLCV_LOOKBACK_DAYS = math.ceil(LOOKBACK_HOURS / 24)
SENTIMENT_LOOKBACK_DAYS = math.ceil(SENTIMENT_LOOKBACK_HOURS / 24)
LABEL_LOOKFORWARD_DAYS = math.ceil(HORIZON_HOURS / 24)
FULL_LOOKBACK_CHECK = "full_lookback"


@asset(
    partitions_def=daily_symbol_partitions,
    group_name="features",
    kinds={"postgres", "numba"},
    deps=[AssetDep(raw_ohlcv, partition_mapping=same_symbol_days(start_offset=-OHLCV_LOOKBACK_DAYS))],
    metadata={"feature_set_id": FEATURE_SET_ID, "lookback_hours": LOOKBACK_HOURS},
    check_specs=[
        AssetCheckSpec(
            FULL_LOOKBACK_CHECK,
            asset="ml_features_ohlcv",
            description=f"The {LOOKBACK_HOURS} bars before the day were in the store (warns at the start of "
            "history or when earlier raw_ohlcv partitions are missing).",
        )
    ],
)
def ml_features_ohlcv(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Technical indicators (numba) for each bar of the day; each uses only bars opening at or
    before its own time. Bars earlier in the store than the lookback are not read."""
    date_key, symbol = split_key(context.partition_key)
    start, end = day_window(date_key)
    with warehouse.transaction() as conn:
        bars = read_ohlcv(conn, [symbol], start - timedelta(hours=LOOKBACK_HOURS), end)
    in_day = bars["ts"] >= start
    if not in_day.any():
        raise Failure(f"ml_features_ohlcv {symbol} {date_key}: no raw_ohlcv bars for the day; materialise raw_ohlcv")
    warmup_available = int((~in_day).sum())
    features = compute_ohlcv_features(bars.drop(columns=["symbol"]).reset_index(drop=True))
    features = features[features["ts"] >= start].reset_index(drop=True)
    features.insert(0, "symbol", symbol)
    features.insert(2, "feature_set_id", FEATURE_SET_ID)
    incomplete = int(features[list(FEATURE_COLUMNS)].isna().any(axis=1).sum())
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "ml_features_ohlcv", features, ["symbol", "ts"])
    if incomplete:
        context.log.info(f"{symbol} {date_key}: {incomplete} rows in warm-up (only {warmup_available} prior bars)")
    return MaterializeResult(
        metadata={
            **frame_metadata(features),
            **stats_metadata(stats),
            "feature_set_id": FEATURE_SET_ID,
            "lookback_bars_available": MetadataValue.int(warmup_available),
            "rows_in_warmup": MetadataValue.int(incomplete),
        },
        check_results=[
            AssetCheckResult(
                check_name=FULL_LOOKBACK_CHECK,
                passed=warmup_available >= LOOKBACK_HOURS,
                severity=AssetCheckSeverity.WARN,
                metadata={"lookback_bars_available": warmup_available, "lookback_bars_wanted": LOOKBACK_HOURS},
            )
        ],
    )


@asset(
    partitions_def=daily_symbol_partitions,
    group_name="features",
    kinds={"postgres"},
    deps=[AssetDep(raw_sentiment, partition_mapping=same_symbol_days(start_offset=-SENTIMENT_LOOKBACK_DAYS))],
    check_specs=[
        AssetCheckSpec(
            FULL_LOOKBACK_CHECK,
            asset="ml_features_sentiment",
            description="The previous day's headlines were ingested (the 24h window is complete).",
        )
    ],
)
def ml_features_sentiment(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Hourly rolling headline sentiment per symbol, as known when each bar closes."""
    date_key, symbol = split_key(context.partition_key)
    start, day_end = day_window(date_key)
    previous_key = str(daily_symbol_key((start - timedelta(days=1)).strftime("%Y-%m-%d"), symbol))
    with warehouse.transaction() as conn:
        covered = covered_until(conn, "raw_sentiment", str(context.partition_key))
        previous_covered = covered_until(conn, "raw_sentiment", previous_key)
        if covered is None:
            raise Failure(
                f"ml_features_sentiment {symbol} {date_key}: raw_sentiment has not been ingested for this "
                "partition; materialise raw_sentiment first"
            )
        headlines = read_headlines(conn, [symbol], start - timedelta(hours=SENTIMENT_LOOKBACK_HOURS), covered)
    # Row t needs the headlines published before bar t closes (t + 1h): only hours whose close
    # the source has covered are computed, so a partial day never stores "no news" for the future.
    end = min(day_end, covered - timedelta(hours=1) + timedelta(microseconds=1))
    if end <= start:
        raise Failure(f"ml_features_sentiment {symbol} {date_key}: no hour of the day has closed yet")
    features = compute_sentiment_features(headlines, start, end)
    features.insert(0, "symbol", symbol)
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "ml_features_sentiment", features, ["symbol", "ts"])
    full_lookback = previous_covered is not None and previous_covered >= start
    return MaterializeResult(
        metadata={**frame_metadata(features), **stats_metadata(stats), "headlines_covered_until": covered.isoformat()},
        check_results=[
            AssetCheckResult(
                check_name=FULL_LOOKBACK_CHECK,
                passed=full_lookback,
                severity=AssetCheckSeverity.WARN,
                metadata={"previous_day_covered_until": previous_covered.isoformat() if previous_covered else "never"},
            )
        ],
    )


@asset(
    partitions_def=daily_symbol_partitions,
    group_name="labels",
    kinds={"postgres"},
    deps=[AssetDep(raw_ohlcv, partition_mapping=same_symbol_days(end_offset=LABEL_LOOKFORWARD_DAYS))],
    metadata={"label_set_id": LABEL_SET_ID, "horizon_hours": HORIZON_HOURS},
)
def ml_labels(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Forward-return direction labels for bars opening during the day. A label is written only
    once its forward bar exists (matured); the rest are counted and filled by a later run."""
    date_key, symbol = split_key(context.partition_key)
    start, end = day_window(date_key)
    with warehouse.transaction() as conn:
        bars = read_ohlcv(conn, [symbol], start, end + timedelta(hours=HORIZON_HOURS))
    if not (bars["ts"] < end).any():
        raise Failure(f"ml_labels {symbol} {date_key}: no raw_ohlcv bars for the day; materialise raw_ohlcv")
    labels, unmatured = compute_labels(bars, start, end)
    labels.insert(0, "symbol", symbol)
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "ml_labels", labels, ["symbol", "ts"])
    counts = labels["direction"].value_counts().to_dict()
    return MaterializeResult(
        metadata={
            **frame_metadata(labels),
            **stats_metadata(stats),
            # The online-update sensor reads this: rows that are new or changed in this run.
            "new_or_changed_rows": MetadataValue.int(stats.inserted + stats.updated),
            "unmatured_rows": MetadataValue.int(unmatured),
            "class_counts": MetadataValue.json(
                {"SELL": int(counts.get(0, 0)), "HOLD": int(counts.get(1, 0)), "BUY": int(counts.get(2, 0))}
            ),
        }
    )
