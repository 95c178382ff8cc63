"""Order-book snapshots.

- Synthetic: one 10-level snapshot per closed hour, taken 2 s after the bar's close, consistent
  with the synthetic bars: mid = the bar's close, half-spread from the bar's range (at least
  0.5 bp), level sizes from the bar's volume, deterministic per (seed, symbol, hour).
- Exchange: the exchange's current book (``ExchangeSource.order_book``), collected going forward by
  the hourly run; hours before collection began have no snapshot, and the state vector says so
  (``book.present`` = 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtri

from pipeline_assets.sources.synthetic import stable_key

LEVELS = 10
SNAPSHOT_DELAY = pd.Timedelta(seconds=2)


def _hash_normal(keys: np.ndarray) -> np.ndarray:
    """Standard normal values determined by integer keys (splitmix64, then the inverse normal CDF):
    the same key gives the same value in any window, without a generator per hour."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    uniform = ((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53)
    return ndtri(uniform)


def synthetic_snapshots(bars: pd.DataFrame, symbol: str, seed: int = 7, venue: str = "synthetic") -> pd.DataFrame:
    """Snapshots for the closed bars of one symbol (columns ts, high, low, close, volume)."""
    if bars.empty:
        return pd.DataFrame(
            columns=["symbol", "venue", "snapshot_at", "bid_prices", "bid_sizes", "ask_prices", "ask_sizes"]
        )
    close = bars["close"].to_numpy(dtype=np.float64)[:, None]
    spread_frac = np.maximum(
        0.5e-4, 0.02 * (bars["high"].to_numpy(np.float64) - bars["low"].to_numpy(np.float64)) / close[:, 0]
    )
    hours = bars["ts"].to_numpy(dtype="datetime64[h]").astype(np.int64)
    level_size = (bars["volume"].to_numpy(dtype=np.float64) / (24.0 * LEVELS))[:, None]
    steps = np.arange(LEVELS)[None, :]
    half = close * spread_frac[:, None] / 2
    tick = close * 1e-4
    base = (np.uint64(seed) * np.uint64(1_000_003) + np.uint64(stable_key(symbol))) * np.uint64(1 << 20)
    keys = base + hours.astype(np.uint64)[:, None] * np.uint64(2 * LEVELS) + steps.astype(np.uint64)
    growth = 1 + 0.15 * steps
    bid_sizes = level_size * np.exp(0.4 * _hash_normal(keys)) * growth
    ask_sizes = level_size * np.exp(0.4 * _hash_normal(keys + np.uint64(LEVELS))) * growth
    return pd.DataFrame(
        {
            "symbol": symbol,
            "venue": venue,
            "snapshot_at": bars["ts"].reset_index(drop=True) + pd.Timedelta(hours=1) + SNAPSHOT_DELAY,
            "bid_prices": list(close - half - steps * tick),
            "bid_sizes": list(bid_sizes),
            "ask_prices": list(close + half + steps * tick),
            "ask_sizes": list(ask_sizes),
        }
    )
