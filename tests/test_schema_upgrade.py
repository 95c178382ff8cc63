"""Every migration of this session upgrades a populated warehouse of the earlier schema (the
files up to 0023, as landed before): rows are kept, new columns get their documented values, the
current code runs on it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance
from dagster_helpers import count, run_assets

from pipeline_assets.store.db import connect
from pipeline_assets.store.migrate import migrate, sql_dir

LAST_OLD = "0023"


def test_migrations_upgrade_a_populated_warehouse_of_the_previous_schema(fresh_database, tmp_path, monkeypatch):
    old = tmp_path / "old_sql"
    old.mkdir()
    for path in sorted(Path(sql_dir()).glob("*.sql")):
        if path.name[:4] <= LAST_OLD:
            shutil.copy(path, old / path.name)
    migrate(fresh_database, old)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    with connect(fresh_database) as conn, conn.transaction():
        for hour in range(48):
            ts = start + timedelta(hours=hour)
            conn.execute(
                "INSERT INTO raw_ohlcv (symbol, ts, open, high, low, close, volume, source) "
                "VALUES ('BTCUSDT', %s, 100, 101, 99, 100.5, 10, 'old')",
                (ts,),
            )
        conn.execute(
            "INSERT INTO raw_sentiment (symbol, published_at, headline_id, source, headline, compound, positive, "
            "neutral, negative) VALUES ('BTCUSDT', %s, 'h1', 'wire', 'BTC up', 0.5, 0.5, 0.5, 0.0)",
            (start,),
        )
    report = migrate(fresh_database)
    assert all(name[:4] > LAST_OLD for name in report.applied) and report.applied
    assert count(fresh_database, "SELECT count(*) FROM raw_ohlcv") == 48
    assert count(fresh_database, "SELECT count(*) FROM raw_ohlcv WHERE available_at = ts + interval '1 hour'") == 48
    assert count(fresh_database, "SELECT count(*) FROM raw_sentiment WHERE available_at = published_at") == 1
    # the current graph runs on the upgraded warehouse and restates the old bars as history
    monkeypatch.setenv("PIPELINE_DATABASE_URL", fresh_database)
    run_assets(["raw_ohlcv"], fresh_database, partition_key="2024-03-01", instance=DagsterInstance.ephemeral())
    assert count(fresh_database, "SELECT count(*) FROM raw_ohlcv_history WHERE source = 'old'") == 24
    for table in (
        "ml_state_vector_rows",
        "ml_patterns",
        "ml_features_mtf",
        "feature_sets",
        "raw_orderbook",
        "ml_return_predictions",
    ):
        assert count(fresh_database, f"SELECT count(*) FROM {table}") == 0
