"""Exchange derivatives feeds through ccxt's own parsing, replayed at the HTTP layer from
hand-built Binance USD-M payloads (shapes from ccxt's source comments and Binance's API docs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_exchange_source import replay_source

from pipeline_assets.contracts.derivatives import DERIVATIVE_CONTRACTS, validate_feed
from pipeline_assets.sources.base import SourceDataMissing, SourceError
from pipeline_assets.sources.derivatives import ExchangeDerivatives

START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1)
MS = 1_000


def _ms(t: datetime) -> int:
    return int(t.timestamp() * MS)


def test_funding_open_interest_and_long_short_from_replayed_binance():
    source, server, sleeps = replay_source("swap", now=END + timedelta(hours=2), backoff_s=1.0)
    # hand-built: /fapi/v1/fundingRate (settles a few ms after the hour), a 429 first
    server.script(
        "/fapi/v1/fundingRate",
        (429, {"code": -1003, "msg": "Too many requests."}),
        (200, [
            {"symbol": "BTCUSDT", "fundingTime": _ms(START + timedelta(hours=h)) + 7, "fundingRate": "0.00010000",
             "markPrice": "61000.1"} for h in (0, 8, 16)
        ]),
    )  # fmt: skip
    server.script(
        "/futures/data/openInterestHist",
        (200, [
            {"symbol": "BTCUSDT", "sumOpenInterest": f"{80000 + h}.5", "sumOpenInterestValue": f"{5e9 + h:.1f}",
             "timestamp": _ms(START + timedelta(hours=h))} for h in range(24)
        ]),
    )  # fmt: skip
    server.script(
        "/futures/data/globalLongShortAccountRatio",
        (200, [
            {"symbol": "BTCUSDT", "longShortRatio": "1.2500", "longAccount": "0.5556", "shortAccount": "0.4444",
             "timestamp": _ms(START + timedelta(hours=h))} for h in range(24)
        ]),
    )  # fmt: skip
    feeds = ExchangeDerivatives(source)
    funding = feeds.funding("BTCUSDT", START, END)
    assert funding["ts"].dt.hour.tolist() == [0, 8, 16] and (funding["funding_rate"] == 0.0001).all()
    assert [s for s in sleeps if s >= 1.0] == [1.0]  # the 429 was retried with backoff
    oi = feeds.open_interest("BTCUSDT", START, END)
    assert len(oi) == 24 and oi["open_interest"].iloc[3] == 80003.5 and oi["open_interest_value"].iloc[0] == 5e9
    ls = feeds.long_short_ratio("BTCUSDT", START, END)
    assert (ls["long_short_ratio"] == 1.25).all() and ls["long_account"].iloc[0] == pytest.approx(0.5556)
    for feed, frame in (("funding", funding), ("open_interest", oi), ("long_short_ratio", ls)):
        result = validate_feed(DERIVATIVE_CONTRACTS[feed], frame.assign(source=source.name), START, END)
        assert result.rejected.empty and (result.valid["venue"] == "binance:swap").all(), feed
    requested = dict(server.calls("/futures/data/openInterestHist")[0])
    assert requested["period"] == "1h" and requested["symbol"] == "BTCUSDT"
    with pytest.raises(SourceDataMissing, match="no liquidation history over REST"):
        feeds.liquidations("BTCUSDT", START, END)


def test_an_exhausted_retry_names_the_symbol_and_a_spot_source_is_refused():
    source, server, _ = replay_source("swap", now=END, max_retries=1)
    server.script("/fapi/v1/fundingRate", (503, "Service Unavailable"), (503, "Service Unavailable"))
    with pytest.raises(SourceError, match="BTCUSDT"):
        ExchangeDerivatives(source).funding("BTCUSDT", START, END)
    spot, _, _ = replay_source("spot")
    with pytest.raises(ValueError, match="market_type='swap'"):
        ExchangeDerivatives(spot)


def test_the_open_interest_asset_from_the_exchange_reports_the_hours_it_could_not_get(warehouse_url, monkeypatch):
    from dagster import DagsterInstance
    from dagster_helpers import count, metadata_of, run_assets

    from pipeline_assets.assets import _common
    from pipeline_assets.assets import derivatives as derivative_assets
    from pipeline_assets.resources import MarketDataResource
    from pipeline_assets.store.db import connect
    from pipeline_assets.store.warehouse import truncate_all

    with connect(warehouse_url) as conn, conn.transaction():
        truncate_all(conn)
    now = END + timedelta(days=40)  # the day asked for is beyond the exchange's 30 days
    source, server, _ = replay_source("swap", now=now)
    rows = [
        {"symbol": "X", "sumOpenInterest": "100.0", "sumOpenInterestValue": "1000.0",
         "timestamp": _ms(START + timedelta(hours=h))}
        for h in range(20)
    ]  # fmt: skip
    server.script("/futures/data/openInterestHist", (200, rows), (200, rows))  # BTCUSDT, ETHUSDT
    monkeypatch.setattr(MarketDataResource, "exchange", lambda self, market_type=None: source)
    monkeypatch.setattr(_common, "utc_now", lambda: now)
    monkeypatch.setattr(derivative_assets, "utc_now", lambda: now)
    result = run_assets(
        ["raw_open_interest"],
        warehouse_url,
        partition_key="2024-03-01",
        instance=DagsterInstance.ephemeral(),
        market=MarketDataResource(ohlcv_source="exchange"),
    )
    meta = metadata_of(result, "raw_open_interest")
    assert count(warehouse_url, "SELECT count(*) FROM raw_open_interest WHERE venue = 'binance:swap'") == 2 * 20
    assert meta["hours_missing"]["BTCUSDT"]["hours"] == 4
    assert "older than the exchange's history" in meta["hours_missing"]["BTCUSDT"]["reason"]
    assert set(meta["symbols_without_data"]) == {"BNBUSDT", "SOLUSDT"}
