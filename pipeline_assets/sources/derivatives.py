"""Derivatives feeds of the synthetic market, consistent with its bars (the demo has them).

Deterministic per (seed, symbol, hour) with hash-seeded noise, so any window gives the same
values for an hour:
- funding every 8 hours (00, 08, 16 UTC): a premium proxy from the return of the 8 bars that had
  closed by the settlement (never the bar opening at it, which closes an hour later), bounded
  to +-0.3%, known when paid (available_at = ts);
- open interest hourly: a positive level that grows with volume and shrinks after large moves
  (liquidations), known when the hour's figure is published (ts + 1h + 5 min);
- long/short ratio hourly: mean-reverting around 1, tilted by the last 24 hours' return, known
  at ts + 1h + 5 min;
- liquidations: forced orders on hours whose range exceeds 1.5x the recent average range, on the
  side that moved against positions (a fall liquidates longs: side sell), priced inside the bar,
  known at the event time.
Exchanges (ccxt, ExchangeDerivatives below) keep short REST histories (funding, open interest
and long/short about 30 days) and none of liquidations: those are collected forward from the
websocket (sources/liquidation_stream.py).
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
        bars = self._bars(symbol, start, end, 9)
        close = bars["close"].to_numpy()
        hours = bars["ts"].to_numpy(dtype="datetime64[h]").astype(np.int64)
        premium = np.full(len(close), np.nan)
        premium[9:] = np.log(close[8:-1] / close[:-9])  # bars closed by ts: close(ts - 1h) / close(ts - 9h)
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


class ExchangeDerivatives:
    """Funding, open interest and long/short ratio of the USDT-margined perpetual of each coin from
    an exchange through ccxt (retries, backoff and rate limit of ``ExchangeSource``). Exchanges keep
    short histories (open interest and long/short ratio about 30 days): older hours come back
    empty and the asset reports them missing; the pipeline collects forward on its hourly run.
    Liquidations have no public REST history (ccxt: fetchLiquidations unsupported on binance):
    asking for them here raises SourceDataMissing, never invented rows; they are collected forward
    from the websocket by ``python -m pipeline_assets liquidations`` (LiquidationCollector)."""

    PAGE = 500

    def __init__(self, source):
        if source.market_type != "swap":
            raise ValueError("ExchangeDerivatives needs an ExchangeSource with market_type='swap' (the perpetual)")
        self.source = source
        self.venue = f"{source.exchange_id}:swap"

    def _pages(self, symbol: str, what: str, method, start, end, *extra) -> list:
        ccxt_symbol, _ = self.source._market(symbol)
        since, end_ms = int(pd.Timestamp(start).value // 1_000_000), int(pd.Timestamp(end).value // 1_000_000)
        items: list = []
        while since < end_ms:
            page = self.source._call(
                f"{symbol} ({ccxt_symbol}) {what} since {pd.Timestamp(since, unit='ms', tz='UTC').isoformat()}",
                symbol,
                method,
                ccxt_symbol,
                *extra,
                since,
                self.PAGE,
                {"until": end_ms - 1},
            )
            page = [p for p in (page or []) if isinstance(p, dict) and p.get("timestamp") is not None]
            if not page:
                break
            items.extend(p for p in page if since <= p["timestamp"] < end_ms)
            newest = max(p["timestamp"] for p in page)
            if newest < since or len(page) < self.PAGE:
                break
            since = newest + 1
        return items

    def funding(self, symbol: str, start, end) -> pd.DataFrame:
        items = self._pages(symbol, "funding", self.source.exchange.fetch_funding_rate_history, start, end)
        frame = pd.DataFrame(
            {
                "ts": pd.to_datetime([i["timestamp"] for i in items], unit="ms", utc=True),
                "funding_rate": [float(i["fundingRate"]) for i in items],
            }
        )
        # binance settles at the hour (a few ms later in the payload): the event is the hour
        frame["ts"] = frame["ts"].dt.floor("h")
        return frame.assign(symbol=symbol, venue=self.venue, available_at=frame["ts"], interval_hours=8)

    def open_interest(self, symbol: str, start, end) -> pd.DataFrame:
        items = self._pages(symbol, "open interest", self.source.exchange.fetch_open_interest_history, start, end, "1h")
        frame = pd.DataFrame(
            {
                "ts": pd.to_datetime([i["timestamp"] for i in items], unit="ms", utc=True),
                "open_interest": [float(i.get("openInterestAmount") or i["info"]["sumOpenInterest"]) for i in items],
                "open_interest_value": [
                    float(i.get("openInterestValue") or i["info"].get("sumOpenInterestValue") or "nan") for i in items
                ],
            }
        )
        frame["available_at"] = frame["ts"] + pd.Timedelta(minutes=5)
        return frame.assign(symbol=symbol, venue=self.venue)

    def long_short_ratio(self, symbol: str, start, end) -> pd.DataFrame:
        items = self._pages(
            symbol, "long/short ratio", self.source.exchange.fetch_long_short_ratio_history, start, end, "1h"
        )
        frame = pd.DataFrame(
            {
                "ts": pd.to_datetime([i["timestamp"] for i in items], unit="ms", utc=True),
                "long_short_ratio": [float(i["longShortRatio"]) for i in items],
                "long_account": [float(i["info"]["longAccount"]) for i in items],
                "short_account": [float(i["info"]["shortAccount"]) for i in items],
            }
        )
        frame["available_at"] = frame["ts"] + pd.Timedelta(minutes=5)
        return frame.assign(symbol=symbol, venue=self.venue)

    def liquidations(self, symbol: str, start, end) -> pd.DataFrame:
        from pipeline_assets.sources.base import SourceDataMissing

        raise SourceDataMissing(
            f"{self.source.exchange_id} publishes no liquidation history over REST for {symbol}; liquidations are "
            "collected forward only from its websocket stream (python -m pipeline_assets liquidations)"
        )
