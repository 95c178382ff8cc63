"""The aligned hourly grid: per symbol and closed hour t, the bar and each derivatives feed's
latest value whose availability time is <= t + 1h (the bar's close), with its staleness in hours
(t + 1h - the value's event time); a value staler than the feed's maximum is missing (NULL),
never carried forward. Liquidations are summed over events of the hour known by its close, for
hours the liquidation stream watched entirely (features/watch_coverage.py); an hour it did not
watch has NULL (missing) liquidation values, and 0 means watched with no event.
Hours without a bar are rows with ``bar_missing`` and no prices."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

FEEDS = {
    # feed: (value column, staleness column, default maximum staleness in hours)
    "funding": ("funding_rate", "funding_staleness_h", 9.0),
    "open_interest": ("open_interest", "oi_staleness_h", 3.0),
    "long_short_ratio": ("long_short_ratio", "ls_staleness_h", 3.0),
}
ALIGNED_COLUMNS = (
    "bar_missing", "open", "high", "low", "close", "volume",
    "funding_rate", "funding_staleness_h", "open_interest", "oi_staleness_h",
    "long_short_ratio", "ls_staleness_h", "liq_buy_notional", "liq_sell_notional", "liq_count",
)  # fmt: skip
LOOKBACK_HOURS = 10  # the largest default maximum staleness, rounded up


def max_staleness(feed: str) -> float:
    return float(os.environ.get(f"PIPELINE_MAX_STALENESS_{feed.upper()}_H", FEEDS[feed][2]))


def align(
    symbol: str,
    hours: pd.DatetimeIndex,
    bars: pd.DataFrame,
    feeds: dict[str, pd.DataFrame],
    liquidations: pd.DataFrame,
    liquidations_watched: np.ndarray,
) -> pd.DataFrame:
    """Rows for ``hours`` (bar open times) of one symbol. ``bars``: ts, open..volume; ``feeds``:
    feed -> frame with ts, available_at and the value column; ``liquidations``: ts, available_at,
    side, size, price; ``liquidations_watched``: per hour, whether the liquidation stream covered
    all of it (else the hour's liquidation values are missing)."""
    watched = np.asarray(liquidations_watched, dtype=bool)
    if watched.shape != (len(hours),):
        raise ValueError(f"{symbol}: liquidations_watched has shape {watched.shape}, expected ({len(hours)},)")
    grid = pd.DataFrame({"ts": hours})
    grid["close_time"] = grid["ts"] + pd.Timedelta(hours=1)
    out = grid.merge(bars[["ts", "open", "high", "low", "close", "volume"]], on="ts", how="left")
    out["bar_missing"] = out["close"].isna()
    for feed, (value, staleness, _) in FEEDS.items():
        frame = feeds.get(feed)
        if frame is None or frame.empty:
            out[value] = np.nan
            out[staleness] = np.nan
            continue
        known = frame.sort_values("available_at")[["available_at", "ts", value]].rename(columns={"ts": "value_ts"})
        joined = pd.merge_asof(
            out[["close_time"]].sort_values("close_time"), known, left_on="close_time", right_on="available_at",
            direction="backward",
        )  # fmt: skip
        # several versions may have become known: keep the newest event time among them
        age = (joined["close_time"] - joined["value_ts"]) / pd.Timedelta(hours=1)
        fresh = age <= max_staleness(feed)
        out[value] = np.where(fresh, joined[value], np.nan)
        out[staleness] = np.where(joined["value_ts"].notna(), age, np.nan)
    liq = liquidations[
        liquidations["available_at"] < liquidations["ts"].dt.floor("h") + pd.Timedelta(hours=1, microseconds=1)
    ]
    notional = liq.assign(hour=liq["ts"].dt.floor("h"), notional=liq["size"] * liq["price"])
    sums = notional.pivot_table(index="hour", columns="side", values="notional", aggfunc="sum").reindex(
        columns=["buy", "sell"]
    )
    counts = notional.groupby("hour").size()
    out["liq_buy_notional"] = out["ts"].map(sums["buy"]).fillna(0.0).to_numpy() if len(sums) else 0.0
    out["liq_sell_notional"] = out["ts"].map(sums["sell"]).fillna(0.0).to_numpy() if len(sums) else 0.0
    out["liq_count"] = out["ts"].map(counts).fillna(0).astype(np.int64).to_numpy() if len(counts) else 0
    for column in ("liq_buy_notional", "liq_sell_notional"):
        out[column] = np.where(watched, out[column].astype("float64"), np.nan)
    out["liq_count"] = pd.array(np.where(watched, out["liq_count"], 0), dtype="Int64")
    out.loc[~watched, "liq_count"] = pd.NA
    return out.assign(symbol=symbol)[["symbol", "ts", *ALIGNED_COLUMNS]]
