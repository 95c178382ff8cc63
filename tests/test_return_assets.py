"""The forward-return member on real PostgreSQL: trained from the registered training dataset with
targets known at its cut-off, registered and promoted, then predicting every symbol, closed hour
and horizon point-in-time (two model versions in one range run), a leak rolling back the whole
write, and an idempotent rerun."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, ingest_days, metadata_of, run_assets

from pipeline_assets.assets.models import retrain_run_config
from pipeline_assets.ml import return_regressor as rr
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store import artifacts
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame
from pipeline_assets.store.warehouse import read_model_inputs, truncate_all

FIRST = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = [(FIRST + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(24)]
TRAIN_END = datetime(2024, 3, 18, tzinfo=UTC)
SECOND_TRAIN_END = datetime(2024, 3, 20, tzinfo=UTC)
PREDICT = ("2024-03-17", "2024-03-21")
PER_DAY = 24 * len(SYMBOLS) * len(rr.HORIZONS)


def _train(url, instance, train_end):
    config = retrain_run_config(train_end, train_days=17, min_rows=200, models=("return_model_ridge",))
    return run_assets(["training_dataset", "return_model_ridge"], url, instance=instance, run_config=config)


@pytest.fixture(scope="module")
def graph(database_url):
    with connect(database_url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    ingest_days(database_url, DAYS, SYMBOLS, instance)
    first = _train(database_url, instance, TRAIN_END)
    second = _train(database_url, instance, SECOND_TRAIN_END)
    with connect(database_url) as conn, conn.transaction():
        versions = {
            r.version: r
            for r in (
                registry.get_model(conn, m)
                for (m,) in conn.execute(
                    "SELECT model_id FROM ml_models_metadata WHERE model_name = %s", (rr.MODEL_NAME,)
                ).fetchall()
            )
        }
        decisions = read_frame(
            conn,
            "SELECT candidate_id, promoted, reason FROM model_promotion_decisions WHERE model_name = %s "
            "ORDER BY decision_id",
            (rr.MODEL_NAME,),
        )
        # whatever the significance test decided, an operator's promotion makes version 2 the
        # champion, so the range run below spans two versions
        registry.promote_model(conn, versions[2].model_id)
        versions = {v: registry.get_model(conn, r.model_id) for v, r in versions.items()}
    result = run_assets(["ml_return_predictions"], database_url, instance=instance, partition_range=PREDICT)
    return {
        "url": database_url,
        "instance": instance,
        "first": first,
        "second": second,
        "versions": versions,
        "decisions": decisions,
        "result": result,
    }


def _stored(url, day=None):
    query = (
        "SELECT symbol, ts, horizon_hours, model_id, predicted_return, matures_at, predicted_at FROM "
        "ml_return_predictions"
    )
    params: list = []
    if day:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        query += " WHERE ts >= %s AND ts < %s"
        params = [start, start + timedelta(days=1)]
    with connect(url) as conn:
        return read_frame(conn, query + " ORDER BY ts, symbol, horizon_hours", params)


def test_model_is_registered_with_metrics_beside_baselines_and_first_becomes_champion(graph):
    meta = metadata_of(graph["first"], "return_model_ridge")
    assert "first valid model" in meta["promotion"]
    assert "zero_return" in meta["held_out_vs_baselines"] and "persistence" in meta["held_out_vs_baselines"]
    assert re.match(r"(beats|does not beat) its baselines", meta["verdict"]), meta["verdict"]
    assert meta["training_seconds"] > 0 and meta["load_ms"] > 0 and "refit" in meta["metrics_basis"]
    first, second = graph["versions"][1], graph["versions"][2]
    assert first.format == rr.ARTIFACT_FORMAT and first.label_set_id == rr.TARGET_SET_ID
    for horizon in ("1", "4", "24"):
        report = first.metrics["horizons"][horizon]["test_vs_baselines"]
        assert set(report["metrics"]) == {"model", *rr.BASELINES}
        assert report["verdict"].startswith(f"{horizon}h: ")
        assert len(report["differences"]["squared_error_minus_persistence"]["ci95"]) == 2
    # targets matured before the dataset's cut-off only
    assert first.labels_matured_until < TRAIN_END and second.labels_matured_until < SECOND_TRAIN_END
    assert first.labels_matured_until > TRAIN_END - timedelta(hours=2)
    # the second version was judged against the first on rows the first never saw
    decisions = graph["decisions"]
    assert decisions["candidate_id"].tolist() == [first.model_id, second.model_id]
    assert decisions["promoted"].tolist()[0] is True
    assert "unseen rows" in decisions["reason"].iloc[1]
    # the artifact verifies against the ledger and is JSON, not a pickle
    with connect(graph["url"]) as conn:
        _, artifact = registry.load_artifact(conn, first.model_id)
        dataset = artifacts.get_training_dataset(conn, first.params["training_dataset_id"])
    assert rr.deserialize(artifact).horizons.keys() == {1, 4, 24}
    assert pd.Timestamp(dataset.meta["matured_by"]) == pd.Timestamp(TRAIN_END)


def test_rows_for_every_symbol_hour_and_horizon_from_the_point_in_time_model(graph):
    url = graph["url"]
    first, second = graph["versions"][1], graph["versions"][2]
    stored = _stored(url)
    # 2024-03-17: no model's labels had all matured before it began; 18th..21st predicted
    assert stored["ts"].min() == pd.Timestamp("2024-03-18", tz="UTC")
    assert len(stored) == 4 * PER_DAY
    assert stored.groupby("horizon_hours").size().to_dict() == {h: 4 * 24 * len(SYMBOLS) for h in rr.HORIZONS}
    day = stored["ts"].dt.strftime("%Y-%m-%d")
    used = stored.groupby(day)["model_id"].unique().map(lambda ids: sorted(ids)).to_dict()
    assert used == {
        "2024-03-18": [first.model_id],
        "2024-03-19": [first.model_id],
        "2024-03-20": [second.model_id],
        "2024-03-21": [second.model_id],
    }
    assert (stored["matures_at"] == stored["ts"] + pd.to_timedelta(stored["horizon_hours"] + 1, unit="h")).all()
    with connect(url) as conn:
        model_until = {m: registry.get_model(conn, m).labels_matured_until for m in stored["model_id"].unique()}
        inputs = read_model_inputs(conn, SYMBOLS, datetime(2024, 3, 20, tzinfo=UTC), datetime(2024, 3, 21, tzinfo=UTC))
        _, artifact = registry.load_artifact(conn, second.model_id)
    assert all(pd.Timestamp(model_until[m]) < ts for m, ts in zip(stored["model_id"], stored["ts"], strict=True))
    # stored values are the registered parameters' predictions, for every horizon
    model = rr.deserialize(artifact)
    rows = stored[day == "2024-03-20"]
    for horizon in rr.HORIZONS:
        expected = inputs.assign(predicted=rr.predict(model, inputs, horizon))[["symbol", "ts", "predicted"]]
        got = rows[rows["horizon_hours"] == horizon].merge(expected, on=["symbol", "ts"])
        assert len(got) == 24 * len(SYMBOLS)
        np.testing.assert_array_equal(got["predicted_return"].to_numpy(), got["predicted"].to_numpy())
    checks = {e.check_name: e for e in graph["result"].get_asset_check_evaluations()}
    assert checks["model_trained_before_prediction_time"].passed
    assert not checks["model_available"].passed  # warns for 2024-03-17, before the first model
    assert "2024-03-17" in checks["model_available"].metadata["days_without_model"].value
    day_meta = metadata_of(graph["result"], "ml_return_predictions", "2024-03-20")
    assert day_meta["rows"] == PER_DAY and day_meta["model_id"] == str(second.model_id)
    assert day_meta["rows_per_horizon"] == {f"{h}h": 24 * len(SYMBOLS) for h in rr.HORIZONS}
    assert metadata_of(graph["result"], "ml_return_predictions", "2024-03-17")["rows"] == 0


def test_rerun_is_idempotent(graph):
    url = graph["url"]
    before = _stored(url, "2024-03-19")
    result = run_assets(["ml_return_predictions"], url, instance=graph["instance"], partition_key="2024-03-19")
    after = _stored(url, "2024-03-19")
    pd.testing.assert_frame_equal(before, after)  # predicted_at too: unchanged rows are left alone
    assert metadata_of(result, "ml_return_predictions", "2024-03-19")["rows_changed"] == 0
    assert count(url, "SELECT count(*) FROM ml_return_predictions") == 4 * PER_DAY


def test_a_leaking_model_is_refused_and_nothing_is_written(graph):
    url = graph["url"]
    day = "2024-03-19"
    day_rows = (
        "SELECT count(*) FROM ml_return_predictions WHERE model_name = 'return_ridge' AND ts >= '2024-03-19' "
        "AND ts < '2024-03-20'"
    )
    with connect(url) as conn, conn.transaction():
        leaky = registry.register_model(
            conn,
            model_name="legacy_return_model",
            artifact=b"{}",
            format="test",
            feature_set_id="f",
            label_set_id="l",
            model_version_hash="h",
            params={},
            metrics={},
            train_start=None,
            train_end=None,
            labels_matured_until=datetime(2024, 3, 20, tzinfo=UTC),  # after the predicted hour
        )
        conn.execute(
            "INSERT INTO ml_return_predictions (symbol, ts, horizon_hours, model_name, model_id, predicted_return, "
            "matures_at) VALUES ('BTCUSDT', '2024-03-19T05:00Z', 4, 'legacy_return_model', %s, 0.01, "
            "'2024-03-19T10:00Z')",
            (leaky.model_id,),
        )
        conn.execute(
            "DELETE FROM ml_return_predictions WHERE model_name = 'return_ridge' AND ts >= '2024-03-19' "
            "AND ts < '2024-03-20'"
        )
    try:
        result = run_assets(["ml_return_predictions"], url, day, instance=graph["instance"], raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "predictions from a model that saw their future; nothing was written" in failure
        assert "legacy_return_model" in failure and "BTCUSDT" in failure
        assert not result.get_asset_materialization_events()
        assert count(url, day_rows) == 0  # the run's own rows were rolled back with the leak
        # the warehouse-wide scan sees the leaking row too
        from pipeline_assets.definitions import defs

        checks = defs.resolve_job_def("warehouse_checks_job").execute_in_process(instance=DagsterInstance.ephemeral())
        scan = next(e for e in checks.get_asset_check_evaluations() if e.check_name == "ml_predictions_leakage_scan")
        assert not scan.passed
        assert scan.metadata["violations_by_table"].value == {"ml_predictions": 0, "ml_return_predictions": 1}
    finally:
        with connect(url) as conn, conn.transaction():
            conn.execute("DELETE FROM ml_return_predictions WHERE model_name = 'legacy_return_model'")
            conn.execute("DELETE FROM ml_models_metadata WHERE model_name = 'legacy_return_model'")
    run_assets(["ml_return_predictions"], url, day, instance=graph["instance"])
    assert count(url, day_rows) == PER_DAY


def test_the_database_refuses_a_non_finite_prediction(graph):
    import psycopg

    model_id = graph["versions"][1].model_id
    with pytest.raises(psycopg.errors.CheckViolation), connect(graph["url"]) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO ml_return_predictions (symbol, ts, horizon_hours, model_name, model_id, predicted_return, "
            "matures_at) VALUES ('BTCUSDT', '2024-03-20T00:00Z', 1, 'return_ridge', %s, 'NaN', '2024-03-20T02:00Z')",
            (model_id,),
        )
