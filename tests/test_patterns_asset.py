"""ml_patterns on real PostgreSQL: stored detections equal the compute function's, and a range run
stores the same rows as one-day runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import DagsterInstance
from dagster_helpers import count, metadata_of, run_assets

from pipeline_assets.assets.patterns import PATTERN_SET_ID, detections_day_by_day
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame
from pipeline_assets.store.warehouse import read_ohlcv, truncate_all

FIRST = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = [(FIRST + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(40)]


def _stored(url: str) -> pd.DataFrame:
    with connect(url) as conn:
        return read_frame(
            conn,
            "SELECT symbol, ts, pattern, score, direction, target_price, expected_completion_hours, start_ts "
            "FROM ml_patterns ORDER BY symbol, ts, pattern",
        )


def test_range_and_one_day_runs_store_the_compute_functions_detections(warehouse_url):
    url = warehouse_url
    with connect(url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    run_assets(["raw_ohlcv"], url, instance=instance, partition_range=(DAYS[0], DAYS[-1]))
    result = run_assets(["ml_patterns"], url, instance=instance, partition_range=(DAYS[10], DAYS[-1]))
    stored = _stored(url)
    assert len(stored) > 0 and stored["ts"].min() >= pd.Timestamp(DAYS[10], tz="UTC")
    assert count(url, "SELECT count(DISTINCT pattern_set_id) FROM ml_patterns") == 1
    assert metadata_of(result, "ml_patterns", DAYS[-1])["pattern_set_id"] == PATTERN_SET_ID
    with connect(url) as conn:
        bars = read_ohlcv(conn, list(SYMBOLS), FIRST, FIRST + timedelta(days=40))
    expected = []
    for symbol, group in bars.groupby("symbol"):
        found = detections_day_by_day(group.drop(columns=["symbol"]).reset_index(drop=True), DAYS[10:])
        expected.append(found.assign(symbol=symbol))
    expected = pd.concat(expected).sort_values(["symbol", "ts", "pattern"]).reset_index(drop=True)[stored.columns]
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    # one-day runs over part of the range store exactly the same rows
    for day in DAYS[20:24]:
        run_assets(["ml_patterns"], url, instance=instance, partition_key=day)
    pd.testing.assert_frame_equal(_stored(url), stored)
