"""The whole graph on real PostgreSQL: 4 symbols, 12 days, train, predict out of sample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, build_sensor_context
from dagster_helpers import count, ingest_days, metadata_of, run_assets

from pipeline_assets.assets.models import retrain_run_config
from pipeline_assets.automation.sensors import labelled_rows_sensor
from pipeline_assets.ml.direction_xgb import MODEL_NAME
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect

FIRST = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = [(FIRST + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(12)]
TRAIN_END = datetime(2024, 3, 10, tzinfo=UTC)
PREDICT_DAYS = ["2024-03-10", "2024-03-11"]


@pytest.fixture(scope="module")
def graph(database_url):
    from pipeline_assets.store.warehouse import truncate_all

    with connect(database_url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    ingest_days(database_url, DAYS, SYMBOLS, instance)
    training = run_assets(
        ["training_dataset", "direction_model_xgboost"],
        database_url,
        instance=instance,
        run_config=retrain_run_config(TRAIN_END, train_days=12, min_rows=200),
    )
    inference = [
        run_assets(
            ["ml_predictions", "trading_signals", "dashboard_data", "model_performance"],
            database_url,
            instance=instance,
            partition_range=(PREDICT_DAYS[0], PREDICT_DAYS[-1]),
        )
    ]
    return {"url": database_url, "instance": instance, "training": training, "inference": inference}


def test_every_stage_wrote_rows(graph):
    url = graph["url"]
    n_symbols = len(SYMBOLS)
    assert count(url, "SELECT count(*) FROM raw_ohlcv") == 12 * 24 * n_symbols
    assert count(url, "SELECT count(*) FROM ml_features_ohlcv") == 12 * 24 * n_symbols
    # labels: all but the last horizon (4 bars) of the last day have matured
    assert count(url, "SELECT count(*) FROM ml_labels") == (12 * 24 - 4) * n_symbols
    assert count(url, "SELECT count(*) FROM ml_features_ohlcv WHERE rsi_14 IS NULL") > 0  # warm-up at the start
    assert count(url, "SELECT count(*) FROM ml_features_ohlcv WHERE ts >= '2024-03-05' AND macd_hist_pct IS NULL") == 0
    assert count(url, "SELECT count(*) FROM ml_predictions") == 2 * 24 * n_symbols
    assert count(url, "SELECT count(*) FROM trading_signals") == 2 * 24 * n_symbols
    assert count(url, "SELECT count(*) FROM dashboard_data") == 2 * 24 * n_symbols
    assert count(url, "SELECT count(*) FROM quarantine") == 0


def test_model_is_a_verified_row_with_lineage(graph):
    meta = metadata_of(graph["training"], "direction_model_xgboost")
    with connect(graph["url"]) as conn:
        record, artifact = registry.load_artifact(conn, meta["model_id"])
    assert record.status == "champion" and record.format == "xgboost-ubj"
    assert record.artifact_sha256 == registry.sha256_hex(artifact) == meta["artifact_sha256"]
    assert record.labels_matured_until <= TRAIN_END
    assert record.params["feature_columns"][0] == "log_return_1h"
    test = record.metrics["test"]
    assert 0 <= test["accuracy"] <= 1 and test["rows"] > 0
    assert record.metrics["purged_rows"] > 0  # the purge between slices really removed overlapping labels
    # the held-out metrics sit beside their baselines, and a WARN check says whether the model beats them
    report = record.metrics["test_vs_baselines"]
    assert set(report["metrics"]) == {"model", "class_priors", "majority_class", "persistence"}
    (check,) = graph["training"].get_asset_check_evaluations()
    assert check.check_name == "beats_baselines" and check.severity.value == "WARN"
    assert check.passed == report["beats_baselines"] and check.metadata["verdict"].value == report["verdict"]


def test_predictions_are_point_in_time_and_the_leakage_check_passes(graph):
    for result in graph["inference"]:
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        feature_drift = checks.pop("feature_drift")  # informative on 2 days; its content is tested below
        assert checks == {
            "model_trained_before_prediction_time": True,
            "probabilities_sum_to_one": True,
            "model_available": True,
            "performance_drift": True,
        }
        evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "feature_drift")
        assert feature_drift == (evaluation.metadata["shifted_features"].value == [])
        assert "rsi_14" in evaluation.metadata["psi"].value
    assert (
        count(
            graph["url"],
            """
        SELECT count(*) FROM ml_predictions p JOIN ml_models_metadata m USING (model_id)
        WHERE m.labels_matured_until >= p.ts""",
        )
        == 0
    )


def test_rematerialising_predictions_is_idempotent(graph):
    url = graph["url"]
    before = count(url, "SELECT count(*) FROM ml_predictions") + count(url, "SELECT count(*) FROM dashboard_data")
    result = run_assets(["ml_predictions", "trading_signals", "dashboard_data"], url, PREDICT_DAYS[0])
    after = count(url, "SELECT count(*) FROM ml_predictions") + count(url, "SELECT count(*) FROM dashboard_data")
    assert before == after
    assert metadata_of(result, "ml_predictions")["rows_unchanged"] == 24 * len(SYMBOLS)


def test_dashboard_rows_join_signals_prices_and_matured_returns(graph):
    with connect(graph["url"]) as conn:
        rows = pd.DataFrame(
            conn.execute(
                "SELECT d.position, d.forward_return, d.strategy_return, d.close, r.close "
                "FROM dashboard_data d JOIN raw_ohlcv r USING (symbol, ts)"
            ).fetchall(),
            columns=["position", "forward_return", "strategy_return", "close", "bar_close"],
        )
    assert (rows["close"] == rows["bar_close"]).all()
    matured = rows.dropna(subset=["forward_return"])
    assert len(matured) == len(rows)  # 2024-03-10/11 labels all matured by the 12th day
    assert (matured["strategy_return"] - matured["position"] * matured["forward_return"]).abs().max() < 1e-12


def test_days_before_the_first_model_are_reported_not_failed(graph):
    result = run_assets(["ml_predictions", "trading_signals"], graph["url"], "2024-03-08")
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["model_available"].passed is False
    reason = checks["model_available"].metadata["days_without_model"].value["2024-03-08"]
    assert "no promoted direction_xgboost model whose training labels all matured before 2024-03-08" in reason
    assert metadata_of(result, "ml_predictions")["rows"] == 0
    assert metadata_of(result, "trading_signals")["rows"] == 0
    assert count(graph["url"], "SELECT count(*) FROM ml_predictions WHERE ts < '2024-03-09'") == 0


def test_leaking_prediction_rolls_back_and_fails_the_run(graph):
    url = graph["url"]
    with connect(url) as conn, conn.transaction():
        leaky = registry.register_model(
            conn,
            model_name="legacy_model",
            artifact=b"x",
            format="test",
            feature_set_id="f",
            label_set_id="l",
            model_version_hash="h",
            params={},
            metrics={},
            train_start=None,
            train_end=None,
            labels_matured_until=datetime(2024, 3, 12, tzinfo=UTC),
        )
        conn.execute(
            "INSERT INTO ml_predictions (symbol, ts, model_name, model_id, prob_sell, prob_hold, prob_buy, "
            "predicted_direction) VALUES ('BTCUSDT', '2024-03-11T05:00Z', 'legacy_model', %s, 0.2, 0.3, 0.5, 2)",
            (leaky.model_id,),
        )
    day_rows = "SELECT count(*) FROM ml_predictions WHERE model_name = 'direction_xgboost' AND ts::date = '2024-03-11'"
    with connect(url) as conn, conn.transaction():
        conn.execute("DELETE FROM trading_signals WHERE ts::date = '2024-03-11'")
        conn.execute("DELETE FROM ml_predictions WHERE model_name = 'direction_xgboost' AND ts::date = '2024-03-11'")
    try:
        result = run_assets(["ml_predictions", "trading_signals"], url, "2024-03-11", raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "predictions from a model that saw their future; nothing was written" in failure
        assert "legacy_model" in failure
        materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert materialised == set()
        assert count(url, day_rows) == 0  # the run's own predictions were rolled back with the leak
    finally:
        with connect(url) as conn, conn.transaction():
            conn.execute("DELETE FROM ml_predictions WHERE model_name = 'legacy_model'")
            conn.execute("DELETE FROM ml_models_metadata WHERE model_name = 'legacy_model'")
        run_assets(["ml_predictions", "trading_signals"], url, "2024-03-11")
        assert count(url, day_rows) == 24 * len(SYMBOLS)


def test_sensor_requests_online_update_and_model_learns_each_row_once(graph, monkeypatch):
    import pipeline_assets.assets.models as model_assets

    monkeypatch.setattr(model_assets, "ONLINE_PAGE_SIZE", 500)  # several keyset pages in one run
    url, instance = graph["url"], graph["instance"]
    tick = labelled_rows_sensor(build_sensor_context(instance=instance))
    assert len(tick.run_requests) == 1
    assert int(tick.run_requests[0].tags["new_labelled_rows"]) == count(url, "SELECT count(*) FROM ml_labels")
    first = run_assets(["online_model_river"], url, instance=instance)
    learned = metadata_of(first, "online_model_river")["new_rows_learned"]
    learnable = count(
        url,
        """
        SELECT count(*) FROM ml_labels l JOIN ml_features_ohlcv f USING (symbol, ts)
        WHERE f.macd_hist_pct IS NOT NULL AND f.rsi_14 IS NOT NULL AND f.volume_zscore_24h IS NOT NULL
          AND f.log_return_24h IS NOT NULL AND f.bb_pctb_20 IS NOT NULL""",
    )
    assert learned == learnable == count(url, "SELECT count(*) FROM online_model_learned_rows")
    second = run_assets(["online_model_river"], url, instance=instance)
    assert metadata_of(second, "online_model_river")["new_rows_learned"] == 0
    with connect(url) as conn:
        online = registry.champion(conn, "direction_river")
        _, artifact = registry.load_artifact(conn, online.model_id)
    from pipeline_assets.ml.online_river import deserialize

    state = deserialize(artifact)
    assert state.rows_learned == learned
    assert 0.2 < online.metrics["prequential_accuracy"] < 1.0
    assert online.model_name != MODEL_NAME


def test_retraining_registers_a_new_version_compared_on_unseen_rows(graph):
    url = graph["url"]
    result = run_assets(
        ["training_dataset", "direction_model_xgboost"],
        url,
        run_config=retrain_run_config("2024-03-12T23:00:00+00:00", train_days=12, min_rows=200),
    )
    meta = metadata_of(result, "direction_model_xgboost")
    assert meta["version"] == 2
    assert meta["champion_comparison_rows"] >= 50
    assert isinstance(meta["champion_log_loss_on_unseen_test"], float)
    # the decision and its figures are recorded; promotion needs a significant improvement
    with connect(url) as conn:
        promoted, rows, low, high, reason = conn.execute(
            "SELECT promoted, compared_rows, ci_low, ci_high, reason FROM model_promotion_decisions "
            "WHERE candidate_id = %s",
            (meta["model_id"],),
        ).fetchone()
    assert rows == meta["champion_comparison_rows"] and low <= high and "interval" in reason
    assert promoted == (high < 0) == (meta["status"] == "champion")
    assert (
        count(
            url, "SELECT count(*) FROM ml_models_metadata WHERE model_name = %s AND status = 'champion'", (MODEL_NAME,)
        )
        == 1
    )
    # whichever won, 2024-03-11 may only be predicted by the model whose labels matured before it
    with connect(url) as conn:
        chosen = registry.model_for_prediction(conn, MODEL_NAME, datetime(2024, 3, 11, tzinfo=UTC))
    assert chosen.version == 1
    rerun = run_assets(["ml_predictions"], url, "2024-03-11")
    assert metadata_of(rerun, "ml_predictions")["model_ids"] == [chosen.model_id]


def test_model_performance_matches_the_matured_predictions(graph):
    url = graph["url"]
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT day::text, matured_rows, accuracy, reference_log_loss FROM model_performance ORDER BY day"
        ).fetchall()
        expected = conn.execute(
            """
            SELECT p.ts::date::text, count(*), avg((p.predicted_direction = l.direction)::int)
            FROM ml_predictions p JOIN ml_labels l USING (symbol, ts)
            WHERE p.model_name = 'direction_xgboost' GROUP BY 1 ORDER BY 1
            """
        ).fetchall()
    assert [(d, n) for d, n, *_ in rows] == [(d, n) for d, n, _ in expected] == [("2024-03-10", 96), ("2024-03-11", 96)]
    assert [a for _, _, a, _ in rows] == pytest.approx([float(a) for *_, a in expected])
    meta = metadata_of(graph["training"], "direction_model_xgboost")
    assert rows[0][3] == pytest.approx(meta["test_log_loss"])


def test_drift_sensor_requests_a_retrain_only_when_realised_loss_exceeds_held_out(graph):
    from dagster import SkipReason

    from pipeline_assets.automation.sensors import performance_drift_sensor
    from pipeline_assets.resources import WarehouseResource

    url = graph["url"]
    with connect(url) as conn:
        champion = registry.champion(conn, MODEL_NAME)
    reference = champion.metrics["test"]["log_loss"]
    days = [f"2024-03-{d:02d}" for d in range(13, 19)]

    def tick():
        context = build_sensor_context(resources={"warehouse": WarehouseResource(database_url=url)})
        return performance_drift_sensor(context)

    def set_days(log_loss):
        with connect(url) as conn, conn.transaction():
            conn.execute("DELETE FROM model_performance WHERE day >= '2024-03-13'")
            for day in days:
                conn.execute(
                    "INSERT INTO model_performance (day, model_name, model_id, matured_rows, accuracy, log_loss, "
                    "log_loss_std, majority_accuracy, reference_log_loss) "
                    "VALUES (%s, %s, %s, 96, 0.4, %s, 0.5, 0.4, %s)",
                    (day, MODEL_NAME, champion.model_id, log_loss, reference),
                )

    try:
        # 96 rows a day of overlapping 4h labels = 24 effective rows; std 0.5 -> standard error 0.102
        set_days(reference + 0.05)  # half a standard error a day: within the CUSUM's allowance
        assert isinstance(tick(), SkipReason)
        set_days(reference + 0.25)  # 2.4 standard errors a day for 6 days
        request = tick()
        assert request.run_key == f"drift-retrain|{champion.model_id}|2024-03-18"
        assert request.tags["trigger"] == "performance_drift" and "CUSUM" in request.tags["drift_reason"]
        assert "training_dataset" in request.run_config["ops"]
    finally:
        with connect(url) as conn, conn.transaction():
            conn.execute("DELETE FROM model_performance WHERE day >= '2024-03-13'")


def test_the_model_was_trained_from_a_registered_dataset_and_retrains_bit_for_bit(graph, tmp_path):
    import json
    from pathlib import Path

    from pipeline_assets.store import artifacts

    url = graph["url"]
    meta = metadata_of(graph["training"], "training_dataset")
    with connect(url) as conn:
        record = artifacts.get_training_dataset(conn, meta["dataset_id"])
        model = registry.get_model(conn, metadata_of(graph["training"], "direction_model_xgboost")["model_id"])
        _, artifact = registry.load_artifact(conn, model.model_id)
    assert model.params["training_dataset_id"] == record.dataset_id
    assert model.params["training_dataset_sha256"] == record.sha256
    written = json.loads((Path(record.uri).parent / "meta.json").read_text())
    assert written["parquet_sha256"] == record.sha256 and written["rows"] == record.row_count > 200
    assert written["feature_set_id"] == model.feature_set_id and written["label_set_id"] == model.label_set_id
    assert set(written["class_counts"]) <= {"0", "1", "2"} and written["dependencies"]["xgboost-cpu"] != "absent"
    frame = artifacts.read_training_dataset(record)
    assert frame["matured_at"].max() < TRAIN_END
    # the model's feature set is in the registry, with the family versions it combines
    from pipeline_assets.store.feature_sets import registered

    with connect(url) as conn:
        entry = registered(conn, model.feature_set_id)
    assert entry["kind"] == "model" and set(entry["families"]) == {"ohlcv", "sentiment"}
    assert entry["columns"] == list(frame.columns.intersection(entry["columns"]))

    # the same dataset trains the same model, byte for byte
    again = run_assets(
        ["direction_model_xgboost"],
        url,
        run_config={"ops": {"direction_model_xgboost": {"config": {"dataset_id": record.dataset_id, "min_rows": 200}}}},
    )
    with connect(url) as conn:
        retrained = registry.get_model(conn, metadata_of(again, "direction_model_xgboost")["model_id"])
        _, second = registry.load_artifact(conn, retrained.model_id)
        conn.execute("DELETE FROM ml_models_metadata WHERE model_id = %s", (retrained.model_id,))
        conn.commit()
    assert second == artifact

    # an altered dataset file is refused before training
    Path(record.uri).write_bytes(Path(record.uri).read_bytes()[:-8] + b"tampered")
    refused = run_assets(
        ["direction_model_xgboost"],
        url,
        raise_on_error=False,
        run_config={"ops": {"direction_model_xgboost": {"config": {"dataset_id": record.dataset_id}}}},
    )
    failure = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert "refusing to train on altered data" in failure


def test_the_in_process_predictor_gives_ml_predictions_numbers(graph):
    from pipeline_assets.serving import Predictor, PredictorError
    from pipeline_assets.store.warehouse import read_model_inputs, read_predictions

    url = graph["url"]
    start = datetime.fromisoformat(PREDICT_DAYS[0]).replace(tzinfo=UTC)
    end = start + timedelta(days=1)
    with connect(url) as conn:
        stored = read_predictions(conn, SYMBOLS, start, end, MODEL_NAME).sort_values(["ts", "symbol"])
        inputs = read_model_inputs(conn, SYMBOLS, start, end)
    model_id = int(stored["model_id"].iloc[0])
    predictor = Predictor.from_warehouse(url, model_id=model_id)
    assert predictor.member.model_id == model_id and len(predictor.member.sha256) == 64
    rows = inputs.merge(stored[["symbol", "ts"]], on=["symbol", "ts"]).sort_values(["ts", "symbol"])
    proba = predictor.predict_batch(rows)
    expected = stored[["prob_sell", "prob_hold", "prob_buy"]].to_numpy()
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-12)
    one = predictor.predict(rows.iloc[5][list(predictor.feature_columns)].to_dict())
    assert one.probabilities["BUY"] == pytest.approx(expected[5, 2], abs=1e-12)
    assert one.confidence == max(one.probabilities.values()) and one.members == ((MODEL_NAME, model_id),)
    with pytest.raises(PredictorError, match="rsi_14"):
        predictor.predict({**rows.iloc[0][list(predictor.feature_columns)].to_dict(), "rsi_14": float("nan")})


def test_walk_forward_report_shows_every_fold_beside_its_baselines(graph):
    result = run_assets(
        ["walk_forward_report"],
        graph["url"],
        instance=graph["instance"],
        run_config={
            "ops": {
                "walk_forward_report": {
                    "config": {
                        "history_days": 12,
                        "train_days": 5,
                        "step_days": 2,
                        "min_train_rows": 200,
                        "end": "2024-03-13T00:00:00+00:00",
                    }
                }
            }
        },
    )
    meta = metadata_of(result, "walk_forward_report")
    assert meta["folds"] >= 3 and meta["rows"] > 0
    for column in ("log_loss", "priors_log_loss", "persistence_log_loss", "brier", "ic"):
        assert column in meta["folds_table"]
    assert (
        "buy_and_hold" in meta["strategy_vs_buy_and_hold_and_flat"]
        and "flat" in meta["strategy_vs_buy_and_hold_and_flat"]
    )
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "walk_forward_beats_baselines" and check.severity.value == "WARN"
    assert check.passed == ("NOT" not in meta["verdict"])
