from __future__ import annotations

import shutil
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.store import models as registry
from pipeline_assets.store.db import DatabaseConfigError, connect, normalise_database_url
from pipeline_assets.store.frames import DuplicateKeyError, StoreError, read_frame, upsert_frame
from pipeline_assets.store.migrate import MigrationError, migrate, sql_dir
from pipeline_assets.store.quarantine import replace_quarantine


def _bars(n: int = 5, close: float = 100.0) -> pd.DataFrame:
    ts = pd.date_range("2024-03-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "symbol": "BTCUSDT",
            "ts": ts,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": np.linspace(close, close + n - 1, n),
            "volume": 10.0,
            "source": "test",
        }
    )


def _count(url: str, table: str) -> int:
    with connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_migrations_are_recorded_and_idempotent(fresh_database):
    first = migrate(fresh_database)
    assert first.applied[0] == "0001_core.sql"
    assert first.timescaledb is False  # this machine's PostgreSQL has no timescaledb
    assert set(first.skipped) == {
        "0002_timescale.timescale.sql",
        "0003_timescale_aggregates.timescale.sql",
        "0008_timescale_hypertables.timescale.sql",
        "0025_state_vectors_hypertables.timescale.sql",
        "0027_ml_patterns_hypertable.timescale.sql",
        "0029_feature_families_hypertables.timescale.sql",
        "0031_raw_ohlcv_history_hypertable.timescale.sql",
        "0036_ohlcv_ext_hypertable.timescale.sql",
        "0038_derivatives_hypertables.timescale.sql",
        "0040_market_aligned_hypertable.timescale.sql",
        "0042_derivative_features_hypertable.timescale.sql",
        "0044_headline_revisions_hypertable.timescale.sql",
        "0046_liquidation_watch_hypertable.timescale.sql",
        "0050_ml_return_predictions_hypertable.timescale.sql",
        "0048_feature_set_key_compression.timescale.sql",
        "0052_shadow_predictions_hypertable.timescale.sql",
    }
    second = migrate(fresh_database)
    # skipped Timescale files stay skipped (and are retried) while the server has no TimescaleDB
    assert second.applied == () and set(second.skipped) == set(first.skipped)
    assert set(second.already_applied) == set(first.applied)
    with connect(fresh_database) as conn:
        rows = dict(conn.execute("SELECT version, status FROM schema_migrations").fetchall())
        assert rows["0001_core.sql"] == "applied"
        assert rows["0002_timescale.timescale.sql"] == "skipped"
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {
        "raw_ohlcv",
        "ml_labels",
        "ml_models_metadata",
        "ml_predictions",
        "dashboard_data",
        "quarantine",
    } <= tables


def test_changed_migration_is_refused(fresh_database, tmp_path):
    directory = tmp_path / "sql"
    shutil.copytree(sql_dir(), directory)
    migrate(fresh_database, directory)
    core = directory / "0001_core.sql"
    core.write_text(core.read_text() + "\n-- edited after the fact\n")
    with pytest.raises(MigrationError, match="0001_core.sql changed after it was applied"):
        migrate(fresh_database, directory)


def test_failed_migration_leaves_nothing_recorded(fresh_database, tmp_path):
    directory = tmp_path / "sql"
    shutil.copytree(sql_dir(), directory)
    (directory / "0100_broken.sql").write_text("CREATE TABLE half_done (x int);\nSELECT no_such_function();\n")
    with pytest.raises(MigrationError, match="0100_broken.sql failed"):
        migrate(fresh_database, directory)
    with connect(fresh_database) as conn:
        assert (
            conn.execute("SELECT count(*) FROM schema_migrations WHERE version = '0100_broken.sql'").fetchone()[0] == 0
        )
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None


def test_database_url_normalisation():
    assert normalise_database_url("postgresql+psycopg2://u@h:5432/d") == "postgresql://u@h:5432/d"
    with pytest.raises(DatabaseConfigError, match="mysql"):
        normalise_database_url("mysql://u@h/d")


def test_upsert_is_idempotent_and_counts_changes(warehouse_url):
    bars = _bars()
    with connect(warehouse_url) as conn, conn.transaction():
        first = upsert_frame(conn, "raw_ohlcv", bars, ["symbol", "ts"])
    assert (first.inserted, first.updated, first.unchanged) == (5, 0, 0)
    with connect(warehouse_url) as conn, conn.transaction():
        again = upsert_frame(conn, "raw_ohlcv", bars, ["symbol", "ts"])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)
    changed = bars.copy()
    changed.loc[2, "close"] = 123.5
    with connect(warehouse_url) as conn, conn.transaction():
        third = upsert_frame(conn, "raw_ohlcv", changed, ["symbol", "ts"])
    assert (third.inserted, third.updated) == (0, 1)
    assert _count(warehouse_url, "raw_ohlcv") == 5
    with connect(warehouse_url) as conn:
        stored = read_frame(conn, "SELECT ts, close FROM raw_ohlcv ORDER BY ts")
    assert stored["close"].iloc[2] == 123.5
    assert str(stored["ts"].dt.tz) == "UTC"
    assert stored["ts"].iloc[0] == pd.Timestamp("2024-03-01T00:00Z")


def test_a_changed_row_gets_a_fresh_write_time_and_an_unchanged_one_keeps_it(warehouse_url):
    rows = pd.DataFrame(
        {
            "symbol": "BTCUSDT",
            "ts": pd.date_range("2024-03-01", periods=3, freq="h", tz="UTC"),
            "feature_set_id": "x",
            "sentiment_mean_6h": 0.1,
            "sentiment_mean_24h": 0.1,
            "sentiment_min_6h": 0.0,
            "sentiment_max_6h": 0.2,
            "headline_count_6h": 1,
            "headline_count_24h": 2,
        }
    )
    with connect(warehouse_url) as conn, conn.transaction():
        conn.execute("DELETE FROM ml_features_sentiment")
        upsert_frame(conn, "ml_features_sentiment", rows, ["symbol", "ts", "feature_set_id"])
        conn.execute("UPDATE ml_features_sentiment SET computed_at = '2000-01-01T00:00Z'")
    revised = rows.copy()
    revised.loc[1, "sentiment_mean_6h"] = 0.5
    with connect(warehouse_url) as conn, conn.transaction():
        upsert_frame(conn, "ml_features_sentiment", revised, ["symbol", "ts", "feature_set_id"])
        upsert_frame(conn, "ml_features_sentiment", revised, ["symbol", "ts", "feature_set_id"])  # unchanged now
    with connect(warehouse_url) as conn:
        stamps = read_frame(conn, "SELECT ts, computed_at FROM ml_features_sentiment ORDER BY ts")["computed_at"]
    assert stamps.iloc[0] == stamps.iloc[2] == pd.Timestamp("2000-01-01T00:00Z")
    assert stamps.iloc[1] > pd.Timestamp("2020-01-01T00:00Z")


def test_upsert_rejects_duplicate_keys_and_naive_timestamps(warehouse_url):
    bars = pd.concat([_bars(3), _bars(1)], ignore_index=True)
    with connect(warehouse_url) as conn, pytest.raises(DuplicateKeyError, match="2 rows share a primary key"):
        upsert_frame(conn, "raw_ohlcv", bars, ["symbol", "ts"])
    naive = _bars(2)
    naive["ts"] = naive["ts"].dt.tz_localize(None)
    with connect(warehouse_url) as conn, pytest.raises(StoreError, match="naive timestamps"):
        upsert_frame(conn, "raw_ohlcv", naive, ["symbol", "ts"])


def test_failed_write_rolls_back_the_whole_partition(warehouse_url):
    with pytest.raises(StoreError), connect(warehouse_url) as conn, conn.transaction():
        upsert_frame(conn, "raw_ohlcv", _bars(4), ["symbol", "ts"])
        upsert_frame(conn, "raw_ohlcv", _bars(2).assign(not_a_column=1), ["symbol", "ts"])
    assert _count(warehouse_url, "raw_ohlcv") == 0


def test_nan_is_stored_as_null(warehouse_url):
    features = pd.DataFrame(
        {
            "symbol": ["ETHUSDT"],
            "ts": [pd.Timestamp("2024-03-01T00:00Z")],
            "feature_set_id": ["x"],
            "rsi_14": [np.nan],
            "log_return_1h": [0.01],
        }
    )
    with connect(warehouse_url) as conn, conn.transaction():
        upsert_frame(conn, "ml_features_ohlcv", features, ["symbol", "ts", "feature_set_id"])
    with connect(warehouse_url) as conn:
        rsi, ret = conn.execute("SELECT rsi_14, log_return_1h FROM ml_features_ohlcv").fetchone()
    assert rsi is None and ret == pytest.approx(0.01)


def test_quarantine_replaces_rows_of_the_partition(warehouse_url):
    rejected = _bars(2).assign(reason=["NaN in close", "high < low"])
    rejected.loc[0, "close"] = np.nan
    with connect(warehouse_url) as conn, conn.transaction():
        assert replace_quarantine(conn, "raw_ohlcv", "2024-03-01|BTCUSDT", rejected) == 2
        assert replace_quarantine(conn, "raw_ohlcv", "2024-03-01|BTCUSDT", rejected.iloc[:1]) == 1
    with connect(warehouse_url) as conn:
        rows = conn.execute("SELECT reason, payload->>'close', symbol FROM quarantine").fetchall()
    assert rows == [("NaN in close", "NaN", "BTCUSDT")]


def _register(conn, name="m", artifact=b"model-bytes", matured="2024-03-10T00:00Z"):
    return registry.register_model(
        conn,
        model_name=name,
        artifact=artifact,
        format="test",
        feature_set_id="f",
        label_set_id="l",
        model_version_hash="h",
        params={"a": 1},
        metrics={"acc": 0.5},
        train_start=None,
        train_end=None,
        labels_matured_until=pd.Timestamp(matured).to_pydatetime(),
    )


def test_model_registry_versions_champion_and_integrity(warehouse_url):
    with connect(warehouse_url) as conn, conn.transaction():
        first = _register(conn)
        second = _register(conn, artifact=b"other-bytes", matured="2024-03-20T00:00Z")
        assert (first.version, second.version) == (1, 2)
        assert first.status == "candidate"
        registry.promote_model(conn, first.model_id)
        registry.promote_model(conn, second.model_id)
        assert registry.champion(conn, "m").model_id == second.model_id
        assert registry.get_model(conn, first.model_id).status == "retired"
        # point in time: a prediction on 2024-03-15 may only use the model matured on 03-10
        chosen = registry.model_for_prediction(conn, "m", datetime(2024, 3, 15, tzinfo=UTC))
        assert chosen.model_id == first.model_id
        with pytest.raises(registry.ModelNotFoundError, match="matured before 2024-03-01"):
            registry.model_for_prediction(conn, "m", datetime(2024, 3, 1, tzinfo=UTC))
        record, artifact = registry.load_artifact(conn, second.model_id)
        assert artifact == b"other-bytes" and record.artifact_sha256 == registry.sha256_hex(b"other-bytes")
        conn.execute("UPDATE ml_models_metadata SET artifact = 'tampered' WHERE model_id = %s", (second.model_id,))
        with pytest.raises(registry.ArtifactIntegrityError, match="does not match the ledger"):
            registry.load_artifact(conn, second.model_id)


def test_no_transaction_migrations_run_statement_by_statement(fresh_database, tmp_path):
    directory = tmp_path / "sql"
    shutil.copytree(sql_dir(), directory)
    # CREATE INDEX CONCURRENTLY fails inside a transaction block, like TimescaleDB's continuous aggregates.
    (directory / "0100_concurrent_index.sql").write_text(
        "-- migrate:no-transaction\n"
        "-- comment lines before the first statement are skipped\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS raw_ohlcv_ts_idx ON raw_ohlcv (ts);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ml_labels_ts_idx\n    ON ml_labels (ts);\n"
    )
    report = migrate(fresh_database, directory)
    assert "0100_concurrent_index.sql" in report.applied
    with connect(fresh_database) as conn:
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert {"raw_ohlcv_ts_idx", "ml_labels_ts_idx"} <= indexes


def test_timescale_aggregate_file_splits_into_its_statements():
    from pipeline_assets.store.migrate import _split_statements, discover

    aggregates = next(m for m in discover() if m.version == "0003_timescale_aggregates.timescale.sql")
    statements = _split_statements(aggregates.sql)
    assert not aggregates.transactional and aggregates.needs_timescale
    assert [s.split()[0] for s in statements] == ["CREATE", "CREATE", "SELECT", "SELECT"]


def test_with_database_keeps_host_and_socket_options():
    from pipeline_assets.local_db import with_database

    assert with_database("postgresql://postgres:@/postgres?host=/tmp/pg", "pipeline") == (
        "postgresql://postgres:@/pipeline?host=/tmp/pg"
    )
    assert with_database("postgresql://u@127.0.0.1:5432/postgres", "x") == "postgresql://u@127.0.0.1:5432/x"


def test_quarantine_replacement_is_serialised_and_skips_unchanged_keys(warehouse_url):
    import threading

    from pipeline_assets.store.quarantine import replace_quarantine

    rejected = pd.DataFrame(
        {
            "symbol": ["BTCUSDT"] * 3,
            "ts": pd.to_datetime(["2024-03-05T01:00Z", "2024-03-05T02:00Z", "2024-03-05T03:00Z"], utc=True),
            "close": [float("inf"), float("nan"), -1.0],
            "reason": ["infinite value in close=inf", "NaN in close", "non-positive price in close"],
        }
    )
    barrier = threading.Barrier(2)

    def replace():
        with connect(warehouse_url) as conn, conn.transaction():
            barrier.wait()
            replace_quarantine(conn, "raw_ohlcv", "2024-03-05|BTCUSDT", rejected)

    threads = [threading.Thread(target=replace) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert _count(warehouse_url, "quarantine") == 3  # two concurrent runs never double a key
    with connect(warehouse_url) as conn:
        before = conn.execute("SELECT quarantine_id, payload->>'close' FROM quarantine ORDER BY ts").fetchall()
        replace_quarantine(conn, "raw_ohlcv", "2024-03-05|BTCUSDT", rejected)  # unchanged: not rewritten
        conn.commit()
        after = conn.execute("SELECT quarantine_id, payload->>'close' FROM quarantine ORDER BY ts").fetchall()
    assert before == after and [v for _, v in after] == ["Infinity", "NaN", "-1.0"]
