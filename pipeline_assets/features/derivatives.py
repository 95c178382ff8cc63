"""Derivatives family, from the aligned grid (market_aligned): every value known at its bar's
close (the grid joined each feed by availability time), stale values already missing.

- ``funding_rate`` and ``funding_z_30d`` (its z-score over the last 720 hourly grid values that
  are present; NaN with fewer than 24);
- ``oi_change_24h``: log of open interest now over 24 hours before;
- ``liq_imbalance_24h``: (buy - sell) / (buy + sell) liquidation notional over 24 hours, 0 when
  the 24 hours were watched without a liquidation, NaN when any of them was not watched by the
  liquidation stream (its values are NULL in the grid: missing, never taken as 0);
- ``log_long_short_ratio``;
- the staleness of each feed in hours (NaN when never seen), so a model can discount old values.
Rolling windows only (no recursion): rows of a day depend on the LOOKBACK_HOURS before it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline_assets.contracts.versioning import content_id

DERIVATIVE_COLUMNS: tuple[str, ...] = (
    "funding_rate",
    "funding_z_30d",
    "oi_change_24h",
    "liq_imbalance_24h",
    "log_long_short_ratio",
    "funding_staleness_h",
    "oi_staleness_h",
    "ls_staleness_h",
)
DERIVATIVE_PARAMS: dict = {"funding_z_hours": 720, "funding_z_min": 24, "oi_change_hours": 24, "liq_hours": 24}
DERIVATIVE_VERSION = 1
NAN_REASONS = {
    "liq_imbalance_24h": "an hour of its 24-hour window was not watched by the liquidation stream (NULL in "
    "market_aligned: missing, not 0) or has no grid row",
    "funding_rate": "no funding value known within the maximum staleness",
    "funding_z_30d": "fewer than 24 funding values in its 720-hour window",
    "oi_change_24h": "open interest missing or stale now or 24 hours before",
    "log_long_short_ratio": "no long/short ratio known within the maximum staleness",
}
LOOKBACK_HOURS = 720
DERIVATIVE_SET_ID = content_id(
    f"deriv-v{DERIVATIVE_VERSION}",
    {"columns": sorted(DERIVATIVE_COLUMNS), "params": DERIVATIVE_PARAMS, "version": DERIVATIVE_VERSION},
)


def compute_derivative_features(grid: pd.DataFrame) -> pd.DataFrame:
    """One symbol's aligned grid rows (ts ascending, every hour present) -> DERIVATIVE_COLUMNS."""
    g = grid.sort_values("ts").reset_index(drop=True)
    funding = g["funding_rate"].astype("float64")
    window = DERIVATIVE_PARAMS["funding_z_hours"]
    mean = funding.rolling(window, min_periods=DERIVATIVE_PARAMS["funding_z_min"]).mean()
    std = funding.rolling(window, min_periods=DERIVATIVE_PARAMS["funding_z_min"]).std(ddof=1)
    oi = g["open_interest"].astype("float64")
    buy = g["liq_buy_notional"].astype("float64").rolling(24, min_periods=24).sum()
    sell = g["liq_sell_notional"].astype("float64").rolling(24, min_periods=24).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        imbalance = np.where(buy + sell > 0, (buy - sell) / (buy + sell), 0.0)
        imbalance = np.where(buy.isna() | sell.isna(), np.nan, imbalance)
        out = pd.DataFrame(
            {
                "ts": g["ts"],
                "funding_rate": funding,
                "funding_z_30d": np.where(std > 0, (funding - mean) / std, np.where(std.notna(), 0.0, np.nan)),
                "oi_change_24h": np.log(oi / oi.shift(24)),
                "liq_imbalance_24h": imbalance,
                "log_long_short_ratio": np.log(g["long_short_ratio"].astype("float64")),
                "funding_staleness_h": g["funding_staleness_h"].astype("float64"),
                "oi_staleness_h": g["oi_staleness_h"].astype("float64"),
                "ls_staleness_h": g["ls_staleness_h"].astype("float64"),
            }
        )
    return out


def derivative_days(grid: pd.DataFrame, days: Sequence[str], symbols: Sequence[str]) -> pd.DataFrame:
    """compute_days for the family. Every value is a fixed window of at most LOOKBACK_HOURS rows,
    so one pass per symbol over the days plus their lookback gives exactly the rows of one pass
    per day (batch invariance, tested)."""
    if not days:
        return pd.DataFrame(columns=["symbol", "ts", *DERIVATIVE_COLUMNS])
    wanted = {pd.Timestamp(d, tz="UTC") for d in days}
    first = min(wanted)
    frames = []
    for symbol in symbols:
        own = grid[(grid["symbol"] == symbol) & (grid["ts"] >= first - pd.Timedelta(hours=LOOKBACK_HOURS))]
        if own.empty:
            continue
        features = compute_derivative_features(own)
        keep = features["ts"].dt.floor("D").isin(wanted)
        frames.append(features[keep.to_numpy()].assign(symbol=symbol))
    if not frames:
        return pd.DataFrame(columns=["symbol", "ts", *DERIVATIVE_COLUMNS])
    return pd.concat(frames, ignore_index=True)[["symbol", "ts", *DERIVATIVE_COLUMNS]]
