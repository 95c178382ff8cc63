"""Feature and label tables for every symbol, one or many days per run; lookback and
look-forward read explicit ranges from the store, so a range run and one-day runs see the same
history for every row (batch invariance; see features/ohlcv_features.py for the warm-up rule)."""

import math
from datetime import timedelta

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
)

from pipeline_assets.assets._common import (
    add_day_metadata,
    daily_asset,
    frame_metadata,
    missing_symbols_per_day,
    rows_per_day,
    run_metadata,
    run_window,
    stats_metadata,
    symbol_day_table,
    transient_only,
)
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
    SYMBOLS,
    day_window,
    days_window,
    symbol_day_key,
)
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store.frames import upsert_frame
from pipeline_assets.store.warehouse import read_headlines, read_ohlcv
from pipeline_assets.store.watermarks import covered_until_many

OHLCV_LOOKBACK_DAYS = math.ceil(LOOKBACK_HOURS / 24)
SENTIMENT_LOOKBACK_DAYS = math.ceil(SENTIMENT_LOOKBACK_HOURS / 24)
LABEL_LOOKFORWARD_DAYS = math.ceil(HORIZON_HOURS / 24)
FULL_LOOKBACK_CHECK = "full_lookback"


def _features_day_by_day(bars: pd.DataFrame, window, symbol: str) -> pd.DataFrame:
    """Each day's rows computed from exactly the bars a one-day run of that day reads (the day
    plus LOOKBACK_HOURS before it), so a range run stores the same values as one-day runs even for
    recursive indicators (EMA, Wilder RSI/ATR, MACD) whose value depends on where they start."""
    ts = bars["ts"].to_numpy(dtype="datetime64[us]")
    out = []
    for day in window.days:
        day_start = np.datetime64(day_window(day)[0].replace(tzinfo=None), "us")
        lo = np.searchsorted(ts, day_start - np.timedelta64(LOOKBACK_HOURS, "h"), side="left")
        first = np.searchsorted(ts, day_start, side="left")
        hi = np.searchsorted(ts, day_start + np.timedelta64(1, "D"), side="left")
        if hi == first:
            continue  # no bar that day (reported as a gap by the caller)
        features = compute_ohlcv_features(bars.iloc[lo:hi].reset_index(drop=True), symbol=symbol)
        out.append(features.iloc[first - lo :])
    return pd.concat(out, ignore_index=True)


@daily_asset(
    group_name="features",
    kinds={"postgres", "numba"},
    tags={"layer": "features", "family": "ohlcv"},
    deps=[AssetDep(raw_ohlcv, partition_mapping=days_window(start_offset=-OHLCV_LOOKBACK_DAYS))],
    metadata={"feature_set_id": FEATURE_SET_ID, "lookback_hours": LOOKBACK_HOURS},
    check_specs=[
        AssetCheckSpec(
            FULL_LOOKBACK_CHECK,
            asset="ml_features_ohlcv",
            description=f"The {LOOKBACK_HOURS} bars before the run's first day were in the store for every "
            "symbol (warns at the start of history or when earlier raw_ohlcv partitions are missing).",
        )
    ],
)
@transient_only
def ml_features_ohlcv(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Technical indicators (numba) for each bar of the run's days and every symbol; each uses only
    bars opening at or before its own time, and at most the declared lookback before it."""
    window = run_window(context)
    with warehouse.transaction() as conn:
        bars = read_ohlcv(conn, list(SYMBOLS), window.start - timedelta(hours=LOOKBACK_HOURS), window.end)
    in_range = bars["ts"] >= window.start
    if not in_range.any():
        raise Failure(
            f"ml_features_ohlcv {window.label}: no raw_ohlcv bars for any symbol; materialise raw_ohlcv",
            allow_retries=False,
        )
    frames, warmup = [], {}
    for symbol, group in bars.groupby("symbol", sort=True):
        group = group.drop(columns=["symbol"]).reset_index(drop=True)
        warmup[str(symbol)] = int((group["ts"] < window.start).sum())
        if not (group["ts"] >= window.start).any():
            continue
        features = _features_day_by_day(group, window, str(symbol))
        features.insert(0, "symbol", symbol)
        frames.append(features)
    features = pd.concat(frames, ignore_index=True)
    features.insert(2, "feature_set_id", FEATURE_SET_ID)
    incomplete = int(features[list(FEATURE_COLUMNS)].isna().any(axis=1).sum())
    with warehouse.transaction() as conn:
        stats = upsert_frame(
            conn, "ml_features_ohlcv", features, ["symbol", "ts", "feature_set_id"], changed_by_day="ts"
        )
    missing = missing_symbols_per_day(features, window.days, SYMBOLS)
    short = {s: n for s, n in warmup.items() if n < LOOKBACK_HOURS}
    short.update({s: 0 for s in SYMBOLS if s not in warmup})
    day_rows = rows_per_day(features, window.days)
    add_day_metadata(
        context,
        {
            day: {
                "rows": MetadataValue.int(day_rows[day]),
                "rows_changed": MetadataValue.int(stats.changed_per_day.get(day, 0)),
                "symbols_without_bars": MetadataValue.json(missing[day]),
            }
            for day in window.days
        },
    )
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(features),
                **stats_metadata(stats),
                "feature_set_id": FEATURE_SET_ID,
                "days_in_run": MetadataValue.int(len(window.days)),
                "rows_in_warmup": MetadataValue.int(incomplete),
                "symbol_days_without_bars": symbol_day_table(missing),
            },
        ),
        check_results=[
            AssetCheckResult(
                check_name=FULL_LOOKBACK_CHECK,
                passed=not short,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "lookback_bars_wanted": LOOKBACK_HOURS,
                    "symbols_with_short_lookback": MetadataValue.json(short),
                },
            )
        ],
    )


@daily_asset(
    group_name="features",
    tags={"layer": "features", "family": "sentiment"},
    deps=[AssetDep(raw_sentiment, partition_mapping=days_window(start_offset=-SENTIMENT_LOOKBACK_DAYS))],
    check_specs=[
        AssetCheckSpec(
            FULL_LOOKBACK_CHECK,
            asset="ml_features_sentiment",
            description="The day before the run's first day had its headlines ingested (the 24h window is "
            "complete) for every symbol.",
        )
    ],
)
@transient_only
def ml_features_sentiment(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Hourly rolling headline sentiment per symbol, as known when each bar closes. Only hours
    whose close the headline source has covered are computed, so a partial day never stores
    "no news" for the future; days whose headlines were never ingested are reported."""
    window = run_window(context)
    previous_day = (window.start - timedelta(days=1)).strftime("%Y-%m-%d")
    keys = [symbol_day_key(d, s) for d in (previous_day, *window.days) for s in SYMBOLS]
    with warehouse.transaction() as conn:
        covered = covered_until_many(conn, "raw_sentiment", keys)
        in_window = {k: v for k, v in covered.items() if not k.startswith(previous_day)}
        if not in_window:
            raise Failure(
                f"ml_features_sentiment {window.label}: raw_sentiment has not been ingested for any day and "
                "symbol of this range; materialise raw_sentiment first",
                allow_retries=False,
            )
        last_covered = max(in_window.values())
        headlines = read_headlines(
            conn, list(SYMBOLS), window.start - timedelta(hours=SENTIMENT_LOOKBACK_HOURS), last_covered
        )
    hour = pd.Timedelta(hours=1)
    frames = []
    for symbol in SYMBOLS:
        own = headlines[headlines["symbol"] == symbol]
        features = compute_sentiment_features(own, window.start, window.end)
        day = features["ts"].dt.strftime("%Y-%m-%d")
        limit = day.map(lambda d, s=symbol: covered.get(symbol_day_key(d, s)))
        limit = pd.to_datetime(limit, utc=True)
        keep = limit.notna() & (features["ts"] + hour <= limit)
        features = features[keep.to_numpy()].reset_index(drop=True)
        features.insert(0, "symbol", symbol)
        frames.append(features)
    features = pd.concat(frames, ignore_index=True)
    if features.empty:
        raise Failure(f"ml_features_sentiment {window.label}: no hour of the range has closed yet", allow_retries=False)
    with warehouse.transaction() as conn:
        stats = upsert_frame(
            conn, "ml_features_sentiment", features, ["symbol", "ts", "feature_set_id"], changed_by_day="ts"
        )
    not_ingested = {d: [s for s in SYMBOLS if symbol_day_key(d, s) not in covered] for d in window.days}
    previous_missing = [s for s in SYMBOLS if covered.get(symbol_day_key(previous_day, s)) is None]
    day_rows = rows_per_day(features, window.days)
    add_day_metadata(
        context,
        {
            day: {
                "rows": MetadataValue.int(day_rows[day]),
                "symbols_not_ingested": MetadataValue.json(not_ingested[day]),
            }
            for day in window.days
        },
    )
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(features),
                **stats_metadata(stats),
                "days_in_run": MetadataValue.int(len(window.days)),
                "headlines_covered_until": last_covered.isoformat(),
                "symbol_days_not_ingested": symbol_day_table(not_ingested),
            },
        ),
        check_results=[
            AssetCheckResult(
                check_name=FULL_LOOKBACK_CHECK,
                passed=not previous_missing,
                severity=AssetCheckSeverity.WARN,
                metadata={"previous_day": previous_day, "symbols_without_previous_day": previous_missing},
            )
        ],
    )


@daily_asset(
    group_name="labels",
    tags={"layer": "labels"},
    deps=[AssetDep(raw_ohlcv, partition_mapping=days_window(end_offset=LABEL_LOOKFORWARD_DAYS))],
    metadata={"label_set_id": LABEL_SET_ID, "horizon_hours": HORIZON_HOURS},
)
@transient_only
def ml_labels(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Forward-return direction labels for bars opening during the run's days. A label is written
    only once its forward bar exists (matured); the rest are counted and filled by a later run."""
    window = run_window(context)
    with warehouse.transaction() as conn:
        bars = read_ohlcv(conn, list(SYMBOLS), window.start, window.end + timedelta(hours=HORIZON_HOURS))
    if not (bars["ts"] < window.end).any():
        raise Failure(
            f"ml_labels {window.label}: no raw_ohlcv bars for any symbol; materialise raw_ohlcv", allow_retries=False
        )
    frames, unmatured = [], 0
    for symbol, group in bars.groupby("symbol", sort=True):
        labels, waiting = compute_labels(group.reset_index(drop=True), window.start, window.end)
        labels.insert(0, "symbol", symbol)
        frames.append(labels)
        unmatured += waiting
    labels = pd.concat(frames, ignore_index=True)
    with warehouse.transaction() as conn:
        stats = upsert_frame(conn, "ml_labels", labels, ["symbol", "ts"], changed_by_day="ts")
    counts = labels["direction"].value_counts().to_dict()
    day_rows = rows_per_day(labels, window.days)
    # The online-update sensor sums this per materialisation event: each day's own count, so a
    # range run never counts a row once per partition.
    add_day_metadata(
        context,
        {
            day: {
                "rows": MetadataValue.int(day_rows[day]),
                "new_or_changed_rows": MetadataValue.int(stats.changed_per_day.get(day, 0)),
            }
            for day in window.days
        },
    )
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                **frame_metadata(labels),
                **stats_metadata(stats),
                "days_in_run": MetadataValue.int(len(window.days)),
                "unmatured_rows": MetadataValue.int(unmatured),
                "class_counts": MetadataValue.json(
                    {"SELL": int(counts.get(0, 0)), "HOLD": int(counts.get(1, 0)), "BUY": int(counts.get(2, 0))}
                ),
            },
        )
    )
