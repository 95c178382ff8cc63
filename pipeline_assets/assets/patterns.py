"""Chart-pattern detections as an asset (``ml_patterns``), one range run for many days.

Each UTC day's detections are computed from the bars of that day plus PATTERN_LOOKBACK_HOURS
before it (the zigzag of confirmed pivots and the ATR start there), so a range run stores the
same rows as one-day runs (batch invariance, tested)."""

import math
from dataclasses import asdict
from datetime import timedelta

import numpy as np
import pandas as pd
from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue

from pipeline_assets.assets._common import (
    add_day_metadata,
    daily_asset,
    run_metadata,
    run_window,
    transient_only,
)
from pipeline_assets.assets.ingestion import raw_ohlcv
from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.features.patterns import PATTERNS, PatternParams, detect_patterns
from pipeline_assets.partitions import SYMBOLS, day_window, days_window
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store.warehouse import read_ohlcv

PIVOT_WINDOW = 5
MAX_PATTERN_HOURS = 120
# the longest formation, its breakout allowance (24 bars) and the ATR warm-up (14) fit in 8 days
PATTERN_LOOKBACK_HOURS = 8 * 24
PATTERN_SET_ID = content_id(
    "patterns-v1",
    {
        "params": asdict(PatternParams()),
        "pivot_window": PIVOT_WINDOW,
        "max_hours": MAX_PATTERN_HOURS,
        "lookback_hours": PATTERN_LOOKBACK_HOURS,
        "patterns": list(PATTERNS),
    },
)
COLUMNS = [
    "symbol",
    "ts",
    "pattern",
    "score",
    "direction",
    "target_price",
    "expected_completion_hours",
    "start_ts",
    "pattern_set_id",
]


def detections_day_by_day(bars: pd.DataFrame, days) -> pd.DataFrame:
    """One symbol's detections for ``days``, each day from its own lookback window."""
    ts = bars["ts"].to_numpy(dtype="datetime64[us]")
    out = []
    for day in days:
        start = np.datetime64(day_window(day)[0].replace(tzinfo=None), "us")
        lo = np.searchsorted(ts, start - np.timedelta64(PATTERN_LOOKBACK_HOURS, "h"), side="left")
        hi = np.searchsorted(ts, start + np.timedelta64(1, "D"), side="left")
        if hi == np.searchsorted(ts, start, side="left"):
            continue
        found = detect_patterns(bars.iloc[lo:hi].reset_index(drop=True), PIVOT_WINDOW, MAX_PATTERN_HOURS)
        out.append(found[found["ts"] >= pd.Timestamp(start, tz="UTC")])
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=COLUMNS[1:-1])


@daily_asset(
    group_name="features",
    kinds={"postgres", "numba"},
    tags={"layer": "features", "family": "patterns"},
    deps=[AssetDep(raw_ohlcv, partition_mapping=days_window(start_offset=-math.ceil(PATTERN_LOOKBACK_HOURS / 24)))],
    metadata={"pattern_set_id": PATTERN_SET_ID, "patterns": MetadataValue.json(list(PATTERNS))},
)
@transient_only
def ml_patterns(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Head and shoulders, double top/bottom, triangle, flag, pennant and wedge detections per
    symbol and bar, from pivots confirmed by that bar: score in [0, 1], direction, measured-move
    target and expected completion in hours."""
    window = run_window(context)
    with warehouse.transaction() as conn:
        bars = read_ohlcv(conn, list(SYMBOLS), window.start - timedelta(hours=PATTERN_LOOKBACK_HOURS), window.end)
    if not (bars["ts"] >= window.start).any():
        raise Failure(
            f"ml_patterns {window.label}: no raw_ohlcv bars for any symbol; materialise raw_ohlcv", allow_retries=False
        )
    frames = []
    for symbol, group in bars.groupby("symbol", sort=True):
        found = detections_day_by_day(group.drop(columns=["symbol"]).reset_index(drop=True), window.days)
        if len(found):
            frames.append(found.assign(symbol=symbol))
    found = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    found = found.assign(pattern_set_id=PATTERN_SET_ID)[COLUMNS]
    with warehouse.transaction() as conn:
        conn.execute("DELETE FROM ml_patterns WHERE ts >= %s AND ts < %s", (window.start, window.end))
        with conn.cursor() as cur, cur.copy(f"COPY ml_patterns ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in found.itertuples(index=False):
                copy.write_row(
                    (
                        row.symbol,
                        row.ts.to_pydatetime(),
                        row.pattern,
                        float(row.score),
                        int(row.direction),
                        float(row.target_price),
                        float(row.expected_completion_hours),
                        row.start_ts.to_pydatetime(),
                        row.pattern_set_id,
                    )
                )
    per_day = found["ts"].dt.strftime("%Y-%m-%d").value_counts() if len(found) else {}
    add_day_metadata(context, {d: {"rows": MetadataValue.int(int(per_day.get(d, 0)))} for d in window.days})
    counts = found["pattern"].value_counts().to_dict() if len(found) else {}
    return MaterializeResult(
        metadata=run_metadata(
            context,
            window,
            {
                "rows_in_run": MetadataValue.int(len(found)),
                "pattern_set_id": PATTERN_SET_ID,
                "detections_per_pattern": MetadataValue.json({p: int(counts.get(p, 0)) for p in PATTERNS}),
            },
        )
    )
