"""A deterministic synthetic crypto market: correlated hourly bars and the news that moves them.

Every bar is a pure function of (seed, symbol, hour): a day's returns come from generators
seeded by (seed, symbol, day), and the price level at a day's start is the cumulative sum
of all earlier days since ``epoch``, computed once per symbol and cached. So any range
gives the same bars as the union of its parts.

Hourly log return = beta * market factor (shared by all symbols) + idiosyncratic noise +
news drift + a weak pull of the log price back toward its base level (applied per day from
the level at the day's start, so it is reproducible whatever the requested range). News
moves prices only from the first bar opening after publication, and the same events are
rendered as headlines whose wording carries their tone.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pipeline_assets.sources.base import HEADLINE_COLUMNS, OHLCV_COLUMNS, require_utc_window

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
DEFAULT_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
BASE_PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "BNBUSDT": 600.0, "SOLUSDT": 150.0}
BETAS = {"BTCUSDT": 1.0, "ETHUSDT": 1.15, "BNBUSDT": 0.85, "SOLUSDT": 1.35}
ASSET_NAMES = {"BTCUSDT": "Bitcoin (BTC)", "ETHUSDT": "Ethereum (ETH)", "BNBUSDT": "BNB", "SOLUSDT": "Solana (SOL)"}

MARKET_VOL = 0.0035  # hourly, before the daily regime multiplier
IDIO_VOL = 0.0025
MEAN_REVERSION_PER_DAY = 0.02
NEWS_DECAY = np.array([1.0, 0.8, 0.6, 0.45, 0.3, 0.2])  # drift per hour after publication
HOURS = 24

POSITIVE_HEADLINES = (
    "{name} gains strongly as investors cheer great adoption news",
    "{name} jumps on strong optimism after a major partnership win",
    "Analysts upbeat: {name} sees excellent growth and record inflows",
    "{name} rallies as confidence and success boost the market",
)
NEGATIVE_HEADLINES = (
    "{name} crashes as terrible fraud scandal hurts investors",
    "Panic and fear hit {name} after exchange hack losses",
    "{name} falls sharply on bad regulatory lawsuit worries",
    "Investors worried as {name} suffers heavy losses and weak demand",
)
MARKET_POSITIVE = "Crypto markets rally on great optimism; {name} joins the gains"
MARKET_NEGATIVE = "Crypto markets slump on fear of crackdown; {name} hit by losses"
NEUTRAL_HEADLINES = (
    "{name} trading volume steady ahead of the weekly options expiry",
    "{name} network update scheduled for next month",
    "Exchange lists new {name} trading pairs",
    "{name} price moves sideways during the session",
)


def stable_key(text: str) -> int:
    """A process-independent integer for seeding (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _base_price(symbol: str) -> float:
    return BASE_PRICES.get(symbol, 10.0 + stable_key(symbol) % 990)


def _beta(symbol: str) -> float:
    return BETAS.get(symbol, 0.8 + (stable_key(symbol) % 70) / 100)


def asset_name(symbol: str) -> str:
    return ASSET_NAMES.get(symbol, symbol.removesuffix("USDT"))


@dataclass
class _SymbolPath:
    """Cumulative log price at the start of each day since epoch, grown on demand."""

    starts: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


# Shared by every SyntheticMarket with the same seed and epoch: the path is a pure function of
# them, and recomputing years of history for each Dagster run would dominate its cost.
_PATHS: dict[tuple[int, datetime, str], _SymbolPath] = {}
_PATHS_LOCK = threading.Lock()


@dataclass(frozen=True)
class SyntheticMarket:
    seed: int = 7
    epoch: datetime = DEFAULT_EPOCH
    name: str = "synthetic"

    # -- news ----------------------------------------------------------------------------
    def _day_events(self, symbol: str, day: int) -> list[tuple[float, int, float, str]]:
        """(minutes after day start, tone, hourly drift strength, scope) for one symbol and day."""
        events = []
        market = np.random.default_rng([self.seed, 0, day, 1])
        for _ in range(int(market.integers(0, 3))):
            events.append(
                (
                    float(market.uniform(0, 1440)),
                    int(market.choice([-1, 1])),
                    float(market.uniform(0.0008, 0.0018)),
                    "market",
                )
            )
        own = np.random.default_rng([self.seed, stable_key(symbol), day, 1])
        for _ in range(int(own.integers(1, 5))):
            events.append(
                (float(own.uniform(0, 1440)), int(own.choice([-1, 1])), float(own.uniform(0.0010, 0.0025)), "symbol")
            )
        return sorted(events)

    def _news_drift(self, symbol: str, day: int) -> np.ndarray:
        """Drift of each bar of ``day`` from news published that day or the day before."""
        drift = np.zeros(HOURS)
        for offset_day in (day - 1, day):
            if offset_day < 0:
                continue
            for minute, tone, strength, _scope in self._day_events(symbol, offset_day):
                first_bar = int(minute // 60) + 1 + (offset_day - day) * HOURS  # first bar opening after it
                for k, weight in enumerate(NEWS_DECAY):
                    hour = first_bar + k
                    if 0 <= hour < HOURS:
                        drift[hour] += tone * strength * weight
        return drift

    # -- prices --------------------------------------------------------------------------
    def _day_returns(self, symbol: str, day: int, start_log_level: float) -> np.ndarray:
        market = np.random.default_rng([self.seed, 0, day])
        regime = np.exp(0.35 * market.normal())
        market_returns = market.normal(0.0, MARKET_VOL * regime, HOURS)
        own = np.random.default_rng([self.seed, stable_key(symbol), day])
        idio = own.normal(0.0, IDIO_VOL * np.exp(0.25 * own.normal()), HOURS)
        pull = -MEAN_REVERSION_PER_DAY * start_log_level / HOURS
        return _beta(symbol) * market_returns + idio + self._news_drift(symbol, day) + pull

    def _day_index(self, when: pd.Timestamp) -> int:
        day = (when - pd.Timestamp(self.epoch)).days
        if when < pd.Timestamp(self.epoch):
            raise ValueError(f"{when.isoformat()} is before the synthetic market's epoch {self.epoch.isoformat()}")
        return day

    def _start_levels(self, symbol: str, last_day: int) -> list[float]:
        """Log price relative to base at the start of days 0..last_day (cached per symbol)."""
        with _PATHS_LOCK:
            path = _PATHS.setdefault((self.seed, self.epoch, symbol), _SymbolPath())
        with path.lock:
            if not path.starts:
                path.starts.append(0.0)
            while len(path.starts) <= last_day:
                day = len(path.starts) - 1
                level = path.starts[day]
                path.starts.append(level + float(self._day_returns(symbol, day, level).sum()))
            return path.starts

    def _day_bars(self, symbol: str, day: int) -> pd.DataFrame:
        levels = self._start_levels(symbol, day)
        start_level = levels[day]
        returns = self._day_returns(symbol, day, start_level)
        base = _base_price(symbol)
        log_close = start_level + np.cumsum(returns)
        close = base * np.exp(log_close)
        open_ = base * np.exp(np.concatenate([[start_level], log_close[:-1]]))
        wick = np.random.default_rng([self.seed, stable_key(symbol), day, 2])
        spread = np.abs(wick.normal(0.0, 0.0015, (2, HOURS)))
        high = np.maximum(open_, close) * np.exp(spread[0])
        low = np.minimum(open_, close) * np.exp(-spread[1])
        volume = (base**-0.5) * 5e4 * wick.lognormal(0.0, 0.35, HOURS) * (1.0 + 60.0 * np.abs(returns))
        ts = pd.date_range(pd.Timestamp(self.epoch) + pd.Timedelta(days=day), periods=HOURS, freq="h")
        return pd.DataFrame({"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume})

    def _days(self, start: pd.Timestamp, end: pd.Timestamp) -> range:
        first = self._day_index(start)
        last = self._day_index(end - pd.Timedelta(microseconds=1))
        return range(first, last + 1)

    def ohlcv(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        frames = [self._day_bars(symbol, day) for day in self._days(start_ts, end_ts)]
        bars = pd.concat(frames, ignore_index=True)
        bars = bars[(bars["ts"] >= start_ts) & (bars["ts"] < end_ts)].reset_index(drop=True)
        return bars[list(OHLCV_COLUMNS)]

    # -- headlines -----------------------------------------------------------------------
    def news_events(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        rows = []
        for day in self._days(start_ts, end_ts):
            day_start = pd.Timestamp(self.epoch) + pd.Timedelta(days=day)
            for minute, tone, strength, scope in self._day_events(symbol, day):
                rows.append((day_start + pd.Timedelta(minutes=minute).floor("s"), symbol, tone, strength, scope))
        events = pd.DataFrame(rows, columns=["published_at", "symbol", "tone", "strength", "scope"])
        events["published_at"] = pd.to_datetime(events["published_at"], utc=True)
        return events[(events["published_at"] >= start_ts) & (events["published_at"] < end_ts)].reset_index(drop=True)

    def headlines(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        name = asset_name(symbol)
        rows = []
        for day in self._days(start_ts, end_ts):
            day_start = pd.Timestamp(self.epoch) + pd.Timedelta(days=day)
            rng = np.random.default_rng([self.seed, stable_key(symbol), day, 3])
            events = self._day_events(symbol, day)
            for minute, tone, _strength, scope in events:
                if scope == "market":
                    template = MARKET_POSITIVE if tone > 0 else MARKET_NEGATIVE
                else:
                    options = POSITIVE_HEADLINES if tone > 0 else NEGATIVE_HEADLINES
                    template = options[int(rng.integers(len(options)))]
                rows.append((day_start + pd.Timedelta(minutes=minute).floor("s"), template.format(name=name)))
            fillers = max(0, int(rng.integers(4, 13)) - len(events))
            for _ in range(fillers):
                template = NEUTRAL_HEADLINES[int(rng.integers(len(NEUTRAL_HEADLINES)))]
                rows.append(
                    (
                        day_start + pd.Timedelta(minutes=float(rng.uniform(0, 1440))).floor("s"),
                        template.format(name=name),
                    )
                )
        frame = pd.DataFrame(rows, columns=["published_at", "headline"])
        frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
        frame["symbol"] = symbol
        frame["source"] = "synthetic-wire"
        frame = frame[(frame["published_at"] >= start_ts) & (frame["published_at"] < end_ts)]
        return frame.sort_values("published_at", kind="stable").reset_index(drop=True)[list(HEADLINE_COLUMNS)]
