"""Hourly bars and order books from a crypto exchange's public REST API, through ccxt.

No credentials: only public market data endpoints are used (markets, klines, depth).

Symbols: pipeline symbols are concatenated pairs ("BTCUSDT"); they map to ccxt's unified
symbols by splitting off a known quote currency: spot "BTC/USDT", USDT-margined perpetual
(``market_type="swap"``) "BTC/USDT:USDT". ``symbols_map`` overrides the mapping per symbol.
A symbol the exchange does not list raises SourceDataMissing.

Candles: timeframe '1h', requested page by page with ``since`` (and ``until``) and the
exchange's page limit (ccxt's ``features`` for the market, else 500) until an empty page or
the last wanted bar. Every request goes through ccxt's rate limiter (``enableRateLimit``): its
per-endpoint cost is ccxt's, only the wait itself is routed through the injected ``sleep`` so
the source can be driven without real sleeping. Transient failures (ccxt NetworkError and its
DDoSProtection / RateLimitExceeded / ExchangeNotAvailable / RequestTimeout, which is what ccxt
raises for HTTP 429 / 418 / 5xx / timeouts) are retried with exponential backoff
(``backoff_s * 2**n``); after ``max_retries`` retries SourceError names the symbol and the time
being fetched.

Returned rows follow csv_dir's shape: OHLCV columns plus ``placed_at``, ``reject_reason`` and
``raw``. Only closed bars (open + 1h <= now) in [start, end) are returned. Identical duplicate
candles collapse to one; candles that share an open time but differ are all returned as
rejected rows (nobody can tell which is right), as are candles whose open time is not a whole
hour; the rest is sorted by time and left to the OHLCV contract. A body that is not JSON, or a
candle that ccxt cannot read into numbers, raises SourceFormatError naming the symbol.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import ccxt
import pandas as pd

from pipeline_assets.sources.base import (
    OHLCV_COLUMNS,
    SourceDataMissing,
    SourceError,
    SourceFormatError,
    require_utc_window,
)

TIMEFRAME = "1h"
HOUR_MS = 3_600_000
DEFAULT_PAGE_LIMIT = 500
MARKET_TYPES = ("spot", "swap")
OUTPUT_COLUMNS = (*OHLCV_COLUMNS, "placed_at", "reject_reason", "raw")
# Quote currencies recognised at the end of a pipeline symbol, longest first so "FDUSD" wins over "USD".
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "TRY", "BTC", "ETH", "BNB")
# ccxt's transient failures (HTTP 418/429 -> DDoSProtection/RateLimitExceeded, 5xx -> ExchangeNotAvailable
# or RequestTimeout, connection errors -> NetworkError); all of them are NetworkError subclasses in ccxt.
RETRYABLE = (
    ccxt.NetworkError,
    ccxt.DDoSProtection,
    ccxt.RateLimitExceeded,
    ccxt.ExchangeNotAvailable,
    ccxt.RequestTimeout,
)


def to_ccxt_symbol(symbol: str, market_type: str = "spot") -> str | None:
    """Map "BTCUSDT" to "BTC/USDT" (spot) or "BTC/USDT:USDT" (swap: linear perpetual settled in the
    quote currency). A symbol already in ccxt form is returned unchanged; None if no known quote
    currency ends the symbol."""
    if "/" in symbol:
        return symbol
    upper = symbol.upper()
    for quote in QUOTES:
        if upper.endswith(quote) and len(upper) > len(quote):
            base = upper[: -len(quote)]
            return f"{base}/{quote}" if market_type == "spot" else f"{base}/{quote}:{quote}"
    return None


def make_exchange(exchange_id: str = "binance", market_type: str = "spot") -> ccxt.Exchange:
    """A ccxt exchange for public market data of ``market_type``, rate limited, without credentials."""
    if market_type not in MARKET_TYPES:
        raise ValueError(f"market_type={market_type!r}: expected one of {MARKET_TYPES}")
    exchange_class = getattr(ccxt, exchange_id, None)
    if not (isinstance(exchange_class, type) and issubclass(exchange_class, ccxt.Exchange)):
        raise ValueError(f"exchange_id={exchange_id!r} is not a ccxt exchange")
    exchange = exchange_class({"enableRateLimit": True, "options": {"defaultType": market_type}})
    # Load only the market list that is needed (binance-like exchanges list their market types in
    # options.fetchMarkets.types; e.g. binance would otherwise also fetch the inverse futures).
    fetch_markets = exchange.options.get("fetchMarkets")
    if isinstance(fetch_markets, dict) and isinstance(fetch_markets.get("types"), list):
        wanted = ["spot"] if market_type == "spot" else ["linear", "swap"]
        chosen = [t for t in wanted if t in fetch_markets["types"]][:1]
        if chosen:
            fetch_markets["types"] = chosen
    replay = os.environ.get("PIPELINE_EXCHANGE_REPLAY")
    if replay:
        # offline: answer ccxt's requests from recorded responses (sources/replay.py)
        from pipeline_assets.sources.replay import load_replay

        exchange.session = load_replay(replay)
    return exchange


def _ms(value: pd.Timestamp) -> int:
    return int(value.value // 1_000_000)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def _holds_a_list(value: Any, depth: int = 3) -> bool:
    if isinstance(value, list):
        return True
    return depth > 0 and isinstance(value, dict) and any(_holds_a_list(v, depth - 1) for v in value.values())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ExchangeSource:
    """OhlcvSource over a ccxt exchange (see the module docstring)."""

    def __init__(
        self,
        exchange_id: str = "binance",
        market_type: str = "spot",
        symbols_map: Mapping[str, str] | None = None,
        exchange: ccxt.Exchange | None = None,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | None = None,
    ):
        if market_type not in MARKET_TYPES:
            raise ValueError(f"market_type={market_type!r}: expected one of {MARKET_TYPES}")
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries} must be >= 0")
        self.exchange_id = exchange_id
        self.market_type = market_type
        self.name = f"exchange:{exchange_id}:{market_type}"
        self.symbols_map = dict(symbols_map or {})
        self.exchange = exchange if exchange is not None else make_exchange(exchange_id, market_type)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._now = now or (lambda: datetime.now(UTC))
        # Always rate limited; ccxt computes the wait per endpoint, we only own the sleeping.
        self.exchange.enableRateLimit = True
        self.exchange.throttle = self._throttle
        # Keep the last response body, raw and decoded, to tell "not JSON" from "no candles".
        self.exchange.enableLastHttpResponse = True
        self.exchange.enableLastJsonResponse = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> ExchangeSource:
        """PIPELINE_EXCHANGE (default binance), PIPELINE_MARKET_TYPE (spot | swap, default spot)."""
        env = os.environ if environ is None else environ
        exchange_id = (env.get("PIPELINE_EXCHANGE") or "binance").strip().lower()
        market_type = (env.get("PIPELINE_MARKET_TYPE") or "spot").strip().lower()
        if market_type not in MARKET_TYPES:
            raise ValueError(f"PIPELINE_MARKET_TYPE={market_type!r}: expected one of {MARKET_TYPES}")
        return cls(exchange_id=exchange_id, market_type=market_type, **kwargs)

    # ---- rate limit and retries -------------------------------------------------------------

    def _throttle(self, cost: float | None = None) -> None:
        """ccxt's Exchange.throttle (wait rateLimit * cost ms since the previous request), sleeping
        through the injected ``sleep``."""
        exchange = self.exchange
        elapsed = exchange.milliseconds() - exchange.lastRestRequestTimestamp
        wait_ms = exchange.rateLimit * (1 if cost is None else cost) - elapsed
        if wait_ms > 0:
            self._sleep(wait_ms / 1000.0)

    def _call(self, what: str, symbol: str, method: Callable[..., Any], *args: Any) -> Any:
        """``method(*args)`` with retries on transient errors; ccxt errors become SourceErrors."""
        attempt = 0
        while True:
            self.exchange.last_http_response = None
            self.exchange.last_json_response = None
            try:
                return method(*args)
            except RETRYABLE as exc:
                if attempt >= self.max_retries:
                    raise SourceError(
                        f"{self.name} {what}: still failing after {attempt + 1} attempts ({type(exc).__name__}: {exc})"
                    ) from exc
                self._sleep(self.backoff_s * 2**attempt)
                attempt += 1
            except ccxt.BadSymbol as exc:
                raise SourceDataMissing(
                    f"{self.name} {what}: {self.exchange_id} does not list {symbol}: {exc}"
                ) from exc
            except ccxt.BadResponse as exc:
                raise SourceFormatError(f"{self.name} {what}: unreadable response: {exc}") from exc
            except ccxt.BaseError as exc:
                raise SourceError(f"{self.name} {what}: {type(exc).__name__}: {exc}") from exc
            except (TypeError, ValueError, KeyError, IndexError) as exc:
                # ccxt's parsers choke on bodies of the wrong shape (e.g. a JSON object or text
                # where a list was expected); that is a malformed response, not a bug to hide.
                raise SourceFormatError(
                    f"{self.name} {what}: malformed response ({type(exc).__name__}: {exc}); "
                    f"body starts {self._body_start()!r}"
                ) from exc

    def _body_start(self) -> str:
        body = self.exchange.last_http_response
        return "" if body is None else str(body)[:200]

    def _require_json(self, what: str) -> Any:
        """The decoded body of the response just received; SourceFormatError if it was not JSON."""
        body = self.exchange.last_http_response
        decoded = self.exchange.last_json_response
        if decoded is None and body is not None:  # ccxt hands back the text of a body it cannot decode
            raise SourceFormatError(f"{self.name} {what}: the response is not valid JSON: {str(body)[:200]!r}")
        return decoded

    # ---- markets ----------------------------------------------------------------------------

    def ccxt_symbol(self, symbol: str) -> str:
        mapped = self.symbols_map.get(symbol) or to_ccxt_symbol(symbol, self.market_type)
        if mapped is None:
            raise SourceDataMissing(
                f"{self.name}: cannot map {symbol} to a {self.exchange_id} symbol (no known quote currency "
                f"{QUOTES}); add it to symbols_map"
            )
        return mapped

    def _market(self, symbol: str) -> tuple[str, dict]:
        ccxt_symbol = self.ccxt_symbol(symbol)
        markets = self._call(f"{symbol}: loading markets", symbol, self.exchange.load_markets)
        if not isinstance(markets, dict) or ccxt_symbol not in markets:
            raise SourceDataMissing(
                f"{symbol} ({ccxt_symbol}) is not listed on {self.exchange_id} ({self.market_type} markets)"
            )
        return ccxt_symbol, markets[ccxt_symbol]

    def _page_limit(self, ccxt_symbol: str) -> int:
        try:
            limit = self.exchange.feature_value(ccxt_symbol, "fetchOHLCV", "limit", DEFAULT_PAGE_LIMIT)
        except (ccxt.BaseError, KeyError, TypeError):
            limit = DEFAULT_PAGE_LIMIT
        return int(limit) if _is_number(limit) and limit > 0 else DEFAULT_PAGE_LIMIT

    # ---- candles ----------------------------------------------------------------------------

    def ohlcv(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Closed hourly bars with open time in [start, end) (columns OUTPUT_COLUMNS, time order);
        rows with ``reject_reason`` set are for the quarantine, the rest for the OHLCV contract."""
        start_ts, end_ts = require_utc_window(start, end)
        ccxt_symbol, market = self._market(symbol)
        if TIMEFRAME not in (self.exchange.timeframes or {}):
            raise SourceError(f"{self.name}: {self.exchange_id} has no {TIMEFRAME} candles (asked for {symbol})")
        now_ms = _ms(pd.Timestamp(self._now()).tz_convert("UTC"))
        first_ms = math.ceil(start_ts.value / 1_000_000)
        last_open_ms = min(_ms(end_ts) - (0 if end_ts.value % 1_000_000 else 1), now_ms - HOUR_MS)
        limit = self._page_limit(ccxt_symbol)
        candles: list[list] = []
        cursor = first_ms
        while cursor <= last_open_ms:
            page = self._page(symbol, ccxt_symbol, market, cursor, last_open_ms, limit)
            if not page:
                break
            candles.extend(page)
            newest = max(candle[0] for candle in page)
            if (newest // HOUR_MS + 1) * HOUR_MS > last_open_ms:
                break  # the next bar would open after the last one wanted: no need to ask for an empty page
            cursor = newest + 1
        candles = [c for c in candles if first_ms <= c[0] <= last_open_ms]
        return self._frame(candles)

    def _page(self, symbol: str, ccxt_symbol: str, market: dict, since: int, until: int, limit: int) -> list[list]:
        what = f"{symbol} ({ccxt_symbol}) {TIMEFRAME} candles since {_iso(since)}"
        page = self._call(
            what, symbol, self.exchange.fetch_ohlcv, ccxt_symbol, TIMEFRAME, since, limit, {"until": until}
        )
        body = self._require_json(what)
        if not isinstance(page, list):
            raise SourceFormatError(f"{self.name} {what}: expected a list of candles, got {type(page).__name__}")
        for candle in page:
            if not isinstance(candle, list | tuple) or len(candle) < 6:
                raise SourceFormatError(f"{self.name} {what}: malformed candle {candle!r}")
            ts = candle[0]
            if not isinstance(ts, int) or isinstance(ts, bool):
                raise SourceFormatError(f"{self.name} {what}: candle without a usable open time: {candle!r}")
            if not all(_is_number(v) for v in candle[1:6]):
                raise SourceFormatError(
                    f"{self.name} {symbol} candle at {_iso(ts)}: a value is not a number: {candle[:6]!r}"
                )
        if not page and isinstance(body, dict) and body and not _holds_a_list(body):
            # ccxt reads a JSON object of the wrong shape as "no candles"; an answer without any
            # list in it cannot be a (possibly empty) list of candles.
            raise SourceFormatError(f"{self.name} {what}: expected candles, got {json.dumps(body)[:200]}")
        if isinstance(body, list) and len(page) < len(body):
            # ccxt drops rows whose open time it cannot read (and rows before `since`); the former
            # are malformed data, not an empty page.
            for row in body:
                parsed = self.exchange.parse_ohlcv(row, market)
                if not isinstance(parsed, list) or not isinstance(parsed[0], int) or isinstance(parsed[0], bool):
                    raise SourceFormatError(f"{self.name} {what}: row without a usable open time: {row!r}")
        return [[int(c[0]), *(float(v) for v in c[1:6])] for c in page]

    def _frame(self, candles: list[list]) -> pd.DataFrame:
        rows: list[dict] = []
        distinct = []
        keys_seen: set[tuple] = set()
        for candle in candles:  # identical duplicates collapse (repr so that NaN equals NaN)
            key = tuple(repr(v) for v in candle)
            if key not in keys_seen:
                keys_seen.add(key)
                distinct.append(candle)
        versions: dict[int, int] = {}
        for candle in distinct:
            versions[candle[0]] = versions.get(candle[0], 0) + 1
        for candle in distinct:
            ts = candle[0]
            reason = None
            if ts % HOUR_MS:
                reason = f"ts={_iso(ts)} is not a whole hour ({TIMEFRAME} bars open on the hour)"
            elif versions[ts] > 1:
                reason = f"{versions[ts]} conflicting candles for ts={_iso(ts)}"
            rows.append(
                {
                    "ts": ts,
                    **dict(zip(OHLCV_COLUMNS[1:], candle[1:6], strict=True)),
                    "reject_reason": reason,
                    "raw": json.dumps(candle),
                }
            )
        frame = pd.DataFrame(rows, columns=["ts", *OHLCV_COLUMNS[1:], "reject_reason", "raw"])
        frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), unit="ms", utc=True).astype("datetime64[us, UTC]")
        for column in OHLCV_COLUMNS[1:]:
            frame[column] = frame[column].astype("float64")
        frame["placed_at"] = frame["ts"]
        frame["reject_reason"] = frame["reject_reason"].astype(object).where(frame["reject_reason"].notna(), None)
        frame = frame.sort_values(["placed_at", "raw"], kind="stable").reset_index(drop=True)
        return frame[list(OUTPUT_COLUMNS)]

    # ---- order book -------------------------------------------------------------------------

    def order_book(self, symbol: str, limit: int = 10) -> dict:
        """{'bids': [[price, qty], ...] best first, 'asks': [...], 'timestamp': UTC Timestamp}. The
        timestamp is the exchange's; when it sends none (binance spot) it is the time of the fetch."""
        ccxt_symbol, _ = self._market(symbol)
        fetched_at = pd.Timestamp(self._now()).tz_convert("UTC")
        what = f"{symbol} ({ccxt_symbol}) order book (limit {limit}) at {fetched_at.isoformat()}"
        book = self._call(what, symbol, self.exchange.fetch_order_book, ccxt_symbol, limit)
        self._require_json(what)
        if not isinstance(book, dict):
            raise SourceFormatError(f"{self.name} {what}: expected an order book, got {type(book).__name__}")
        sides = {side: self._levels(what, side, book.get(side)) for side in ("bids", "asks")}
        stamp = book.get("timestamp")
        if stamp is None:
            timestamp = fetched_at
        elif _is_number(stamp):
            timestamp = pd.Timestamp(int(stamp), unit="ms", tz="UTC")
        else:
            raise SourceFormatError(f"{self.name} {what}: unreadable timestamp {stamp!r}")
        return {"bids": sides["bids"], "asks": sides["asks"], "timestamp": timestamp}

    def _levels(self, what: str, side: str, levels: Any) -> list[list[float]]:
        if not isinstance(levels, list):
            raise SourceFormatError(f"{self.name} {what}: {side} is not a list: {levels!r}")
        out = []
        for level in levels:
            if not isinstance(level, list | tuple) or len(level) < 2 or not all(_is_number(v) for v in level[:2]):
                raise SourceFormatError(f"{self.name} {what}: malformed {side} level {level!r}")
            out.append([float(level[0]), float(level[1])])
        return out
