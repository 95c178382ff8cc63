"""Range-first backfills: batch invariance, mixed calendars, corrections, and the backfill command."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, evaluate_automation_conditions
from dagster_helpers import INGEST, count, metadata_of, run_assets

from pipeline_assets.assets.models import retrain_run_config
from pipeline_assets.definitions import defs
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.resources import MarketDataResource
from pipeline_assets.sources.csv_dir import write_csv
from pipeline_assets.sources.synthetic import SyntheticMarket
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame
from pipeline_assets.store.warehouse import truncate_all

FIRST = datetime(2024, 3, 1, tzinfo=UTC)


def _days(n: int, first: datetime = FIRST) -> list[str]:
    return [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(n)]


def _table(url: str, table: str, drop=("computed_at", "labelled_at")) -> pd.DataFrame:
    with connect(url) as conn:
        frame = read_frame(conn, f"SELECT * FROM {table} ORDER BY symbol, ts")
    return frame.drop(columns=[c for c in drop if c in frame.columns])


def test_one_day_runs_and_a_range_run_store_identical_features_and_labels(warehouse_url):
    """Batch invariance: every feature and label value is the same whether the days were run one
    at a time (each reading its declared lookback) or as one range run."""
    days = _days(9)
    run_assets(INGEST, warehouse_url, partition_range=(days[0], days[-1]))
    ranged = {t: _table(warehouse_url, t) for t in ("ml_features_ohlcv", "ml_features_sentiment", "ml_labels")}
    with connect(warehouse_url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    for index, day in enumerate(days):
        run_assets(INGEST, warehouse_url, day, instance)
        if index:  # yesterday's last labels mature with today's bars, as the hourly schedule does
            run_assets(["ml_labels"], warehouse_url, days[index - 1], instance)
    for table, expected in ranged.items():
        daily = _table(warehouse_url, table)
        assert len(daily) == len(expected) > 0, table
        pd.testing.assert_frame_equal(daily, expected, check_exact=True, obj=table)


def _csv_market(tmp_path, days: list[str], drop) -> MarketDataResource:
    market = SyntheticMarket()
    start = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(days[-1]).replace(tzinfo=UTC) + timedelta(days=2)
    for symbol in SYMBOLS:
        bars = market.ohlcv(symbol, start, end)
        write_csv(bars[~drop(symbol, bars["ts"])], tmp_path / f"{symbol}.csv")
    return MarketDataResource(ohlcv_source="csv", csv_directory=str(tmp_path))


def test_a_symbol_missing_hours_or_days_never_fails_the_others(warehouse_url, tmp_path):
    """Mixed calendars: SOLUSDT trades only on weekdays, BNBUSDT has a one-day outage; every other
    symbol is predicted for every hour, and the gaps are reported per day and symbol."""
    days = _days(14)
    outage = "2024-03-12"

    def drop(symbol, ts):
        if symbol == "SOLUSDT":
            return ts.dt.day_of_week >= 5
        if symbol == "BNBUSDT":
            return ts.dt.strftime("%Y-%m-%d") == outage
        return pd.Series(False, index=ts.index)

    market = _csv_market(tmp_path, days, drop)
    instance = DagsterInstance.ephemeral()
    ingest = run_assets(INGEST, warehouse_url, instance=instance, market=market, partition_range=(days[0], days[-1]))
    complete_day = next(e for e in ingest.get_asset_check_evaluations() if e.check_name == "complete_day")
    assert complete_day.passed is False and "SOLUSDT" in complete_day.metadata["gaps"].value
    assert metadata_of(ingest, "raw_ohlcv", outage)["symbols_with_gaps"] == ["BNBUSDT"]
    run_assets(
        ["training_dataset", "direction_model_xgboost"],
        warehouse_url,
        instance=instance,
        run_config=retrain_run_config("2024-03-11T00:00:00+00:00", min_rows=200),
    )
    result = run_assets(
        ["ml_predictions", "trading_signals", "dashboard_data"],
        warehouse_url,
        instance=instance,
        market=market,
        partition_range=("2024-03-11", "2024-03-14"),
    )
    assert result.success
    with connect(warehouse_url) as conn:
        per_symbol = dict(
            conn.execute(
                "SELECT symbol, count(DISTINCT ts::date) FROM dashboard_data WHERE model_id IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
    assert per_symbol["BTCUSDT"] == per_symbol["ETHUSDT"] == 4
    assert per_symbol["BNBUSDT"] == 3  # the outage day has no bar, so no prediction
    assert metadata_of(result, "ml_predictions", outage)["symbols_without_prediction"] == ["BNBUSDT"]
    assert (
        count(
            warehouse_url, "SELECT count(*) FROM raw_ohlcv WHERE symbol = 'SOLUSDT' AND extract(dow FROM ts) IN (0, 6)"
        )
        == 0
    )


def test_a_corrected_bar_recomputes_the_features_of_the_following_days(warehouse_url, tmp_path):
    days = _days(10)
    instance = DagsterInstance.ephemeral()

    def no_drop(symbol, ts):
        return pd.Series(False, index=ts.index)

    market = _csv_market(tmp_path, days, no_drop)
    run_assets(
        ["raw_ohlcv", "ml_features_ohlcv", "ml_labels"],
        warehouse_url,
        instance=instance,
        market=market,
        partition_range=(days[0], days[-1]),
    )
    before = _table(warehouse_url, "ml_features_ohlcv")
    cursor = evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=datetime(2024, 3, 11, 6, tzinfo=UTC)
    ).cursor

    corrected_hour = pd.Timestamp("2024-03-04T12:00Z")
    path = tmp_path / "BTCUSDT.csv"
    bars = pd.read_csv(path)
    row = bars["ts"] == corrected_hour.strftime("%Y-%m-%dT%H:%M:%SZ")
    bars.loc[row, ["close", "high"]] = bars.loc[row, ["close", "high"]] * 1.03  # the venue restated the bar
    bars.to_csv(path, index=False, float_format="%.17g")
    correction = run_assets(["raw_ohlcv"], warehouse_url, "2024-03-04", instance, market=market)
    assert metadata_of(correction, "raw_ohlcv")["rows_updated"] == 1

    evaluation = evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=cursor, evaluation_time=datetime(2024, 3, 11, 6, tzinfo=UTC)
    )
    requested = sorted(evaluation.get_requested_partitions(defs.get_assets_def("ml_features_ohlcv").key))
    assert requested == ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]
    run_assets(["ml_features_ohlcv"], warehouse_url, instance=instance, partition_range=(requested[0], requested[-1]))
    after = _table(warehouse_url, "ml_features_ohlcv")
    merged = before.merge(after, on=["symbol", "ts"], suffixes=("_before", "_after"))
    btc = merged[merged["symbol"] == "BTCUSDT"]
    changed = btc[~np.isclose(btc["rsi_14_before"], btc["rsi_14_after"], equal_nan=True)]["ts"]
    assert changed.min() == corrected_hour  # nothing before the corrected bar moves
    assert changed.max() >= pd.Timestamp("2024-03-05T00:00Z")  # the next day's lookback saw the correction
    others = merged[merged["symbol"] != "BTCUSDT"]
    assert np.allclose(others["rsi_14_before"], others["rsi_14_after"], equal_nan=True)


def _cli(args, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_"))}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pipeline_assets", "backfill", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_backfill_command_runs_a_users_csv_history_in_few_runs_and_adds_a_symbol(fresh_database, tmp_path):
    """As a new user would: their own CSV history from 2019 for two symbols, one command, then a
    third symbol added to the live warehouse with the same command."""
    market = SyntheticMarket()
    csv_dir = tmp_path / "bars"
    for symbol in ("BTCUSD", "ETHUSD", "LTCUSD"):
        bars = market.ohlcv(symbol, datetime(2019, 3, 28, tzinfo=UTC), datetime(2019, 4, 12, tzinfo=UTC))
        write_csv(bars, csv_dir / f"{symbol}.csv")
    home = tmp_path / "dagster_home"
    env = {"PIPELINE_DATABASE_URL": fresh_database, "DAGSTER_HOME": str(home)}
    window = ["--start", "2019-04-01", "--end", "2019-04-10", "--source", "csv", "--csv-dir", str(csv_dir)]
    select = ["--select", "raw_ohlcv,raw_sentiment,ml_features_ohlcv,ml_features_sentiment,ml_labels"]
    first = _cli([*window, *select, "--symbols", "BTCUSD,ETHUSD"], env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "COMPLETED_SUCCESS, 1 runs" in first.stdout, first.stdout
    assert count(fresh_database, "SELECT count(*) FROM raw_ohlcv") == 10 * 24 * 2
    assert count(fresh_database, "SELECT count(*) FROM ml_features_ohlcv") == 10 * 24 * 2

    second = _cli([*window, *select, "--symbols", "BTCUSD,ETHUSD,LTCUSD"], env, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    with connect(fresh_database) as conn:
        per_symbol = dict(conn.execute("SELECT symbol, count(*) FROM raw_ohlcv GROUP BY 1").fetchall())
    assert per_symbol == {"BTCUSD": 240, "ETHUSD": 240, "LTCUSD": 240}

    from dagster import DagsterInstance as Instance
    from dagster._core.execution.backfill import BulkActionStatus

    with Instance.from_config(str(home)) as instance:
        backfills = instance.get_backfills()
        assert len(backfills) == 2 and {b.status for b in backfills} == {BulkActionStatus.COMPLETED_SUCCESS}


def test_backfill_command_refuses_a_missing_csv_directory(tmp_path):
    result = _cli(
        ["--start", "2024-03-01", "--end", "2024-03-02", "--source", "csv", "--csv-dir", str(tmp_path / "nope")],
        {"DAGSTER_HOME": str(tmp_path)},
        tmp_path,
    )
    assert result.returncode == 2 and "is not a directory" in result.stderr


@pytest.mark.parametrize("bad", ["", " , "])
def test_an_empty_symbol_list_is_refused_not_defaulted(bad, monkeypatch):
    from pipeline_assets.partitions import PartitionConfigError, configured_symbols

    monkeypatch.setenv("PIPELINE_SYMBOLS", bad)
    with pytest.raises(PartitionConfigError, match="names no symbol"):
        configured_symbols()


def test_a_missing_csv_directory_fails_when_the_code_location_loads(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_"))}
    env["PIPELINE_CSV_DIR"] = str(tmp_path / "nope")
    result = subprocess.run(
        [sys.executable, "-c", "import pipeline_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"PIPELINE_CSV_DIR='{tmp_path / 'nope'}' is not a directory" in result.stderr


def test_failures_are_reported_in_one_line_each_without_tracebacks(fresh_database, tmp_path):
    """A file that cannot be read, or a bad setting: the cause with its path or name, once."""
    csv_dir = tmp_path / "bars"
    csv_dir.mkdir()
    (csv_dir / "BTCUSD.csv").write_text("ts,open,high,low,close\n2024-03-01T00:00:00Z,1,2,0.5,1\n")
    env = {"PIPELINE_DATABASE_URL": fresh_database, "DAGSTER_HOME": str(tmp_path / "home")}
    window = ["--start", "2024-03-01", "--end", "2024-03-02", "--source", "csv", "--csv-dir", str(csv_dir)]
    broken = _cli([*window, "--symbols", "BTCUSD", "--select", "raw_ohlcv"], env, tmp_path)
    assert broken.returncode == 1
    errors = [line for line in broken.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "BTCUSD.csv lacks column(s) ['volume']" in errors[0], broken.stderr[-2000:]
    assert "Traceback" not in broken.stderr and "Traceback" not in broken.stdout

    env_empty = {**env, "PIPELINE_SYMBOLS": " "}
    refused = _cli(window, env_empty, tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: PartitionConfigError: PIPELINE_SYMBOLS")
