"""Derivatives feeds: contracts (reasons for every refused row), the synthetic feeds' consistency
with the bars, and the four raw assets on real PostgreSQL with quarantine and blocking checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, run_assets

from pipeline_assets.contracts.derivatives import DERIVATIVE_CONTRACTS, validate_feed
from pipeline_assets.sources.derivatives import SyntheticDerivatives
from pipeline_assets.sources.synthetic import SyntheticMarket
from pipeline_assets.store.db import connect
from pipeline_assets.store.warehouse import truncate_all

START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=3)


@pytest.fixture(scope="module")
def feeds():
    market = SyntheticMarket()
    source = SyntheticDerivatives(market)
    return market, {f: getattr(source, f)("BTCUSDT", START, END) for f in DERIVATIVE_CONTRACTS}


def test_synthetic_feeds_follow_their_contracts_and_the_bars(feeds):
    market, data = feeds
    for feed, frame in data.items():
        result = validate_feed(DERIVATIVE_CONTRACTS[feed], frame.assign(source="synthetic"), START, END)
        assert result.rejected.empty and len(result.valid) == len(frame) > 0, feed
        assert (frame["available_at"] >= frame["ts"]).all()
    funding = data["funding"]
    assert set(funding["ts"].dt.hour) == {0, 8, 16} and len(funding) == 9
    bars = market.ohlcv("BTCUSDT", START - timedelta(hours=9), END).set_index("ts")["close"]
    # the premium of the 8 bars closed by the settlement (the bar opening at it closes an hour later)
    closed = funding["ts"] - pd.Timedelta(hours=1)
    premium = np.log(bars.loc[closed].to_numpy() / bars.loc[closed - pd.Timedelta(hours=8)].to_numpy())
    assert np.corrcoef(premium, funding["funding_rate"])[0, 1] > 0.95  # funding follows the premium
    oi = data["open_interest"]
    assert len(oi) == 72 and (oi["available_at"] == oi["ts"] + pd.Timedelta(hours=1, minutes=5)).all()
    liq = data["liquidations"]
    ohlc = market.ohlcv("BTCUSDT", START, END).set_index("ts")
    hour = liq["ts"].dt.floor("h")
    assert (
        (liq["price"] >= ohlc.loc[hour, "low"].to_numpy()) & (liq["price"] <= ohlc.loc[hour, "high"].to_numpy())
    ).all()
    fell = (ohlc.loc[hour, "close"] < ohlc.loc[hour, "open"]).to_numpy()
    assert (liq["side"].to_numpy() == np.where(fell, "sell", "buy")).all()
    # the same hour in any window
    again = SyntheticDerivatives(market).open_interest("BTCUSDT", START + timedelta(days=1), END)
    pd.testing.assert_frame_equal(again, oi[oi["ts"] >= START + timedelta(days=1)].reset_index(drop=True))


def test_contracts_refuse_bad_rows_with_their_reasons(feeds):
    _, data = feeds
    funding = data["funding"].assign(source="x").reset_index(drop=True)
    funding.loc[0, "funding_rate"] = 0.5
    funding.loc[1, "funding_rate"] = np.nan
    funding.loc[2, "ts"] = funding.loc[2, "ts"] + pd.Timedelta(minutes=30)
    funding.loc[3, "available_at"] = funding.loc[3, "ts"] - pd.Timedelta(hours=1)
    extra = funding.iloc[[4]].assign(funding_rate=0.001)  # same key, another value
    result = validate_feed(DERIVATIVE_CONTRACTS["funding"], pd.concat([funding, extra]), START, END)
    reasons = result.rejected["reason"].tolist()
    assert any("beyond the configured bound" in r for r in reasons)
    assert any("non-finite" in r for r in reasons)
    assert any("not on the hour" in r for r in reasons)
    assert any("available_at before ts" in r for r in reasons)
    assert sum("conflicting rows" in r for r in reasons) == 2
    liq = data["liquidations"].assign(source="x").reset_index(drop=True)
    liq.loc[0, "side"] = "long"
    liq.loc[1, "size"] = -1.0
    bad = validate_feed(DERIVATIVE_CONTRACTS["liquidations"], liq, START, END).rejected
    assert set(bad["reason"]) == {"side not buy/sell", "size or price not positive"}
    oi = data["open_interest"].assign(source="x").reset_index(drop=True)
    oi.loc[0, "open_interest"] = -5.0
    assert validate_feed(DERIVATIVE_CONTRACTS["open_interest"], oi, START, END).rejected["reason"].tolist() == [
        "negative open interest"
    ]
    ls = data["long_short_ratio"].assign(source="x").reset_index(drop=True)
    ls.loc[0, "long_short_ratio"] = 0.0
    assert len(validate_feed(DERIVATIVE_CONTRACTS["long_short_ratio"], ls, START, END).rejected) == 1


def test_the_four_raw_assets_store_their_tables(warehouse_url):
    with connect(warehouse_url) as conn, conn.transaction():
        truncate_all(conn)
    names = ["raw_funding_rates", "raw_open_interest", "raw_liquidations", "raw_long_short_ratio"]
    result = run_assets(
        names, warehouse_url, partition_range=("2024-03-01", "2024-03-02"), instance=DagsterInstance.ephemeral()
    )
    checks = {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}
    assert checks == dict.fromkeys(names, True)
    assert count(warehouse_url, "SELECT count(*) FROM raw_open_interest") == 2 * 24 * 4
    assert count(warehouse_url, "SELECT count(*) FROM raw_funding_rates") == 2 * 3 * 4
    assert count(warehouse_url, "SELECT count(*) FROM raw_liquidations") > 0
    assert count(warehouse_url, "SELECT count(*) FROM raw_long_short_ratio WHERE venue = 'synthetic'") == 2 * 24 * 4
    # idempotent
    run_assets(names, warehouse_url, partition_range=("2024-03-01", "2024-03-02"), instance=DagsterInstance.ephemeral())
    assert count(warehouse_url, "SELECT count(*) FROM raw_open_interest") == 2 * 24 * 4


def test_aligned_grid_is_as_of_availability_with_staleness_and_gaps():
    from pipeline_assets.features.aligned import align

    hours = pd.date_range("2024-03-01 00:00", periods=12, freq="h", tz="UTC")
    bars = pd.DataFrame({"ts": hours, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}).drop(index=5)
    oi = pd.DataFrame({"ts": hours[:4], "open_interest": [10.0, 11.0, 12.0, 13.0]})
    oi["available_at"] = oi["ts"] + pd.Timedelta(hours=1, minutes=5)  # published 5 min after the hour closes
    funding = pd.DataFrame(
        {"ts": [hours[0], hours[8]], "funding_rate": [0.001, 0.002], "available_at": [hours[0], hours[8]]}
    )
    liq = pd.DataFrame(
        {
            "ts": [
                hours[2] + pd.Timedelta(minutes=10),
                hours[2] + pd.Timedelta(minutes=50),
                hours[3] + pd.Timedelta(minutes=1),
            ],
            "side": ["sell", "sell", "buy"],
            "size": [1.0, 2.0, 3.0],
            "price": [10.0, 10.0, 10.0],
        }
    )
    liq["available_at"] = liq["ts"]
    watched = np.ones(len(hours), dtype=bool)
    watched[10] = False  # the liquidation stream did not watch all of hour 10
    out = align("BTCUSDT", hours, bars, {"open_interest": oi, "funding": funding}, liq, watched).set_index("ts")
    # the OI of hour 0 is published at 01:05: the bar closing at 01:00 cannot see it, the next one can
    assert np.isnan(out.loc[hours[0], "open_interest"]) and out.loc[hours[1], "open_interest"] == 10.0
    assert out.loc[hours[1], "oi_staleness_h"] == 2.0
    # beyond 3 hours of staleness the value is missing, not carried forward; the age still says why
    assert out.loc[hours[5], "open_interest"] == 13.0 and np.isnan(out.loc[hours[6], "open_interest"])
    assert out.loc[hours[6], "oi_staleness_h"] == 4.0
    # funding paid at 00:00 is the value until the 08:00 one is known (at the close of 07:00's bar)
    assert out.loc[hours[6], "funding_rate"] == 0.001 and out.loc[hours[6], "funding_staleness_h"] == 7.0
    assert out.loc[hours[7], "funding_rate"] == 0.002 and out.loc[hours[7], "funding_staleness_h"] == 0.0
    assert out.loc[hours[5], "bar_missing"] and np.isnan(out.loc[hours[5], "close"])
    assert out.loc[hours[2], "liq_sell_notional"] == 30.0 and out.loc[hours[2], "liq_count"] == 2
    assert out.loc[hours[3], "liq_buy_notional"] == 30.0 and out.loc[hours[4], "liq_count"] == 0
    assert np.isnan(out["long_short_ratio"]).all()  # a feed without data is missing everywhere
    # an unwatched hour's liquidations are missing, not 0; a watched hour without events is 0
    assert out.loc[hours[10], ["liq_buy_notional", "liq_sell_notional", "liq_count"]].isna().all()
    assert out.loc[hours[11], ["liq_buy_notional", "liq_sell_notional", "liq_count"]].tolist() == [0.0, 0.0, 0]
    with pytest.raises(ValueError, match="BTCUSDT: liquidations_watched"):
        align("BTCUSDT", hours, bars, {}, liq, watched[:-1])


def test_market_aligned_asset_on_the_warehouse(warehouse_url):
    with connect(warehouse_url) as conn, conn.transaction():
        truncate_all(conn)
    names = ["raw_ohlcv", "raw_funding_rates", "raw_open_interest", "raw_liquidations", "raw_long_short_ratio"]
    instance = DagsterInstance.ephemeral()
    run_assets(names, warehouse_url, partition_range=("2024-03-01", "2024-03-02"), instance=instance)
    run_assets(["market_aligned"], warehouse_url, partition_key="2024-03-02", instance=instance)
    assert count(warehouse_url, "SELECT count(*) FROM market_aligned") == 24 * 4
    assert count(warehouse_url, "SELECT count(*) FROM market_aligned WHERE bar_missing") == 0
    # hourly feeds are at most 2 hours old at a bar's close; funding at most 9
    assert count(warehouse_url, "SELECT max(oi_staleness_h) FROM market_aligned") == 2.0
    assert count(warehouse_url, "SELECT count(*) FROM market_aligned WHERE open_interest IS NULL") == 0
    assert count(warehouse_url, "SELECT max(funding_staleness_h) FROM market_aligned") <= 9.0
    # the synthetic source covers every hour it generates: no liquidation value is missing
    assert count(warehouse_url, "SELECT count(*) FROM market_aligned WHERE liq_count IS NULL") == 0
    assert count(warehouse_url, "SELECT count(*) FROM market_aligned WHERE liq_count > 0") > 0
    assert count(warehouse_url, "SELECT count(DISTINCT symbol) FROM liquidation_watch WHERE venue = 'synthetic'") == 4
    # the derivatives family from the stored grid
    run_assets(["ml_features_derivatives"], warehouse_url, partition_key="2024-03-02", instance=instance)
    from pipeline_assets.features.families import FAMILIES
    from pipeline_assets.store.frames import read_frame

    family = FAMILIES["derivatives"]
    with connect(warehouse_url) as conn:
        grid = read_frame(conn, "SELECT * FROM market_aligned ORDER BY symbol, ts")
        stored = read_frame(
            conn, f"SELECT symbol, ts, {', '.join(family.columns)} FROM ml_features_derivatives ORDER BY symbol, ts"
        )
    expected = family.compute_days(grid, ["2024-03-02"], sorted(grid["symbol"].unique()))
    pd.testing.assert_frame_equal(stored, expected.sort_values(["symbol", "ts"], ignore_index=True), check_dtype=False)
    assert stored["oi_staleness_h"].max() == 2.0 and stored["log_long_short_ratio"].notna().all()


def test_synthetic_funding_uses_only_bars_closed_by_the_settlement():
    market = SyntheticMarket()

    class Shocked:  # the bar opening at each settlement (it closes an hour after) moves a lot
        name = "synthetic"

        def ohlcv(self, symbol, start, end):
            bars = market.ohlcv(symbol, start, end)
            at_settlement = bars["ts"].dt.hour % 8 == 0
            bars.loc[at_settlement, ["open", "high", "low", "close"]] *= 1.5
            return bars

    base = SyntheticDerivatives(market).funding("BTCUSDT", START, END)
    shocked = SyntheticDerivatives(Shocked()).funding("BTCUSDT", START, END)
    pd.testing.assert_frame_equal(base, shocked)
