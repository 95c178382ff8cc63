"""The warehouse on TimescaleDB (embedded PostgreSQL 18 + TimescaleDB built into the virtualenv):
migrations, hypertables, compressed-chunk upserts, continuous aggregates, background jobs, the
not-preloaded error, and the whole graph with every asset check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from timescale_fixtures import server_data_dir

from pipeline_assets.local_db import start_embedded
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame, upsert_frame
from pipeline_assets.store.migrate import MigrationError, migrate

TIME_SERIES_TABLES = {
    "raw_ohlcv",
    "raw_sentiment",
    "ml_features_ohlcv",
    "ml_features_sentiment",
    "ml_labels",
    "ml_predictions",
    "ml_shadow_predictions",
    "trading_signals",
    "dashboard_data",
    "online_model_learned_rows",
    "model_performance",
    "raw_orderbook",
    "ml_state_vector_rows",
    "ml_patterns",
    "ml_features_mtf",
    "ml_features_cross_asset",
    "raw_ohlcv_history",
    "ml_features_ohlcv_ext",
    "raw_funding_rates",
    "raw_open_interest",
    "raw_liquidations",
    "raw_long_short_ratio",
    "market_aligned",
    "ml_features_derivatives",
    "raw_sentiment_history",
    "liquidation_watch",  # partitioned by watched_from
    "ml_return_predictions",
}


# Tables with a time column that stay plain tables, and why.
NOT_HYPERTABLES = {
    # refused rows: ts is NULL when the time itself could not be parsed, and the key is a serial id
    "quarantine": "nullable ts, keyed by quarantine_id",
}


def _hypertables(url: str) -> set[str]:
    with connect(url) as conn:
        if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            return set()
        return {r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")}


def _bars(start: datetime, hours: int, symbol: str = "BTCUSDT", seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, hours)))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": pd.date_range(start, periods=hours, freq="h", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": rng.uniform(1, 10, hours),
            "source": "test",
        }
    )


def test_migrations_apply_make_every_time_series_table_a_hypertable_and_are_idempotent(timescale_fresh_database):
    first = migrate(timescale_fresh_database)
    assert first.timescaledb and not first.skipped
    assert _hypertables(timescale_fresh_database) >= TIME_SERIES_TABLES
    second = migrate(timescale_fresh_database)
    assert second.applied == () and second.skipped == ()
    with connect(timescale_fresh_database) as conn:
        # every table keyed by a time column is a hypertable: a forgotten new table fails here
        keyed = {
            r[0]
            for r in conn.execute(
                """
                SELECT DISTINCT c.relname FROM pg_index i
                JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
                WHERE i.indisprimary AND n.nspname = 'public' AND a.attname IN ('ts', 'published_at', 'day')
                """
            )
        }
    assert keyed <= _hypertables(timescale_fresh_database), keyed - _hypertables(timescale_fresh_database)


def test_every_table_with_a_time_column_is_a_hypertable(timescale_database_url):
    # A new time-series table (a timestamptz ts/published_at column) without its *.timescale.sql
    # create_hypertable fails here; tables keyed without time must be listed here, with the reason.
    with connect(timescale_database_url) as conn:
        timed = {
            r[0]
            for r in conn.execute(
                """
                SELECT c.relname FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_attribute a ON a.attrelid = c.oid AND NOT a.attisdropped
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                  AND a.attname IN ('ts', 'published_at', 'snapshot_at') AND a.atttypid = 'timestamptz'::regtype
                """
            )
        }
    # model_performance has no such column; liquidation_watch is partitioned by watched_from
    assert timed >= TIME_SERIES_TABLES - {"model_performance", "liquidation_watch"}
    missing = timed - _hypertables(timescale_database_url) - set(NOT_HYPERTABLES)
    assert not missing, f"time-series tables that are not hypertables (add a *.timescale.sql migration): {missing}"


def test_a_warehouse_migrated_without_timescaledb_gets_hypertables_when_it_arrives(
    timescale_fresh_database, monkeypatch
):
    monkeypatch.setenv("PIPELINE_TIMESCALEDB", "off")
    plain = migrate(timescale_fresh_database)
    assert not plain.timescaledb and plain.skipped
    with connect(timescale_fresh_database) as conn, conn.transaction():
        upsert_frame(conn, "raw_ohlcv", _bars(datetime(2024, 3, 1, tzinfo=UTC), 48), ["symbol", "ts"])
    assert _hypertables(timescale_fresh_database) == set()
    with connect(timescale_fresh_database) as conn, conn.transaction():
        # warehouses recorded these files as skipped under their old checksums: still not applied
        conn.execute("UPDATE schema_migrations SET checksum = 'old' WHERE status = 'skipped'")
    monkeypatch.delenv("PIPELINE_TIMESCALEDB")
    gained = migrate(timescale_fresh_database)
    assert set(gained.applied) == set(plain.skipped)
    assert _hypertables(timescale_fresh_database) >= TIME_SERIES_TABLES
    with connect(timescale_fresh_database) as conn:
        assert conn.execute("SELECT count(*) FROM raw_ohlcv").fetchone()[0] == 48  # data migrated into chunks
        statuses = dict(conn.execute("SELECT version, status FROM schema_migrations").fetchall())
    assert {statuses[v] for v in plain.skipped} == {"applied"}


def test_upserts_into_compressed_chunks_update_and_insert(timescale_fresh_database):
    url = timescale_fresh_database
    migrate(url)
    bars = _bars(datetime(2024, 1, 1, tzinfo=UTC), 24 * 10)
    with connect(url) as conn, conn.transaction():
        upsert_frame(conn, "raw_ohlcv", bars, ["symbol", "ts"])
    with connect(url, autocommit=True) as conn:
        compressed = conn.execute("SELECT count(*) FROM (SELECT compress_chunk(c) FROM show_chunks('raw_ohlcv') c) x")
        assert compressed.fetchone()[0] >= 1
        (status,) = conn.execute(
            "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks WHERE hypertable_name = 'raw_ohlcv'"
        ).fetchone()
    assert status is True
    changed = bars.iloc[:5].assign(close=lambda f: f["close"] * 1.01, high=lambda f: f["high"] * 1.02)
    new = _bars(datetime(2024, 1, 11, tzinfo=UTC), 5, seed=2)
    with connect(url) as conn, conn.transaction():
        stats = upsert_frame(conn, "raw_ohlcv", pd.concat([changed, new], ignore_index=True), ["symbol", "ts"])
    assert (stats.inserted, stats.updated) == (5, 5)
    with connect(url) as conn:
        stored = read_frame(conn, "SELECT ts, close FROM raw_ohlcv ORDER BY ts")
    assert len(stored) == 24 * 10 + 5
    np.testing.assert_allclose(stored["close"].iloc[:5].to_numpy(), changed["close"].to_numpy())


def test_continuous_aggregates_equal_a_pandas_resample_including_partial_buckets(timescale_fresh_database):
    url = timescale_fresh_database
    migrate(url)
    # 2 days and 14 hours: the last 4h bucket (12:00-16:00) holds two bars, the last day 14
    bars = pd.concat(
        [_bars(datetime(2024, 3, 1, tzinfo=UTC), 24 * 2 + 14), _bars(datetime(2024, 3, 1, tzinfo=UTC), 30, "ETHUSDT")]
    )
    with connect(url) as conn, conn.transaction():
        upsert_frame(conn, "raw_ohlcv", bars, ["symbol", "ts"])
    with connect(url, autocommit=True) as conn:
        conn.execute("CALL refresh_continuous_aggregate('ohlcv_4h', NULL, NULL)")
        conn.execute("CALL refresh_continuous_aggregate('ohlcv_1d', NULL, NULL)")
        aggregates = {
            view: read_frame(conn, f"SELECT symbol, ts, open, high, low, close, volume FROM {view} ORDER BY symbol, ts")
            for view in ("ohlcv_4h", "ohlcv_1d")
        }
    for view, rule in (("ohlcv_4h", "4h"), ("ohlcv_1d", "1D")):
        expected = (
            bars.set_index("ts")
            .groupby("symbol")
            .resample(rule)
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
            .reset_index()
        )
        got = aggregates[view]
        assert len(got) == len(expected), view
        pd.testing.assert_frame_equal(
            got.reset_index(drop=True), expected[got.columns].reset_index(drop=True), check_dtype=False, obj=view
        )
    assert aggregates["ohlcv_4h"]["ts"].max() == pd.Timestamp("2024-03-03T12:00Z")  # the partial bucket


def test_background_jobs_succeed(timescale_fresh_database):
    url = timescale_fresh_database
    migrate(url)
    with connect(url) as conn, conn.transaction():
        upsert_frame(conn, "raw_ohlcv", _bars(datetime.now(UTC) - timedelta(days=2), 40), ["symbol", "ts"])
    with connect(url, autocommit=True) as conn:
        jobs = conn.execute(
            "SELECT job_id, proc_name FROM timescaledb_information.jobs WHERE hypertable_name IN "
            "('ohlcv_4h', 'ohlcv_1d', 'raw_ohlcv') OR proc_name = 'policy_refresh_continuous_aggregate'"
        ).fetchall()
        assert {p for _, p in jobs} >= {"policy_refresh_continuous_aggregate", "policy_compression"}
        (asked,) = conn.execute("SELECT now()").fetchone()
        for job_id, _ in jobs:  # due now: the background scheduler runs them
            conn.execute("SELECT alter_job(%s, next_start => now())", (job_id,))
        ids = [j for j, _ in jobs]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            stats = conn.execute(
                "SELECT job_id, last_run_status, last_run_started_at >= %s FROM timescaledb_information.job_stats "
                "WHERE job_id = ANY(%s)",
                (asked, ids),
            ).fetchall()
            if len(stats) == len(ids) and all(s[2] for s in stats):
                break
            time.sleep(1)
    assert stats and all(status == "Success" and ran for _, status, ran in stats), stats
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM ohlcv_4h").fetchone()[0] > 0  # refreshed by the job


def test_installed_but_not_preloaded_is_a_clear_error(timescale_server_url):
    # timescale_server_url: the session's build step has installed TimescaleDB into this server
    with server_data_dir() as pgdata:
        server = start_embedded(pgdata, cleanup_mode="delete", timescale=False)
        try:
            with pytest.raises(MigrationError, match="installed on this server but not preloaded.*ALTER SYSTEM SET"):
                migrate(server.get_uri())
        finally:
            server.cleanup()


def test_the_whole_graph_and_every_asset_check_on_timescaledb(timescale_fresh_database, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_"))}
    env["PIPELINE_DATABASE_URL"] = timescale_fresh_database
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline_assets.checks.ci", "--days", "12", "--symbols", "BTCUSDT,ETHUSDT"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.stdout.splitlines()[-1].endswith("0 ERROR-severity failure(s)")
    assert _hypertables(timescale_fresh_database) >= TIME_SERIES_TABLES
    with connect(timescale_fresh_database) as conn:
        assert conn.execute("SELECT count(*) FROM dashboard_data").fetchone()[0] > 0


def test_raw_retention_is_off_by_default_and_configurable(timescale_fresh_database, monkeypatch):
    def retention_tables() -> set[str]:
        with connect(timescale_fresh_database) as conn:
            return {
                r[0]
                for r in conn.execute(
                    "SELECT hypertable_name FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
                )
            }

    migrate(timescale_fresh_database)
    assert retention_tables() == set()
    monkeypatch.setenv("PIPELINE_RAW_RETENTION_DAYS", "400")
    migrate(timescale_fresh_database)
    assert retention_tables() == {"raw_ohlcv", "raw_sentiment"}
    monkeypatch.setenv("PIPELINE_RAW_RETENTION_DAYS", "soon")
    with pytest.raises(MigrationError, match="PIPELINE_RAW_RETENTION_DAYS='soon' is not a whole number"):
        migrate(timescale_fresh_database)
    monkeypatch.delenv("PIPELINE_RAW_RETENTION_DAYS")
    migrate(timescale_fresh_database)
    assert retention_tables() == set()
