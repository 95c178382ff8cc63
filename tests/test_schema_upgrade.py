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


LAST_BEFORE_FEATURE_KEY = "0046"


def _upgrade_feature_tables(url: str, tmp_path: Path, timescale: bool) -> None:
    """A warehouse of the schema before 0047 holding OHLCV and sentiment features (keyed (symbol,
    ts), TimescaleDB chunks compressed) and a model trained on them, upgraded: feature_set_id joins
    the key, the rows keep their ids, the model stays servable and a second version fits beside."""
    import numpy as np
    import pandas as pd

    from pipeline_assets.features.families import FAMILIES
    from pipeline_assets.features.ohlcv_features import FEATURE_COLUMNS, FEATURE_SET_ID, compute_ohlcv_features
    from pipeline_assets.ml.dataset import MODEL_FEATURE_SET_ID
    from pipeline_assets.sources.synthetic import SyntheticMarket
    from pipeline_assets.store import models as registry
    from pipeline_assets.store.frames import upsert_frame
    from pipeline_assets.store.warehouse import read_serving_inputs

    old = tmp_path / "old_sql"
    old.mkdir()
    for path in sorted(Path(sql_dir()).glob("*.sql")):
        if path.name[:4] <= LAST_BEFORE_FEATURE_KEY:
            shutil.copy(path, old / path.name)
    migrate(url, old)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=70)
    bars = SyntheticMarket().ohlcv("BTCUSDT", start, end)
    ohlcv = compute_ohlcv_features(bars[["ts", "open", "high", "low", "close", "volume"]], symbol="BTCUSDT")
    ohlcv.insert(0, "symbol", "BTCUSDT")
    ohlcv.insert(2, "feature_set_id", FEATURE_SET_ID)
    sentiment_columns = FAMILIES["sentiment"].columns
    sentiment = pd.DataFrame(
        {"symbol": "BTCUSDT", "ts": ohlcv["ts"], "feature_set_id": FAMILIES["sentiment"].feature_set_id}
    )
    for i, column in enumerate(sentiment_columns):
        sentiment[column] = (np.arange(len(sentiment)) % 7 + i) if column.startswith("headline_count") else 0.1 * i
    with connect(url) as conn, conn.transaction():
        upsert_frame(conn, "ml_features_ohlcv", ohlcv, ["symbol", "ts"])  # the key before 0047
        upsert_frame(conn, "ml_features_sentiment", sentiment, ["symbol", "ts"])
        model = registry.register_model(
            conn,
            model_name="direction_xgboost",
            artifact=b"stored before the upgrade",
            format="xgboost-ubj",
            feature_set_id=MODEL_FEATURE_SET_ID,
            label_set_id="labels",
            model_version_hash="before-0047",
            params={},
            metrics={},
            train_start=start,
            train_end=end,
            labels_matured_until=end,
        )
    if timescale:
        with connect(url, autocommit=True) as conn:
            (compressed,) = conn.execute(
                "SELECT count(compress_chunk(c)) FROM show_chunks('ml_features_ohlcv') c"
            ).fetchone()
        assert compressed >= 2

    report = migrate(url)
    assert "0047_feature_set_key.sql" in report.applied
    assert ("0048_feature_set_key_compression.timescale.sql" in report.applied) is timescale
    with connect(url) as conn:
        for table in ("ml_features_ohlcv", "ml_features_sentiment"):
            key = conn.execute(
                "SELECT array_agg(a.attname ORDER BY k.i) FROM pg_index x "
                "CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, i) "
                "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum "
                "WHERE x.indrelid = %s::regclass AND x.indisprimary",
                (table,),
            ).fetchone()[0]
            assert key == ["symbol", "ts", "feature_set_id"], table
        ids = conn.execute("SELECT feature_set_id, count(*) FROM ml_features_ohlcv GROUP BY 1").fetchall()
        assert ids == [(FEATURE_SET_ID, len(ohlcv))]
        record = registry.get_model(conn, model.model_id)
        served = read_serving_inputs(conn, record.feature_set_id, ["BTCUSDT"], start, end)
    assert len(served) == len(ohlcv)
    np.testing.assert_array_equal(served[list(FEATURE_COLUMNS)].to_numpy(), ohlcv[list(FEATURE_COLUMNS)].to_numpy())
    np.testing.assert_array_equal(served["headline_count_24h"].to_numpy(), sentiment["headline_count_24h"].to_numpy())
    with connect(url) as conn, conn.transaction():
        again = upsert_frame(conn, "ml_features_ohlcv", ohlcv, ["symbol", "ts", "feature_set_id"])
        other = upsert_frame(
            conn,
            "ml_features_ohlcv",
            ohlcv.assign(feature_set_id="ohlcv-v2-upgraded"),
            ["symbol", "ts", "feature_set_id"],
        )
    assert (again.inserted, again.updated) == (0, 0) and other.inserted == len(ohlcv)
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM ml_features_ohlcv").fetchone()[0] == 2 * len(ohlcv)
        assert len(read_serving_inputs(conn, MODEL_FEATURE_SET_ID, ["BTCUSDT"], start, end)) == len(ohlcv)
        if timescale:
            segments = conn.execute(
                "SELECT segmentby FROM timescaledb_information.hypertable_compression_settings "
                "WHERE hypertable = 'ml_features_ohlcv'::regclass"
            ).fetchone()[0]
            assert segments == "symbol,feature_set_id"


def test_feature_set_id_joins_the_feature_key_on_a_populated_warehouse(fresh_database, tmp_path):
    _upgrade_feature_tables(fresh_database, tmp_path, timescale=False)


def test_feature_set_id_joins_the_feature_key_on_compressed_timescale_chunks(timescale_fresh_database, tmp_path):
    _upgrade_feature_tables(timescale_fresh_database, tmp_path, timescale=True)


def test_challenger_migration_upgrades_a_populated_registry(fresh_database, tmp_path):
    """0051 on a registry of the previous schema: non-promoted direction models (left as candidates
    that never predicted) become challengers, ensemble weight sets stay candidates, recorded
    decisions get basis 'held_out' and their action, and the shadow table starts empty."""
    old = tmp_path / "old_sql"
    old.mkdir()
    for path in sorted(Path(sql_dir()).glob("*.sql")):
        if path.name[:4] < "0051":
            shutil.copy(path, old / path.name)
    migrate(fresh_database, old)
    insert = (
        "INSERT INTO ml_models_metadata (model_name, version, format, artifact, artifact_sha256, feature_set_id, "
        "label_set_id, model_version_hash, params, metrics, labels_matured_until, status, promoted_at) "
        "VALUES (%s, %s, 'f', 'x', 'sha', 'fs', 'ls', 'h', '{}', '{}', '2024-03-01', %s, %s) RETURNING model_id"
    )
    with connect(fresh_database) as conn, conn.transaction():
        champion = conn.execute(
            insert, ("direction_xgboost", 1, "champion", datetime(2024, 3, 2, tzinfo=UTC))
        ).fetchone()[0]
        loser = conn.execute(insert, ("direction_xgboost", 2, "candidate", None)).fetchone()[0]
        weights = conn.execute(insert, ("direction_ensemble", 1, "candidate", None)).fetchone()[0]
        for candidate, promoted in ((champion, True), (loser, False)):
            conn.execute(
                "INSERT INTO model_promotion_decisions (model_name, candidate_id, promoted, reason, compared_rows, "
                "level) VALUES ('direction_xgboost', %s, %s, 'r', 0, 0.95)",
                (candidate, promoted),
            )
    report = migrate(fresh_database)
    assert "0051_challengers_shadow_predictions.sql" in report.applied
    with connect(fresh_database) as conn:
        status = dict(conn.execute("SELECT model_id, status FROM ml_models_metadata").fetchall())
        decisions = dict(
            conn.execute("SELECT candidate_id, basis || '/' || action FROM model_promotion_decisions").fetchall()
        )
    assert status == {champion: "champion", loser: "challenger", weights: "candidate"}
    assert decisions == {champion: "held_out/promoted", loser: "held_out/challenger"}
    assert count(fresh_database, "SELECT count(*) FROM ml_shadow_predictions") == 0
    with connect(fresh_database) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO ml_shadow_predictions (symbol, ts, model_name, model_id, prob_sell, prob_hold, prob_buy, "
            "predicted_direction) VALUES ('BTCUSDT', '2024-03-05', 'direction_xgboost', %s, 0.2, 0.3, 0.5, 2)",
            (loser,),
        )
    assert count(fresh_database, "SELECT count(*) FROM ml_shadow_predictions WHERE model_id = %s", (loser,)) == 1
