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
