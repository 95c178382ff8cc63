"""ExchangeSource against recorded Binance REST responses, offline.

Replay happens at the HTTP layer: the exchange's ``session`` (the requests.Session that ccxt's
Exchange.fetch sends every request through) is replaced by FakeBinance, which answers by URL
path and query with recorded bodies (../shared/fixtures/exchange/binance_recorded_responses.json),
hand-built market lists (tests/fixtures/exchange_handbuilt/), generated candles in the recorded
row format, or scripted error statuses. So ccxt's own code runs unchanged: request signing and
rate-limit costs, JSON decoding, HTTP status -> exception mapping (binance: 429 -> DDoSProtection,
5xx -> ExchangeNotAvailable / RequestTimeout) and parsing. Sockets are blocked for every test.
"""

from __future__ import annotations

import json
import os
import socket
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import ccxt
import pandas as pd
import pytest
import requests
from requests.structures import CaseInsensitiveDict

from pipeline_assets.sources.base import SourceDataMissing, SourceError, SourceFormatError
from pipeline_assets.sources.exchange import OUTPUT_COLUMNS, ExchangeSource, make_exchange, to_ccxt_symbol

# ../shared beside the checkout holds the recorded responses (as in CI's clone)
RECORDED = Path(
    os.environ.get(
        "EXCHANGE_RECORDED_FIXTURE",
        Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "exchange" / "binance_recorded_responses.json",
    )
)
HANDBUILT = Path(__file__).parent / "fixtures" / "exchange_handbuilt"
HOUR_MS = 3_600_000
SPOT_KLINES, FAPI_KLINES = "/api/v3/klines", "/fapi/v1/klines"
SPOT_DEPTH, FAPI_DEPTH = "/api/v3/depth", "/fapi/v1/depth"
EXCHANGE_INFO = {
    "/api/v3/exchangeInfo": "binance_spot_exchangeInfo.json",
    "/fapi/v1/exchangeInfo": "binance_fapi_exchangeInfo.json",
}
T0 = datetime(2024, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2030, 1, 1, tzinfo=UTC)


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(RECORDED.read_text())


def recorded_case(recorded: dict, method: str, description: str) -> dict:
    return next(case for case in recorded["methods"][method] if case["description"] == description)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to resolve or connect fails loudly, so a test cannot reach the internet."""

    def refuse(*args, **kwargs):
        raise RuntimeError(f"network disabled in tests: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def kline_row(open_ms: int, close: float = 100.0, **overrides) -> list:
    """A kline in Binance's wire format (as in the recorded fetchOHLCV responses): 12 fields,
    prices and volumes as strings."""
    row = [
        open_ms,
        f"{close - 1:.8f}",
        f"{close + 2:.8f}",
        f"{close - 3:.8f}",
        f"{close:.8f}",
        "20.55495000",
        open_ms + HOUR_MS - 1,
        "891428.42858070",
        3743,
        "10.91428000",
        "473782.95739920",
        "0",
    ]
    for index, value in overrides.items():
        row[int(index.lstrip("f"))] = value
    return row


def hourly_rows(start: datetime, hours: int) -> list[list]:
    first = ms(start)
    return [kline_row(first + i * HOUR_MS, close=100.0 + i) for i in range(hours)]


class FakeBinance:
    """Stands in for the requests.Session inside ccxt's Exchange.fetch (see the module docstring)."""

    MAX_REQUESTS = 200  # a pagination loop that never ends fails instead of hanging

    def __init__(self):
        self.cookies = requests.cookies.RequestsCookieJar()
        self.headers = CaseInsensitiveDict()
        self.requests: list[tuple[str, dict]] = []
        self.scripts: dict[str, deque] = defaultdict(deque)
        self.candles: dict[tuple[str, str], list[list]] = {}
        self.books: dict[tuple[str, str], dict] = {}

    # -- test set-up
    def script(self, path: str, *replies: tuple[int, object] | tuple[int, object, dict]) -> None:
        """Next requests to ``path`` get these (status, body[, headers]) replies, in order; a str
        body is sent as is, anything else as JSON."""
        self.scripts[path].extend(replies)

    def calls(self, path: str) -> list[dict]:
        return [params for called, params in self.requests if called == path]

    # -- the requests.Session interface ccxt uses
    def close(self) -> None:
        pass

    def request(self, method, url, data=None, headers=None, timeout=None, proxies=None, verify=None, files=None):
        parts = urlsplit(url)
        assert parts.hostname in ("api.binance.com", "fapi.binance.com"), url
        assert method == "GET" and data is None, (method, url, data)
        params = dict(parse_qsl(parts.query))
        self.requests.append((parts.path, params))
        assert len(self.requests) <= self.MAX_REQUESTS, "too many requests"
        if self.scripts[parts.path]:
            status, body, *extra = self.scripts[parts.path].popleft()
            return self._response(url, status, body, extra[0] if extra else {})
        if parts.path in EXCHANGE_INFO:
            return self._response(url, 200, (HANDBUILT / EXCHANGE_INFO[parts.path]).read_text())
        if parts.path in (SPOT_KLINES, FAPI_KLINES):
            return self._klines(url, parts.path, params)
        if parts.path in (SPOT_DEPTH, FAPI_DEPTH) and (parts.path, params["symbol"]) in self.books:
            return self._response(url, 200, self.books[(parts.path, params["symbol"])])
        return self._response(url, 404, {"code": -1, "msg": f"no replay for {parts.path}"})

    def _klines(self, url: str, path: str, params: dict):
        rows = self.candles.get((path, params["symbol"]))
        if rows is None:
            return self._response(url, 400, {"code": -1121, "msg": "Invalid symbol."})
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        limit = min(int(params.get("limit", 500)), 1000 if path == SPOT_KLINES else 1500)
        chosen = sorted((r for r in rows if start <= r[0] <= end), key=lambda r: r[0])[:limit]
        return self._response(url, 200, chosen)

    @staticmethod
    def _response(url: str, status: int, body: object, headers: dict | None = None) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.reason = HTTPStatus(status).phrase
        response.url = url
        text = body if isinstance(body, str) else json.dumps(body)
        response._content = text.encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json;charset=UTF-8", **(headers or {})})
        response.encoding = "utf-8"
        return response


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def replay_source(market_type: str = "spot", now: datetime = FAR_FUTURE, **kwargs):
    server = FakeBinance()
    exchange = make_exchange("binance", market_type)
    exchange.session = server
    sleeps = Sleeps()
    source = ExchangeSource("binance", market_type, exchange=exchange, sleep=sleeps, now=lambda: now, **kwargs)
    return source, server, sleeps


def valid(bars: pd.DataFrame) -> pd.DataFrame:
    return bars[bars["reject_reason"].isna()].reset_index(drop=True)


# ---- recorded responses ----------------------------------------------------------------------


def test_recorded_spot_klines_parse_like_ccxt_recorded_them(recorded):
    case = recorded_case(recorded, "fetchOHLCV", "Spot OHLCV with since and limit")
    symbol, timeframe, since, _ = case["input"]
    assert (symbol, timeframe) == ("BTC/USDT", "1h")
    source, server, _ = replay_source()
    server.script(SPOT_KLINES, (200, case["httpResponse"]), (200, []))
    start = datetime.fromtimestamp(since / 1000, tz=UTC)
    bars = source.ohlcv("BTCUSDT", start, start + timedelta(hours=4))

    first = server.calls(SPOT_KLINES)[0]
    assert first["symbol"] == "BTCUSDT" and first["interval"] == "1h" and int(first["startTime"]) == since
    assert list(bars.columns) == list(OUTPUT_COLUMNS)
    assert bars["reject_reason"].isna().all()
    expected = case["parsedResponse"]
    assert [int(t.timestamp() * 1000) for t in bars["ts"]] == [row[0] for row in expected]
    assert bars[["open", "high", "low", "close", "volume"]].to_numpy().tolist() == [row[1:] for row in expected]
    assert str(bars["ts"].dtype) == "datetime64[us, UTC]"
    assert all(str(bars[c].dtype) == "float64" for c in ("open", "high", "low", "close", "volume"))


@pytest.mark.parametrize(
    ("market_type", "path", "description", "when"),
    [
        ("spot", SPOT_DEPTH, "spot orderbook", None),  # binance spot depth has no timestamp
        ("swap", FAPI_DEPTH, "swap orderbook", pd.Timestamp(1706803917258, unit="ms", tz="UTC")),
    ],
)
def test_order_book_from_recorded_response(recorded, market_type, path, description, when):
    case = recorded_case(recorded, "fetchOrderBook", description)
    ccxt_symbol, limit = case["input"]
    now = datetime(2024, 2, 1, 16, 12, tzinfo=UTC)
    source, server, sleeps = replay_source(market_type, now=now, backoff_s=3.0)
    server.script(path, (429, {"code": -1003, "msg": "Too many requests."}), (200, case["httpResponse"]))

    book = source.order_book("BTCUSDT", limit=limit)

    assert source.ccxt_symbol("BTCUSDT") == ccxt_symbol
    assert book["bids"] == case["parsedResponse"]["bids"]
    assert book["asks"] == case["parsedResponse"]["asks"]
    assert all(isinstance(v, float) for level in book["bids"] + book["asks"] for v in level)
    assert book["timestamp"] == (when if when is not None else pd.Timestamp(now))
    assert str(book["timestamp"].tz) == "UTC"
    assert server.calls(path) == [{"symbol": "BTCUSDT", "limit": str(limit)}] * 2  # the 429 was retried
    assert [s for s in sleeps if s >= 3.0] == [3.0]


def test_order_book_malformed_levels_are_format_errors():
    source, server, _ = replay_source()
    server.script(SPOT_DEPTH, (200, {"lastUpdateId": 1, "bids": [["x", "1"]], "asks": []}))
    with pytest.raises(SourceFormatError, match="BTCUSDT"):
        source.order_book("BTCUSDT")


# ---- pagination and rate limit ---------------------------------------------------------------


def test_paginates_with_since_and_the_exchange_limit():
    source, server, _ = replay_source()
    server.candles[(SPOT_KLINES, "BTCUSDT")] = hourly_rows(T0 - timedelta(days=2), 24 * 70)
    end = T0 + timedelta(days=60)
    bars = source.ohlcv("BTCUSDT", T0, end)

    calls = server.calls(SPOT_KLINES)
    assert [int(c["limit"]) for c in calls] == [1000, 1000]  # binance spot: 1000 per page
    assert int(calls[0]["startTime"]) == ms(T0)
    assert int(calls[1]["startTime"]) == ms(T0) + 999 * HOUR_MS + 1  # after the last bar of page 1
    assert {int(c["endTime"]) for c in calls} == {ms(end) - 1}
    assert len(bars) == 24 * 60 and bars["reject_reason"].isna().all()
    assert bars["ts"].iloc[0] == pd.Timestamp(T0) and bars["ts"].iloc[-1] == pd.Timestamp(end - timedelta(hours=1))
    assert (bars["ts"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert bars["close"].iloc[0] == 100.0 + 48  # the generated series starts two days earlier


def test_swap_maps_to_the_usdt_perpetual_and_uses_futures_endpoints():
    source, server, _ = replay_source("swap")
    assert source.name == "exchange:binance:swap"
    assert source.ccxt_symbol("BTCUSDT") == "BTC/USDT:USDT"
    server.candles[(FAPI_KLINES, "BTCUSDT")] = hourly_rows(T0, 24 * 30)
    bars = source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=30))

    assert len(bars) == 24 * 30
    assert [int(c["limit"]) for c in server.calls(FAPI_KLINES)] == [500, 500]  # ccxt features: 500 for linear
    paths = [path for path, _ in server.requests]
    assert paths[0] == "/fapi/v1/exchangeInfo" and set(paths[1:]) == {FAPI_KLINES}
    market = source.exchange.markets["BTC/USDT:USDT"]
    assert market["swap"] and market["linear"] and market["id"] == "BTCUSDT" and market["expiry"] is None
    assert "BTC/USDT" not in source.exchange.markets  # only the futures market list was loaded


def test_every_request_waits_for_the_rate_limiter():
    source, server, sleeps = replay_source()
    assert source.exchange.enableRateLimit is True
    source.exchange.milliseconds = lambda: 1_700_000_000_000  # a frozen clock: no time passes between requests
    server.candles[(SPOT_KLINES, "BTCUSDT")] = hourly_rows(T0, 24 * 50)
    source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=50))

    assert [path for path, _ in server.requests] == ["/api/v3/exchangeInfo", SPOT_KLINES, SPOT_KLINES]
    # the first request has no predecessor to wait for; each later one waits rateLimit * cost, with
    # ccxt's binance spot cost for klines: 0.4 (weight 2 of 6000 per minute)
    rate = source.exchange.rateLimit / 1000
    assert sleeps == [pytest.approx(0.4 * rate)] * 2


# ---- retries ---------------------------------------------------------------------------------


def test_429_is_retried_with_exponential_backoff():
    source, server, sleeps = replay_source(backoff_s=3.0)
    server.candles[(SPOT_KLINES, "BTCUSDT")] = hourly_rows(T0, 48)
    too_many = (429, {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."})
    server.script(SPOT_KLINES, too_many, too_many)
    bars = source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=2))

    assert len(bars) == 48
    assert [int(c["startTime"]) for c in server.calls(SPOT_KLINES)] == [ms(T0)] * 3
    assert [s for s in sleeps if s >= 3.0] == [3.0, 6.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_until_retries_are_exhausted_is_a_source_error(status):
    source, server, sleeps = replay_source(max_retries=3, backoff_s=3.0)
    server.candles[(SPOT_KLINES, "ETHUSDT")] = hourly_rows(T0, 48)
    server.script(
        SPOT_KLINES, *[(status, "<html><body>upstream error</body></html>", {"Content-Type": "text/html"})] * 4
    )
    with pytest.raises(SourceError, match=r"ETHUSDT .*since 2024-01-01T00:00:00\+00:00.*4 attempts") as caught:
        source.ohlcv("ETHUSDT", T0, T0 + timedelta(days=2))

    assert not isinstance(caught.value, SourceDataMissing | SourceFormatError)
    assert isinstance(caught.value.__cause__, ccxt.NetworkError)
    assert len(server.calls(SPOT_KLINES)) == 4
    assert [s for s in sleeps if s >= 3.0] == [3.0, 6.0, 12.0]


# ---- what comes back -------------------------------------------------------------------------


def test_only_closed_bars_are_returned():
    now = T0 + timedelta(hours=10, minutes=30)  # the 10:00 bar is still open
    source, server, _ = replay_source(now=now)
    rows = hourly_rows(T0, 11)  # 00:00 .. 10:00
    server.script(SPOT_KLINES, (200, rows))  # a server that sends the open bar anyway
    bars = source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=1))

    assert int(server.calls(SPOT_KLINES)[0]["endTime"]) == ms(now) - HOUR_MS  # newest bar open that has closed
    assert bars["ts"].max() == pd.Timestamp(T0 + timedelta(hours=9)) and len(bars) == 10


def test_bar_closing_exactly_now_is_kept():
    now = T0 + timedelta(hours=10)
    source, server, _ = replay_source(now=now)
    server.candles[(SPOT_KLINES, "BTCUSDT")] = hourly_rows(T0, 24)
    bars = source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=1))
    assert len(bars) == 10 and bars["ts"].max() == pd.Timestamp(T0 + timedelta(hours=9))


def test_duplicates_out_of_order_and_unaligned_candles():
    source, server, _ = replay_source()
    h = [ms(T0) + i * HOUR_MS for i in range(5)]
    page = [
        kline_row(h[2], 102.0),
        kline_row(h[0], 100.0),
        kline_row(h[1], 101.0),
        kline_row(h[1], 101.0),  # identical duplicate: collapses
        kline_row(h[3], 103.0),
        kline_row(h[3], 999.0),  # same open time, other values: both rejected
        kline_row(h[1] + 30 * 60_000, 101.5),  # 01:30 is no 1h bar open
        kline_row(h[4], 104.0),
    ]
    server.script(SPOT_KLINES, (200, page))
    server.candles[(SPOT_KLINES, "BTCUSDT")] = []  # then the exchange has nothing more
    bars = source.ohlcv("BTCUSDT", T0, T0 + timedelta(hours=6))

    good = valid(bars)
    assert good["ts"].tolist() == [pd.Timestamp(T0 + timedelta(hours=i)) for i in (0, 1, 2, 4)]
    assert good["close"].tolist() == [100.0, 101.0, 102.0, 104.0]
    rejected = bars[bars["reject_reason"].notna()]
    conflicting = rejected[rejected["reject_reason"].str.contains("conflicting")]
    assert sorted(conflicting["close"]) == [103.0, 999.0]
    assert (conflicting["placed_at"] == pd.Timestamp(T0 + timedelta(hours=3))).all()
    unaligned = rejected[rejected["reject_reason"].str.contains("not a whole hour")]
    assert unaligned["ts"].tolist() == [pd.Timestamp(T0 + timedelta(hours=1, minutes=30))]
    assert "01:30" in unaligned["reject_reason"].iloc[0]
    assert len(rejected) == 3
    assert bars["placed_at"].is_monotonic_increasing
    assert json.loads(unaligned["raw"].iloc[0])[0] == h[1] + 30 * 60_000


def test_an_empty_page_ends_pagination():
    source, server, _ = replay_source()
    server.candles[(SPOT_KLINES, "BTCUSDT")] = hourly_rows(T0, 10)  # listed data stops after 10 hours
    bars = source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=3))

    calls = server.calls(SPOT_KLINES)
    assert len(calls) == 2 and int(calls[1]["startTime"]) == ms(T0) + 9 * HOUR_MS + 1
    assert len(bars) == 10


def test_window_already_covered_makes_no_candle_request():
    source, server, _ = replay_source(now=T0 + timedelta(minutes=30))
    server.candles[(SPOT_KLINES, "BTCUSDT")] = hourly_rows(T0, 10)
    bars = source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=1))
    assert bars.empty and list(bars.columns) == list(OUTPUT_COLUMNS)
    assert server.calls(SPOT_KLINES) == []


# ---- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ['[[1704067200000,"43519.34000000","43936.0', "<html>maintenance</html>", ""],
    ids=["truncated", "html", "empty"],
)
def test_malformed_json_is_a_format_error(body):
    source, server, _ = replay_source()
    server.script(SPOT_KLINES, (200, body))
    with pytest.raises(SourceFormatError, match=r"BTCUSDT.*not valid JSON"):
        source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=1))


def test_malformed_json_order_book_is_a_format_error():
    source, server, _ = replay_source()
    server.script(SPOT_DEPTH, (200, '{"lastUpdateId": 25445101, "bids": [["42574.30000000", "0.0107'))
    with pytest.raises(SourceFormatError, match=r"BTCUSDT.*not valid JSON"):
        source.order_book("BTCUSDT")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (kline_row(ms(T0) + HOUR_MS, f1="not-a-price"), r"BTCUSDT candle at 2024-01-01T01:00:00\+00:00"),
        (kline_row(ms(T0) + HOUR_MS, f5=None), r"BTCUSDT candle at 2024-01-01T01:00:00\+00:00"),
        (["yesterday", "1", "2", "0.5", "1.5", "10"], r"BTCUSDT .*usable open time"),
        ([ms(T0) + HOUR_MS, "1", "2"], r"BTCUSDT candle at 2024-01-01T01:00:00\+00:00"),
        ({"openTime": ms(T0), "open": "1"}, r"BTCUSDT"),
    ],
    ids=["non-numeric price", "null volume", "unreadable time", "short row", "object row"],
)
def test_malformed_rows_are_format_errors(row, message):
    source, server, _ = replay_source()
    server.script(SPOT_KLINES, (200, [kline_row(ms(T0)), row]))
    with pytest.raises(SourceFormatError, match=message):
        source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=1))


def test_a_json_object_instead_of_candles_is_a_format_error():
    source, server, _ = replay_source()
    server.script(SPOT_KLINES, (200, {"unexpected": "shape"}))
    with pytest.raises(SourceFormatError, match="BTCUSDT"):
        source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=1))


def test_symbol_the_exchange_does_not_list_is_missing_data():
    source, server, _ = replay_source()
    with pytest.raises(SourceDataMissing, match=r"XRPUSDT.*binance"):
        source.ohlcv("XRPUSDT", T0, T0 + timedelta(days=1))
    assert server.calls(SPOT_KLINES) == []
    with pytest.raises(SourceDataMissing, match=r"XRPUSDT.*binance"):
        source.order_book("XRPUSDT")
    with pytest.raises(SourceDataMissing, match=r"NOTAPAIR.*binance"):
        source.ohlcv("NOTAPAIR", T0, T0 + timedelta(days=1))


def test_exchange_refusing_the_symbol_is_missing_data():
    source, server, _ = replay_source()
    # listed in exchangeInfo, but the klines endpoint answers -1121 Invalid symbol (ccxt: BadSymbol)
    with pytest.raises(SourceDataMissing, match=r"ETHUSDT.*binance"):
        source.ohlcv("ETHUSDT", T0, T0 + timedelta(days=1))


def test_unreachable_market_list_is_a_source_error_naming_the_symbol():
    source, server, sleeps = replay_source(max_retries=1, backoff_s=3.0)
    server.script("/api/v3/exchangeInfo", *[(503, "Service Unavailable", {"Content-Type": "text/plain"})] * 2)
    with pytest.raises(SourceError, match=r"BTCUSDT: loading markets.*2 attempts"):
        source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=1))
    assert [s for s in sleeps if s >= 3.0] == [3.0]


# ---- configuration ---------------------------------------------------------------------------


def test_symbol_mapping():
    assert to_ccxt_symbol("BTCUSDT") == "BTC/USDT"
    assert to_ccxt_symbol("BTCUSDT", "swap") == "BTC/USDT:USDT"
    assert to_ccxt_symbol("ETHBTC") == "ETH/BTC"
    assert to_ccxt_symbol("SOLFDUSD") == "SOL/FDUSD"
    assert to_ccxt_symbol("ETH/USDT") == "ETH/USDT"
    assert to_ccxt_symbol("USDT") is None and to_ccxt_symbol("FOO") is None
    source, server, _ = replay_source(symbols_map={"XBT": "BTC/USDT"})
    server.candles[(SPOT_KLINES, "BTCUSDT")] = hourly_rows(T0, 24)
    assert len(source.ohlcv("XBT", T0, T0 + timedelta(days=1))) == 24


def test_from_env(monkeypatch):
    monkeypatch.delenv("PIPELINE_EXCHANGE", raising=False)
    monkeypatch.delenv("PIPELINE_MARKET_TYPE", raising=False)
    default = ExchangeSource.from_env()
    assert default.name == "exchange:binance:spot" and isinstance(default.exchange, ccxt.binance)
    assert default.exchange.options["fetchMarkets"]["types"] == ["spot"]
    assert default.exchange.enableRateLimit is True and not default.exchange.apiKey

    monkeypatch.setenv("PIPELINE_EXCHANGE", "binance")
    monkeypatch.setenv("PIPELINE_MARKET_TYPE", "swap")
    swap = ExchangeSource.from_env()
    assert swap.name == "exchange:binance:swap" and swap.ccxt_symbol("ETHUSDT") == "ETH/USDT:USDT"
    assert swap.exchange.options["fetchMarkets"]["types"] == ["linear"]

    monkeypatch.setenv("PIPELINE_MARKET_TYPE", "margin")
    with pytest.raises(ValueError, match="margin"):
        ExchangeSource.from_env()
    monkeypatch.setenv("PIPELINE_MARKET_TYPE", "spot")
    monkeypatch.setenv("PIPELINE_EXCHANGE", "nosuchexchange")
    with pytest.raises(ValueError, match="nosuchexchange"):
        ExchangeSource.from_env()


def test_sockets_are_blocked_for_an_unreplayed_exchange():
    source = ExchangeSource(sleep=lambda s: None)  # a real ccxt.binance with its real session
    with pytest.raises(RuntimeError, match="network disabled"):
        source.ohlcv("BTCUSDT", T0, T0 + timedelta(days=1))


def test_naive_window_is_refused():
    source, _, _ = replay_source()
    with pytest.raises(ValueError, match="naive"):
        source.ohlcv("BTCUSDT", datetime(2024, 1, 1), datetime(2024, 1, 2))
