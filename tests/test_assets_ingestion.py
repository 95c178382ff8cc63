from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from dagster import DagsterInstance
from dagster_helpers import count, metadata_of, run_assets

from pipeline_assets.partitions import SYMBOLS, symbol_day_key
from pipeline_assets.resources import MarketDataResource
from pipeline_assets.sources.csv_dir import write_csv
from pipeline_assets.sources.synthetic import SyntheticMarket
from pipeline_assets.store.db import connect

DAY = "2024-03-05"
START = datetime(2024, 3, 5, tzinfo=UTC)
END = datetime(2024, 3, 6, tzinfo=UTC)


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_rematerialising_a_partition_leaves_row_counts_unchanged(warehouse_url):
    first = run_assets(["raw_ohlcv", "raw_sentiment"], warehouse_url, DAY)
    rows = count(warehouse_url, "SELECT count(*) FROM raw_ohlcv")
    headlines = count(warehouse_url, "SELECT count(*) FROM raw_sentiment")
    assert rows == 24 * len(SYMBOLS) and headlines >= 4 * len(SYMBOLS)
    assert metadata_of(first, "raw_ohlcv")["rows_inserted"] == rows
    assert all(_checks(first).values()) and set(_checks(first)) == {
        "no_nan",
        "high_gte_low",
        "positive_prices",
        "unique_monotonic_utc_ts",
        "complete_day",
        "no_vendor_filled_bars",
    }

    second = run_assets(["raw_ohlcv", "raw_sentiment"], warehouse_url, DAY)
    assert count(warehouse_url, "SELECT count(*) FROM raw_ohlcv") == rows
    assert count(warehouse_url, "SELECT count(*) FROM raw_sentiment") == headlines
    meta = metadata_of(second, "raw_ohlcv")
    assert (meta["rows_inserted"], meta["rows_updated"], meta["rows_unchanged"]) == (0, 0, rows)
    # stored bars are exactly the source's bars
    with connect(warehouse_url) as conn:
        stored = conn.execute("SELECT close FROM raw_ohlcv WHERE symbol = 'BTCUSDT' ORDER BY ts").fetchall()
    expected = SyntheticMarket().ohlcv("BTCUSDT", START, END)["close"].tolist()
    assert [r[0] for r in stored] == expected


def _csv_with_bad_rows(tmp_path) -> pd.DataFrame:
    bars = SyntheticMarket().ohlcv("ETHUSDT", START, END).reset_index(drop=True)
    bars.loc[3, "close"] = np.nan
    bars.loc[7, ["high", "low"]] = [bars.loc[7, "low"] - 1, bars.loc[7, "high"] + 1]
    bars.loc[11, "open"] = -5.0
    conflicting = bars.iloc[[15]].assign(volume=bars.loc[15, "volume"] * 2)
    frame = pd.concat([bars, conflicting], ignore_index=True)
    write_csv(frame, tmp_path / "ETHUSDT.csv")
    return frame


def test_bad_rows_go_to_quarantine_with_reasons(warehouse_url, tmp_path):
    _csv_with_bad_rows(tmp_path)
    market = MarketDataResource(ohlcv_source="csv", csv_directory=str(tmp_path))
    key = symbol_day_key(DAY, "ETHUSDT")
    for _ in range(2):  # re-materialising replaces the partition's quarantine rows
        result = run_assets(["raw_ohlcv"], warehouse_url, DAY, market=market)
    assert count(warehouse_url, "SELECT count(*) FROM raw_ohlcv") == 24 - 4
    with connect(warehouse_url) as conn:
        rows = conn.execute(
            "SELECT extract(hour FROM ts)::int, reason, partition_key FROM quarantine ORDER BY ts, reason"
        ).fetchall()
    reasons = {(hour, reason) for hour, reason, _ in rows}
    assert (3, "NaN in close") in reasons
    assert (7, "high < low") in reasons
    assert any(hour == 11 and "non-positive price in open" in reason for hour, reason in reasons)
    assert [(h, r) for h, r in reasons if h == 15] == [(15, "conflicting duplicate ts (2 different bars)")]
    assert len(rows) == 5 and {pk for *_, pk in rows} == {key}
    assert metadata_of(result, "raw_ohlcv")["quarantined_rows_in_run"] == 5
    assert metadata_of(result, "raw_ohlcv", DAY)["quarantined_rows"] == 5
    assert all(_checks(result)[c] for c in ("no_nan", "high_gte_low", "positive_prices"))
    assert _checks(result)["complete_day"] is False  # 4 hours missing, and the other symbols have no file
    complete_day = next(e for e in result.get_asset_check_evaluations() if e.check_name == "complete_day")
    without_data = complete_day.metadata["symbols_without_data"].value
    assert set(without_data) == set(SYMBOLS) - {"ETHUSDT"} and "no CSV for" in without_data["BTCUSDT"]


def test_failed_blocking_check_stops_downstream_assets(warehouse_url, tmp_path):
    bars = SyntheticMarket().ohlcv("SOLUSDT", START, END).iloc[:23]
    write_csv(bars, tmp_path / "SOLUSDT.csv")
    # A corrupt bar written out of band (not by the contract-checked path) for 23:00.
    with connect(warehouse_url) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO raw_ohlcv (symbol, ts, open, high, low, close, volume, source) "
            "VALUES ('SOLUSDT', '2024-03-05T23:00Z', 'NaN', 1, 2, 1, 1, 'manual')"
        )
    market = MarketDataResource(ohlcv_source="csv", csv_directory=str(tmp_path))
    result = run_assets(
        ["raw_ohlcv", "ml_features_ohlcv"],
        warehouse_url,
        DAY,
        market=market,
        raise_on_error=False,
        instance=DagsterInstance.ephemeral(),
    )
    checks = _checks(result)
    assert checks["no_nan"] is False and checks["high_gte_low"] is False
    assert checks["unique_monotonic_utc_ts"] is True
    assert not result.success
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialised == {"raw_ohlcv"}
    assert count(warehouse_url, "SELECT count(*) FROM ml_features_ohlcv") == 0


def test_feature_lookback_warns_when_earlier_bars_are_missing(warehouse_url):
    instance = DagsterInstance.ephemeral()
    run_assets(["raw_ohlcv"], warehouse_url, instance=instance, partition_range=("2024-03-01", "2024-03-05"))
    full = run_assets(["ml_features_ohlcv"], warehouse_url, "2024-03-05", instance)
    short = run_assets(["ml_features_ohlcv"], warehouse_url, "2024-03-02", instance)
    assert _checks(full) == {"full_lookback": True}
    assert _checks(short) == {"full_lookback": False}
    short_check = next(e for e in short.get_asset_check_evaluations()).metadata
    assert short_check["symbols_with_short_lookback"].value == dict.fromkeys(SYMBOLS, 24)
    # with only one prior day, the MACD chain has not filled before the day's first bars
    assert metadata_of(short, "ml_features_ohlcv")["rows_in_warmup"] > 0
    assert metadata_of(full, "ml_features_ohlcv")["rows_in_warmup"] == 0
    with connect(warehouse_url) as conn:
        n = conn.execute("SELECT count(*) FROM ml_features_ohlcv WHERE symbol = 'BNBUSDT'").fetchone()[0]
    assert n == 48


def test_closed_bars_end_never_includes_a_forming_bar():
    from pipeline_assets.assets._common import closed_bars_end

    now = datetime(2024, 3, 5, 14, 37, tzinfo=UTC)
    assert closed_bars_end(END, now) == datetime(2024, 3, 5, 14, tzinfo=UTC)
    assert closed_bars_end(END, datetime(2024, 3, 9, tzinfo=UTC)) == END


def test_todays_partition_holds_only_closed_bars(warehouse_url):
    hour_before = datetime.now(UTC).hour
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    result = run_assets(["raw_ohlcv"], warehouse_url, today, raise_on_error=False)
    hour_after = datetime.now(UTC).hour
    if hour_before == 0 and hour_after == 0:
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "no bar of this range has closed yet" in failure
        return
    stored = count(warehouse_url, "SELECT count(*) FROM raw_ohlcv WHERE ts >= %s AND symbol = 'BTCUSDT'", (today,))
    assert stored in {hour_before, hour_after if hour_after >= hour_before else 24}  # midnight may pass
    assert count(warehouse_url, "SELECT count(*) FROM raw_ohlcv WHERE ts + interval '1 hour' > now()") == 0


def test_sentiment_features_need_ingested_headlines_and_stop_at_the_watermark(warehouse_url):
    instance = DagsterInstance.ephemeral()
    refused = run_assets(["ml_features_sentiment"], warehouse_url, DAY, instance, raise_on_error=False)
    failure = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert "raw_sentiment has not been ingested for any day and symbol of this range" in failure

    run_assets(["raw_sentiment"], warehouse_url, DAY, instance)
    result = run_assets(["ml_features_sentiment"], warehouse_url, DAY, instance)
    assert count(warehouse_url, "SELECT count(*) FROM ml_features_sentiment") == 24 * len(SYMBOLS)
    assert _checks(result) == {"full_lookback": False}  # 2024-03-04's headlines were never ingested

    # Pretend the source had only covered ETHUSDT's day up to 10:00: its rows stop at bar 09:00
    # (closes 10:00); the other symbols are unaffected.
    with connect(warehouse_url) as conn, conn.transaction():
        conn.execute("DELETE FROM ml_features_sentiment")
        conn.execute(
            "UPDATE partition_watermarks SET covered_until = '2024-03-05T10:00Z' WHERE partition_key = %s",
            (symbol_day_key(DAY, "ETHUSDT"),),
        )
    run_assets(["ml_features_sentiment"], warehouse_url, DAY, instance)
    with connect(warehouse_url) as conn:
        last = conn.execute("SELECT max(ts), count(*) FROM ml_features_sentiment WHERE symbol = 'ETHUSDT'").fetchone()
        others = conn.execute("SELECT count(*) FROM ml_features_sentiment WHERE symbol <> 'ETHUSDT'").fetchone()[0]
    assert last == (datetime(2024, 3, 5, 9, tzinfo=UTC), 10)
    assert others == 24 * (len(SYMBOLS) - 1)


def test_a_partition_with_no_valid_bar_fails_but_keeps_its_quarantine(warehouse_url, tmp_path):
    bars = SyntheticMarket().ohlcv("BTCUSDT", START, START + pd.Timedelta(hours=3))
    write_csv(bars.assign(close=np.nan), tmp_path / "BTCUSDT.csv")
    market = MarketDataResource(ohlcv_source="csv", csv_directory=str(tmp_path))
    result = run_assets(["raw_ohlcv"], warehouse_url, DAY, market=market, raise_on_error=False)
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "returned no valid bar for any symbol (rejected: {'NaN in close': 3}" in failure
    assert count(warehouse_url, "SELECT count(*) FROM quarantine WHERE reason = 'NaN in close'") == 3
    assert count(warehouse_url, "SELECT count(*) FROM raw_ohlcv") == 0
