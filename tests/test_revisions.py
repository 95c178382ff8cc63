"""Event time vs availability time, and a restated bar kept as history: point-in-time reads see
what was known then, current reads the latest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, metadata_of, run_assets

from pipeline_assets.resources import MarketDataResource
from pipeline_assets.sources.csv_dir import write_csv
from pipeline_assets.sources.synthetic import SyntheticMarket
from pipeline_assets.store.db import connect
from pipeline_assets.store.revisions import read_ohlcv_as_of
from pipeline_assets.store.warehouse import read_ohlcv, truncate_all

DAY = "2024-03-05"
START = datetime(2024, 3, 5, tzinfo=UTC)


def test_a_restated_bar_is_history_and_point_in_time_reads_see_the_old_value(warehouse_url, tmp_path):
    url = warehouse_url
    with connect(url) as conn, conn.transaction():
        truncate_all(conn)
    bars = SyntheticMarket(seed=7).ohlcv("BTCUSDT", START, START + timedelta(days=1))
    write_csv(bars, tmp_path / "BTCUSDT.csv")
    market = MarketDataResource(ohlcv_source="csv", csv_directory=str(tmp_path))
    instance = DagsterInstance.ephemeral()
    run_assets(["raw_ohlcv"], url, partition_key=DAY, instance=instance, market=market)
    assert count(url, "SELECT count(*) FROM raw_ohlcv WHERE available_at <> ts + interval '1 hour'") == 0
    with connect(url) as conn:
        (first_written,) = conn.execute("SELECT now()").fetchone()

    # the vendor restates one bar (a corrected close)
    corrected = bars.copy()
    at = corrected.index[10]
    corrected.loc[at, "close"] = corrected.loc[at, "close"] * 1.01
    corrected.loc[at, "high"] = max(corrected.loc[at, "high"], corrected.loc[at, "close"])
    write_csv(corrected, tmp_path / "BTCUSDT.csv")
    result = run_assets(["raw_ohlcv"], url, partition_key=DAY, instance=instance, market=market)
    assert metadata_of(result, "raw_ohlcv")["bars_restated"] == 1
    restated_ts = bars.loc[at, "ts"]
    assert count(url, "SELECT count(*) FROM raw_ohlcv_history") == 1
    with connect(url) as conn:
        (revised_at,) = conn.execute("SELECT available_at FROM raw_ohlcv WHERE ts = %s", (restated_ts,)).fetchone()
        (superseded,) = conn.execute("SELECT superseded_at FROM raw_ohlcv_history").fetchone()
        current = read_ohlcv(conn, ["BTCUSDT"], START, START + timedelta(days=1))
        before = read_ohlcv_as_of(conn, ["BTCUSDT"], START, START + timedelta(days=1), first_written)
        after = read_ohlcv_as_of(conn, ["BTCUSDT"], START, START + timedelta(days=1), revised_at)
        midday = read_ohlcv_as_of(conn, ["BTCUSDT"], START, START + timedelta(days=1), START + timedelta(hours=12))
    assert revised_at == superseded > first_written
    row = lambda frame: frame.set_index("ts").loc[restated_ts]  # noqa: E731
    assert row(current)["close"] == pytest.approx(corrected.loc[at, "close"])
    assert row(after)["close"] == pytest.approx(corrected.loc[at, "close"])
    assert row(before)["close"] == pytest.approx(bars.loc[at, "close"])  # what a backtest then saw
    assert len(before) == len(after) == 24
    # at noon only the bars that had closed by noon were known
    assert len(midday) == 12 and midday["ts"].max() == pd.Timestamp("2024-03-05 11:00", tz="UTC")
    # re-ingesting the same data restates nothing and keeps the revision's availability time
    again = run_assets(["raw_ohlcv"], url, partition_key=DAY, instance=instance, market=market)
    assert metadata_of(again, "raw_ohlcv")["bars_restated"] == 0
    with connect(url) as conn:
        (kept,) = conn.execute("SELECT available_at FROM raw_ohlcv WHERE ts = %s", (restated_ts,)).fetchone()
    assert kept == revised_at
    assert count(url, "SELECT count(*) FROM raw_ohlcv_history") == 1
