"""Cross-asset family: each symbol's hourly returns against a reference symbol and the cross-section.

Per (symbol, closed hour t), from bars opening at or before t only:
- ``corr_ref_24h``, ``beta_ref_24h``: Pearson correlation and beta of the symbol's 24 one-hour log
  returns ending at t against the reference symbol's (BTCUSDT when configured, else the first
  symbol; ``PIPELINE_CROSS_ASSET_REFERENCE`` overrides). NaN unless all 24 pairs exist.
- ``rel_strength_24h``: 24h log return minus the reference's.
- ``rank_return_24h``: percentile rank in [0, 1] of the 24h log return among the symbols that have
  one at t (ties share the average rank); NaN with fewer than two symbols.
- ``dispersion_24h``: cross-sectional standard deviation of 24h log returns at t (NaN below two).
Returns are taken on the hourly grid: a missing bar makes the returns that need it NaN, never a
return across the gap. A symbol with no overlap with the reference gets NaN, and
``reference_pairs_24h`` (hours of the last 24 where both returns exist; 24 needed) says why.
No recursion: a value needs at most the 24 bars before it, so the rows of any range equal those
of one-day computations given LOOKBACK_HOURS of history (batch invariance).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline_assets.contracts.versioning import content_id

CROSS_ASSET_COLUMNS: tuple[str, ...] = (
    "corr_ref_24h",
    "beta_ref_24h",
    "rel_strength_24h",
    "rank_return_24h",
    "dispersion_24h",
)
CROSS_ASSET_PARAMS: dict = {"window_hours": 24, "return_hours": 24}
CROSS_ASSET_VERSION = 1
LOOKBACK_HOURS = 25  # the 24h return at t needs the close of t - 24; the 24 one-hour returns reach t - 24 too


def reference_symbol(symbols: Sequence[str]) -> str:
    chosen = os.environ.get("PIPELINE_CROSS_ASSET_REFERENCE")
    if chosen:
        if chosen not in symbols:
            raise ValueError(f"PIPELINE_CROSS_ASSET_REFERENCE={chosen!r} is not one of the symbols {list(symbols)}")
        return chosen
    return "BTCUSDT" if "BTCUSDT" in symbols else sorted(symbols)[0]


def cross_asset_set_id(reference: str) -> str:
    payload = {
        "columns": sorted(CROSS_ASSET_COLUMNS),
        "params": {**CROSS_ASSET_PARAMS, "reference": reference},
        "version": CROSS_ASSET_VERSION,
    }
    return content_id(f"xasset-v{CROSS_ASSET_VERSION}", payload)


def compute_cross_asset_features(
    bars: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, symbols: Sequence[str], reference: str
) -> pd.DataFrame:
    """Rows (symbol, ts, CROSS_ASSET_COLUMNS..., reference_pairs_24h) for every symbol with a bar at
    ts in [start, end); ``bars`` holds symbol, ts, close for [start - LOOKBACK_HOURS, end)."""
    if reference not in symbols:
        raise ValueError(f"reference symbol {reference!r} is not one of {list(symbols)}")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    grid = pd.date_range(start - pd.Timedelta(hours=LOOKBACK_HOURS), end, freq="h", inclusive="left")
    close = bars.pivot_table(index="ts", columns="symbol", values="close", aggfunc="last")
    close = close.reindex(index=grid, columns=list(symbols))
    log_close = np.log(close.to_numpy(dtype=np.float64))
    r1 = np.full_like(log_close, np.nan)
    r1[1:] = log_close[1:] - log_close[:-1]
    r24 = np.full_like(log_close, np.nan)
    r24[24:] = log_close[24:] - log_close[:-24]
    ref = list(symbols).index(reference)
    n_hours, n_symbols = r1.shape
    corr = np.full_like(r1, np.nan)
    beta = np.full_like(r1, np.nan)
    pairs = np.zeros(r1.shape, dtype=np.int64)
    window = CROSS_ASSET_PARAMS["window_hours"]
    if n_hours >= window:
        # rolling windows as a (hours - 23, 24, symbols) view: exact per-window sums, no drift
        from numpy.lib.stride_tricks import sliding_window_view

        x = sliding_window_view(r1, window, axis=0)  # (n - 23, symbols, 24)
        y = x[:, ref : ref + 1, :]
        mx, my = x.mean(axis=2, keepdims=True), y.mean(axis=2, keepdims=True)
        dx, dy = x - mx, y - my
        cov = (dx * dy).sum(axis=2)
        vx = (dx * dx).sum(axis=2)
        vy = (dy * dy).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr[window - 1 :] = np.where((vx > 0) & (vy > 0), cov / np.sqrt(vx * vy), np.nan)
            beta[window - 1 :] = np.where(vy > 0, cov / vy, np.nan)
        pairs[window - 1 :] = (~np.isnan(x) & ~np.isnan(y)).sum(axis=2)
    rel = r24 - r24[:, ref : ref + 1]
    frame24 = pd.DataFrame(r24)
    counts = frame24.notna().sum(axis=1).to_numpy()
    rank = frame24.rank(axis=1, pct=False).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN hours: NaN, as intended
        rank = np.where(counts[:, None] >= 2, (rank - 1) / (counts[:, None] - 1), np.nan)
        dispersion = np.where(counts >= 2, np.nanstd(r24, axis=1), np.nan)
    rows = grid >= start
    out = []
    present = ~np.isnan(log_close)
    for s, symbol in enumerate(symbols):
        keep = rows & present[:, s]
        if not keep.any():
            continue
        out.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": grid[keep],
                    "corr_ref_24h": corr[keep, s],
                    "beta_ref_24h": beta[keep, s],
                    "rel_strength_24h": rel[keep, s],
                    "rank_return_24h": rank[keep, s],
                    "dispersion_24h": dispersion[keep],
                    "reference_pairs_24h": pairs[keep, s],
                }
            )
        )
    if not out:
        return pd.DataFrame(columns=["symbol", "ts", *CROSS_ASSET_COLUMNS, "reference_pairs_24h"])
    return pd.concat(out, ignore_index=True)
