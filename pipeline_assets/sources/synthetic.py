"""A deterministic synthetic crypto market: correlated hourly bars and the news that moves them.

Hourly log return = beta * market factor (shared by all symbols) + idiosyncratic noise + news
drift + a weak pull of the log price back toward its base level. News moves prices only from
the first bar opening after publication (decaying over six bars), and the same events are
rendered as headlines whose wording carries their tone.

Seekable and cheap: random draws come in blocks of BLOCK_DAYS days, each block from its own
generators seeded by (seed, symbol, block), drawn as whole arrays. The pull makes the day-start
level an AR(1) of the days' summed returns, L[d+1] = (1 - k) L[d] + S[d], evaluated for all days
at once (a linear filter) from the epoch, 2000-01-01, so any window from 2000 on is served, and a
fresh process builds a symbol's 26 years of path in tens of milliseconds instead of walking them
day by day. Every bar is a pure function of (seed, symbol, hour): any range gives the same bars
as the union of its parts. The arrays are cached per (seed, epoch, symbol) and extended on demand.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from pipeline_assets.sources.base import HEADLINE_COLUMNS, OHLCV_COLUMNS, require_utc_window

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
DEFAULT_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BASE_PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "BNBUSDT": 600.0, "SOLUSDT": 150.0}
BETAS = {"BTCUSDT": 1.0, "ETHUSDT": 1.15, "BNBUSDT": 0.85, "SOLUSDT": 1.35}
ASSET_NAMES = {"BTCUSDT": "Bitcoin (BTC)", "ETHUSDT": "Ethereum (ETH)", "BNBUSDT": "BNB", "SOLUSDT": "Solana (SOL)"}

MARKET_VOL = 0.0035  # hourly, before the daily regime multiplier
IDIO_VOL = 0.0025
MEAN_REVERSION_PER_DAY = 0.02
NEWS_DECAY = np.array([1.0, 0.8, 0.6, 0.45, 0.3, 0.2])  # drift per hour after publication
HOURS = 24
BLOCK_DAYS = 64
MARKET_SLOTS, SYMBOL_SLOTS, FILLER_SLOTS = 2, 4, 12

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
    """Per-day arrays of one symbol from the epoch up to ``days`` (extended block by block)."""

    days: int = 0
    hourly: np.ndarray = field(default_factory=lambda: np.zeros((0, HOURS)))  # returns without the pull
    wick: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, HOURS)))
    volume_noise: np.ndarray = field(default_factory=lambda: np.zeros((0, HOURS)))
    events: list = field(default_factory=list)  # per day: [(minute, tone, strength, scope)]
    headline_draws: list = field(default_factory=list)  # per day: (template picks, filler count, fillers)
    starts: np.ndarray = field(default_factory=lambda: np.zeros(1))
    lock: threading.Lock = field(default_factory=threading.Lock)


# Shared by every SyntheticMarket with the same seed and epoch: the path is a pure function of them.
_PATHS: dict[tuple[int, datetime, str], _SymbolPath] = {}
_PATHS_LOCK = threading.Lock()


@dataclass(frozen=True)
class SyntheticMarket:
    seed: int = 7
    epoch: datetime = DEFAULT_EPOCH
    name: str = "synthetic"

    # -- blocks of random draws ------------------------------------------------------------
    def _block_events(self, symbol: str, block: int) -> list[list[tuple[float, int, float, str]]]:
        """Per day of the block: sorted (minutes after day start, tone, drift strength, scope)."""
        market = np.random.default_rng([self.seed, 0, block, 1])
        own = np.random.default_rng([self.seed, stable_key(symbol), block, 1])
        m_count = market.integers(0, MARKET_SLOTS + 1, BLOCK_DAYS)
        m_minute = market.uniform(0, 1440, (BLOCK_DAYS, MARKET_SLOTS))
        m_tone = market.choice([-1, 1], (BLOCK_DAYS, MARKET_SLOTS))
        m_strength = market.uniform(0.0008, 0.0018, (BLOCK_DAYS, MARKET_SLOTS))
        s_count = own.integers(1, SYMBOL_SLOTS + 1, BLOCK_DAYS)
        s_minute = own.uniform(0, 1440, (BLOCK_DAYS, SYMBOL_SLOTS))
        s_tone = own.choice([-1, 1], (BLOCK_DAYS, SYMBOL_SLOTS))
        s_strength = own.uniform(0.0010, 0.0025, (BLOCK_DAYS, SYMBOL_SLOTS))
        days = []
        for d in range(BLOCK_DAYS):
            events = [
                (float(m_minute[d, i]), int(m_tone[d, i]), float(m_strength[d, i]), "market")
                for i in range(int(m_count[d]))
            ]
            events += [
                (float(s_minute[d, i]), int(s_tone[d, i]), float(s_strength[d, i]), "symbol")
                for i in range(int(s_count[d]))
            ]
            days.append(sorted(events))
        return days

    def _extend(self, symbol: str, path: _SymbolPath, days_needed: int) -> None:
        """Draw whole blocks until ``days_needed`` days exist, then recompute the levels."""
        if path.days >= days_needed:
            return
        key, beta = stable_key(symbol), _beta(symbol)
        hourly, wick, volume, events, draws = [path.hourly], [path.wick], [path.volume_noise], [], []
        for block in range(path.days // BLOCK_DAYS, -(-days_needed // BLOCK_DAYS)):
            market = np.random.default_rng([self.seed, 0, block])
            regime = np.exp(0.35 * market.normal(size=(BLOCK_DAYS, 1)))
            market_returns = market.normal(0.0, 1.0, (BLOCK_DAYS, HOURS)) * MARKET_VOL * regime
            own = np.random.default_rng([self.seed, key, block])
            own_regime = np.exp(0.25 * own.normal(size=(BLOCK_DAYS, 1)))
            idio = own.normal(0.0, 1.0, (BLOCK_DAYS, HOURS)) * IDIO_VOL * own_regime
            hourly.append(beta * market_returns + idio)
            shape = np.random.default_rng([self.seed, key, block, 2])
            wick.append(np.abs(shape.normal(0.0, 0.0015, (BLOCK_DAYS, 2, HOURS))))
            volume.append(shape.lognormal(0.0, 0.35, (BLOCK_DAYS, HOURS)))
            events.extend(self._block_events(symbol, block))
            text = np.random.default_rng([self.seed, key, block, 3])
            picks = text.uniform(size=(BLOCK_DAYS, MARKET_SLOTS + SYMBOL_SLOTS))
            totals = text.integers(4, 13, BLOCK_DAYS)
            filler_picks = text.uniform(size=(BLOCK_DAYS, FILLER_SLOTS))
            filler_minutes = text.uniform(0, 1440, (BLOCK_DAYS, FILLER_SLOTS))
            draws.extend(zip(picks, totals, filler_picks, filler_minutes, strict=True))
        path.events.extend(events)
        path.headline_draws.extend(draws)
        path.hourly = np.concatenate(hourly)
        path.wick = np.concatenate(wick)
        path.volume_noise = np.concatenate(volume)
        path.days = len(path.hourly)
        # News drift over the whole timeline: an event at minute m of day d moves bars opening
        # from floor(m / 60) + 1 hours after the day starts, for len(NEWS_DECAY) hours.
        drift = np.zeros(path.days * HOURS + HOURS)
        for day, day_events in enumerate(path.events):
            for minute, tone, strength, _scope in day_events:
                first = day * HOURS + int(minute // 60) + 1
                drift[first : first + len(NEWS_DECAY)] += tone * strength * NEWS_DECAY[: len(drift) - first]
        path.hourly_news = drift[: path.days * HOURS].reshape(path.days, HOURS)
        day_sums = (path.hourly + path.hourly_news).sum(axis=1)
        # L[d + 1] = (1 - k) L[d] + S[d], L[0] = 0 (the pull sums to -k L[d] over a day)
        path.starts = np.concatenate([[0.0], lfilter([1.0], [1.0, -(1.0 - MEAN_REVERSION_PER_DAY)], day_sums)])

    def _path(self, symbol: str, last_day: int) -> _SymbolPath:
        with _PATHS_LOCK:
            path = _PATHS.setdefault((self.seed, self.epoch, symbol), _SymbolPath())
        with path.lock:
            self._extend(symbol, path, last_day + 1)
        return path

    def _day_events(self, symbol: str, day: int) -> list[tuple[float, int, float, str]]:
        return self._path(symbol, day).events[day]

    # -- prices --------------------------------------------------------------------------
    def _day_index(self, when: pd.Timestamp) -> int:
        if when < pd.Timestamp(self.epoch):
            raise ValueError(f"{when.isoformat()} is before the synthetic market's epoch {self.epoch.isoformat()}")
        return (when - pd.Timestamp(self.epoch)).days

    def _days(self, start: pd.Timestamp, end: pd.Timestamp) -> range:
        first = self._day_index(start)
        last = self._day_index(end - pd.Timedelta(microseconds=1))
        return range(first, last + 1)

    def ohlcv(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        days = self._days(start_ts, end_ts)
        path = self._path(symbol, days[-1])
        sl = slice(days[0], days[-1] + 1)
        start_levels = path.starts[sl][:, None]
        returns = path.hourly[sl] + path.hourly_news[sl] - MEAN_REVERSION_PER_DAY * start_levels / HOURS
        log_close = start_levels + np.cumsum(returns, axis=1)
        log_open = np.concatenate([start_levels, log_close[:, :-1]], axis=1)
        base = _base_price(symbol)
        close, open_ = base * np.exp(log_close), base * np.exp(log_open)
        spread = path.wick[sl]
        high = np.maximum(open_, close) * np.exp(spread[:, 0])
        low = np.minimum(open_, close) * np.exp(-spread[:, 1])
        volume = (base**-0.5) * 5e4 * path.volume_noise[sl] * (1.0 + 60.0 * np.abs(returns))
        ts = pd.date_range(pd.Timestamp(self.epoch) + pd.Timedelta(days=days[0]), periods=len(days) * HOURS, freq="h")
        bars = pd.DataFrame(
            {
                "ts": ts,
                "open": open_.ravel(),
                "high": high.ravel(),
                "low": low.ravel(),
                "close": close.ravel(),
                "volume": volume.ravel(),
            }
        )
        bars = bars[(bars["ts"] >= start_ts) & (bars["ts"] < end_ts)].reset_index(drop=True)
        return bars[list(OHLCV_COLUMNS)]

    # -- headlines -----------------------------------------------------------------------
    def news_events(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        rows = []
        days = self._days(start_ts, end_ts)
        path = self._path(symbol, days[-1])
        for day in days:
            day_start = pd.Timestamp(self.epoch) + pd.Timedelta(days=day)
            for minute, tone, strength, scope in path.events[day]:
                rows.append((day_start + pd.Timedelta(minutes=minute).floor("s"), symbol, tone, strength, scope))
        events = pd.DataFrame(rows, columns=["published_at", "symbol", "tone", "strength", "scope"])
        events["published_at"] = pd.to_datetime(events["published_at"], utc=True)
        return events[(events["published_at"] >= start_ts) & (events["published_at"] < end_ts)].reset_index(drop=True)

    def headlines(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        start_ts, end_ts = require_utc_window(start, end)
        name = asset_name(symbol)
        rows = []
        days = self._days(start_ts, end_ts)
        path = self._path(symbol, days[-1])
        for day in days:
            day_start = pd.Timestamp(self.epoch) + pd.Timedelta(days=day)
            picks, total, filler_picks, filler_minutes = path.headline_draws[day]
            events = path.events[day]
            for slot, (minute, tone, _strength, scope) in enumerate(events):
                if scope == "market":
                    template = MARKET_POSITIVE if tone > 0 else MARKET_NEGATIVE
                else:
                    options = POSITIVE_HEADLINES if tone > 0 else NEGATIVE_HEADLINES
                    template = options[int(picks[slot] * len(options))]
                rows.append((day_start + pd.Timedelta(minutes=minute).floor("s"), template.format(name=name)))
            for i in range(max(0, int(total) - len(events))):
                template = NEUTRAL_HEADLINES[int(filler_picks[i] * len(NEUTRAL_HEADLINES))]
                rows.append(
                    (day_start + pd.Timedelta(minutes=float(filler_minutes[i])).floor("s"), template.format(name=name))
                )
        frame = pd.DataFrame(rows, columns=["published_at", "headline"])
        frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
        frame["symbol"] = symbol
        frame["source"] = "synthetic-wire"
        frame = frame[(frame["published_at"] >= start_ts) & (frame["published_at"] < end_ts)]
        return frame.sort_values("published_at", kind="stable").reset_index(drop=True)[list(HEADLINE_COLUMNS)]
