"""Derivatives feeds of the synthetic market, consistent with its bars (the demo has them).

Deterministic per (seed, symbol, hour) with hash-seeded noise, so any window gives the same
values for an hour:
- funding every 8 hours (00, 08, 16 UTC): a premium proxy from the last 8 hours' return, bounded
  to +-0.3%, known when paid (available_at = ts);
- open interest hourly: a positive level that grows with volume and shrinks after large moves
  (liquidations), known when the hour's figure is published (ts + 1h + 5 min);
- long/short ratio hourly: mean-reverting around 1, tilted by the last 24 hours' return, known
  at ts + 1h + 5 min;
- liquidations: forced orders on hours whose range exceeds 1.5x the recent average range, on the
  side that moved against positions (a fall liquidates longs: side sell), priced inside the bar,
  known at the event time.
Exchanges (ccxt) are not wired for these feeds yet: their REST histories are short (funding,
open interest and long/short about 30 days; liquidations none), and the exchange source for
them is future work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_assets.sources.orderbook import _hash_normal
from pipeline_assets.sources.synthetic import SyntheticMarket, stable_key

VENUE = "synthetic"
PUBLISH_DELAY = pd.Timedelta(hours=1, minutes=5)


def _noise(seed: int, symbol: str, hours: np.ndarray, lane: int) -> np.ndarray:
    base = (np.uint64(seed) * np.uint64(7_919) + np.uint64(stable_key(symbol))) * np.uint64(1 << 22)
    return _hash_normal(base + hours.astype(np.uint64) * np.uint64(8) + np.uint64(lane))


class SyntheticDerivatives:
    def __init__(self, market: SyntheticMarket, seed: int = 7):
        self.market = market
        self.seed = seed

    def _bars(self, symbol: str, start, end, warmup_hours: int) -> pd.DataFrame:
        bars = self.market.ohlcv(symbol, pd.Timestamp(start) - pd.Timedelta(hours=warmup_hours), end)
        return bars.reset_index(drop=True)

    @staticmethod
    def _window(frame: pd.DataFrame, start, end) -> pd.DataFrame:
        keep = (frame["ts"] >= pd.Timestamp(start)) & (frame["ts"] < pd.Timestamp(end))
        return frame[keep].reset_index(drop=True)

    def funding(self, symbol: str, start, end) -> pd.DataFrame:
        bars = self._bars(symbol, start, end, 8)
        close = bars["close"].to_numpy()
        hours = bars["ts"].to_numpy(dtype="datetime64[h]").astype(np.int64)
        premium = np.full(len(close), np.nan)
        premium[8:] = np.log(close[8:] / close[:-8])
        rate = np.clip(0.0001 + 0.05 * premium + 0.00005 * _noise(self.seed, symbol, hours, 0), -0.003, 0.003)
        frame = pd.DataFrame({"ts": bars["ts"], "funding_rate": rate})
        frame = frame[(bars["ts"].dt.hour % 8 == 0).to_numpy() & np.isfinite(rate)]
        frame = frame.assign(symbol=symbol, venue=VENUE, available_at=frame["ts"], interval_hours=8)
        return self._window(frame, start, end)

    def open_interest(self, symbol: str, start, end) -> pd.DataFrame:
        bars = self._bars(symbol, start, end, 0)
        hours = bars["ts"].to_numpy(dtype="datetime64[h]").astype(np.int64)
        volume = bars["volume"].to_numpy()
        move = np.abs(np.log(bars["close"].to_numpy() / bars["open"].to_numpy()))
        level = 50.0 * volume * np.exp(-20.0 * move + 0.1 * _noise(self.seed, symbol, hours, 1))
        frame = pd.DataFrame(
            {
                "ts": bars["ts"],
                "open_interest": level,
                "open_interest_value": level * bars["close"].to_numpy(),
            }
        ).assign(symbol=symbol, venue=VENUE)
        frame["available_at"] = frame["ts"] + PUBLISH_DELAY
        return self._window(frame, start, end)

    def long_short_ratio(self, symbol: str, start, end) -> pd.DataFrame:
        bars = self._bars(symbol, start, end, 24)
        close = bars["close"].to_numpy()
        hours = bars["ts"].to_numpy(dtype="datetime64[h]").astype(np.int64)
        trend = np.zeros(len(close))
        trend[24:] = np.log(close[24:] / close[:-24])
        ratio = np.exp(np.clip(3.0 * trend + 0.05 * _noise(self.seed, symbol, hours, 2), -1.5, 1.5))
        long_share = ratio / (1.0 + ratio)
        frame = pd.DataFrame(
            {"ts": bars["ts"], "long_short_ratio": ratio, "long_account": long_share, "short_account": 1 - long_share}
        ).assign(symbol=symbol, venue=VENUE)
        frame["available_at"] = frame["ts"] + PUBLISH_DELAY
        return self._window(frame, start, end)

    def liquidations(self, symbol: str, start, end) -> pd.DataFrame:
        bars = self._bars(symbol, start, end, 48)
        hours = bars["ts"].to_numpy(dtype="datetime64[h]").astype(np.int64)
        high, low = bars["high"].to_numpy(), bars["low"].to_numpy()
        open_, close = bars["open"].to_numpy(), bars["close"].to_numpy()
        spread = (high - low) / close
        average = pd.Series(spread).rolling(48, min_periods=12).mean().shift(1).to_numpy()
        hot = np.isfinite(average) & (spread > 1.5 * average)
        rows = []
        for i in np.flatnonzero(hot):
            side = "sell" if close[i] < open_[i] else "buy"
            u = _noise(self.seed, symbol, hours[i : i + 1], 3)[0]
            count = 1 + int(abs(u) * 3)
            for n in range(count):
                z = _noise(self.seed, symbol, hours[i : i + 1], 4 + n % 4)[0]
                fraction = 1.0 / (1.0 + np.exp(-z))
                price = low[i] + fraction * (high[i] - low[i])
                minute = int(fraction * 59)
                rows.append(
                    (
                        bars["ts"].iloc[i] + pd.Timedelta(minutes=minute),
                        f"syn-{symbol}-{hours[i]}-{n}",
                        side,
                        float(bars["volume"].iloc[i] * 0.01 * (1 + abs(z))),
                        float(price),
                    )
                )
        frame = pd.DataFrame(rows, columns=["ts", "event_id", "side", "size", "price"])
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        frame = frame.assign(symbol=symbol, venue=VENUE, available_at=frame["ts"])
        return self._window(frame, start, end)
