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

from pipeline_assets.sources.synthetic import stable_key

LEVELS = 10
SNAPSHOT_DELAY = pd.Timedelta(seconds=2)


def synthetic_snapshots(bars: pd.DataFrame, symbol: str, seed: int = 7, venue: str = "synthetic") -> pd.DataFrame:
    """Snapshots for the closed bars of one symbol (columns ts, high, low, close, volume)."""
    if bars.empty:
        return pd.DataFrame(
            columns=["symbol", "venue", "snapshot_at", "bid_prices", "bid_sizes", "ask_prices", "ask_sizes"]
        )
    close = bars["close"].to_numpy(dtype=np.float64)
    spread_frac = np.maximum(
        0.5e-4, 0.02 * (bars["high"].to_numpy(np.float64) - bars["low"].to_numpy(np.float64)) / close
    )
    tick = close * 1e-4
    hours = bars["ts"].to_numpy(dtype="datetime64[h]").astype(np.int64)
    level_size = bars["volume"].to_numpy(dtype=np.float64) / (24.0 * LEVELS)
    steps = np.arange(LEVELS)
    rows = []
    for i in range(len(bars)):
        rng = np.random.default_rng([seed, stable_key(symbol), int(hours[i]), 3])
        half = close[i] * spread_frac[i] / 2
        bid_prices = close[i] - half - steps * tick[i]
        ask_prices = close[i] + half + steps * tick[i]
        bid_sizes = level_size[i] * rng.lognormal(0.0, 0.4, LEVELS) * (1 + 0.15 * steps)
        ask_sizes = level_size[i] * rng.lognormal(0.0, 0.4, LEVELS) * (1 + 0.15 * steps)
        rows.append((bid_prices, bid_sizes, ask_prices, ask_sizes))
    bp, bs, ap, asz = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "venue": venue,
            "snapshot_at": bars["ts"].reset_index(drop=True) + pd.Timedelta(hours=1) + SNAPSHOT_DELAY,
            "bid_prices": list(bp),
            "bid_sizes": list(bs),
            "ask_prices": list(ap),
            "ask_sizes": list(asz),
        }
    )
