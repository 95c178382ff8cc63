"""The linear member and the ensemble on real PostgreSQL: member rows and ensemble rows per hour,
weights only from matured labels, a corrupt member tripping its breaker without failing the day,
and the class-priors fallback when no member is usable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, ingest_days, metadata_of, run_assets

from pipeline_assets.assets.ensemble import ENSEMBLE_NAME
from pipeline_assets.assets.models import retrain_run_config
from pipeline_assets.ml import linear_model
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame
from pipeline_assets.store.warehouse import truncate_all

FIRST = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = [(FIRST + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(14)]
TRAIN_END = datetime(2024, 3, 10, tzinfo=UTC)
PREDICT = ("2024-03-10", "2024-03-12")
DIRECTION_MEMBERS = ("direction_model_xgboost", "direction_model_linear", "direction_model_patterns")


@pytest.fixture(scope="module")
def trained(database_url):
    with connect(database_url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    ingest_days(database_url, DAYS, SYMBOLS, instance)
    run_assets(["ml_patterns"], database_url, instance=instance, partition_range=(DAYS[0], DAYS[-1]))
    config = retrain_run_config(TRAIN_END, train_days=12, min_rows=200, models=DIRECTION_MEMBERS)
    training = run_assets(
        ["training_dataset", "direction_model_xgboost", "direction_model_linear", "direction_model_patterns"],
        database_url,
        instance=instance,
        run_config=config,
    )
    run_assets(["ml_predictions"], database_url, instance=instance, partition_range=PREDICT)
    result = run_assets(["ml_ensemble_predictions"], database_url, instance=instance, partition_range=PREDICT)
    return {"url": database_url, "instance": instance, "training": training, "result": result}


def _rows(url, model_name, day=None):
    query = (
        "SELECT symbol, ts, model_id, prob_sell, prob_hold, prob_buy, members_used, weights_id, fallback_used "
        "FROM ml_predictions WHERE model_name = %s"
    )
    params = [model_name]
    if day:
        query += " AND ts >= %s AND ts < %s"
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        params += [start, start + timedelta(days=1)]
    with connect(url) as conn:
        return read_frame(conn, query + " ORDER BY ts, symbol", params)


def test_members_and_ensemble_rows_for_every_hour(trained):
    url = trained["url"]
    meta = metadata_of(trained["training"], "direction_model_linear")
    assert meta["status"] == "champion" and "first valid model" in meta["promotion"]
    hours = 3 * 24 * len(SYMBOLS)
    linear = _rows(url, linear_model.MODEL_NAME)
    ens = _rows(url, ENSEMBLE_NAME)
    assert len(linear) == len(ens) == hours
    last_day = ens["ts"] >= datetime.fromisoformat(PREDICT[-1]).replace(tzinfo=UTC)
    assert set(ens.loc[~last_day, "members_used"]) == {"direction_linear,direction_patterns,direction_xgboost"}
    # on this synthetic market the XGBoost member's 172 rows matured before the last day lose to the
    # class priors by more than the margin (+0.026 nats): the realised-loss gate leaves it out
    assert set(ens.loc[last_day, "members_used"]) == {"direction_linear,direction_patterns"}
    assert (ens["fallback_used"] == "none").all() and ens["weights_id"].notna().all()
    checks = {e.check_name: e for e in trained["result"].get_asset_check_evaluations()}
    assert checks["model_trained_before_prediction_time"].passed and not checks["no_open_breakers"].passed
    left_out = checks["no_open_breakers"].metadata["left_out_for_realised_loss"].value
    assert list(left_out) == [PREDICT[-1]] and list(left_out[PREDICT[-1]]) == ["direction_xgboost"]
    assert checks["no_open_breakers"].metadata["not_closed"].value == {}  # no breaker tripped
    with connect(url) as conn:  # the newest day's verdict is kept beside each breaker's state
        verdicts = dict(conn.execute("SELECT member, state->'realised_loss' FROM member_breakers").fetchall())
    assert verdicts["direction_xgboost"]["day"] == PREDICT[-1] and verdicts["direction_xgboost"]["worse"]
    assert not verdicts["direction_linear"]["worse"] and verdicts["direction_linear"]["rows"] == 172
    # every member's training and load time are recorded with the model and shown in the UI
    with connect(url) as conn:
        timings = conn.execute(
            "SELECT model_name, (metrics->>'training_seconds')::float, (metrics->>'load_ms')::float "
            "FROM ml_models_metadata WHERE model_name IN ('direction_xgboost', 'direction_linear', "
            "'direction_patterns')"
        ).fetchall()
    assert sorted(t[0] for t in timings) == ["direction_linear", "direction_patterns", "direction_xgboost"]
    assert all(t[1] > 0 and t[2] > 0 for t in timings), timings
    for asset_name in ("direction_model_xgboost", "direction_model_linear", "direction_model_patterns"):
        shown = metadata_of(trained["training"], asset_name)
        assert shown["training_seconds"] > 0 and shown["load_ms"] > 0, asset_name
    # the pattern member predicted every hour too; on this market it does not beat its baselines
    # and its own metadata says so
    assert len(_rows(url, "direction_patterns")) == hours
    patterns = metadata_of(trained["training"], "direction_model_patterns")
    assert patterns["status"] == "champion" and patterns["detections_in_window"] > 0
    assert "does NOT beat" in patterns["verdict"] and "bullish" in patterns["state_table"]
    # every ensemble row is the weighted mix of its members' rows, with the registered weights
    row = ens.iloc[100]
    with connect(url) as conn:
        _, artifact = registry.load_artifact(conn, int(row["model_id"]))
        (until,) = conn.execute(
            "SELECT labels_matured_until FROM ml_models_metadata WHERE model_id = %s", (int(row["model_id"]),)
        ).fetchone()
    weights = dict(zip(*(json.loads(artifact)[k] for k in ("members", "weights")), strict=True))
    assert sorted(weights) == ["direction_linear", "direction_patterns", "direction_xgboost"]
    cols = ["prob_sell", "prob_hold", "prob_buy"]
    mixed = np.zeros(3)
    for member, weight in weights.items():
        rows = linear if member == "direction_linear" else _rows(url, member)
        mixed += weight * rows.loc[(rows["symbol"] == row["symbol"]) & (rows["ts"] == row["ts"]), cols].to_numpy()[0]
    np.testing.assert_allclose(row[cols].to_numpy(dtype=float), mixed / mixed.sum(), atol=1e-12)
    assert until < row["ts"]  # the weights saw only labels matured before the predicted day


def test_signals_and_dashboard_rows_come_from_the_ensemble(trained):
    url, instance = trained["url"], trained["instance"]
    run_assets(["trading_signals", "dashboard_data"], url, instance=instance, partition_range=PREDICT)
    with connect(url) as conn:
        signals = read_frame(
            conn,
            "SELECT s.model_id, m.model_name FROM trading_signals s JOIN ml_models_metadata m USING (model_id)",
        )
        mismatched = conn.execute(
            "SELECT count(*) FROM dashboard_data d JOIN ml_predictions p ON p.symbol = d.symbol AND p.ts = d.ts "
            "AND p.model_name = %s WHERE d.prob_buy <> p.prob_buy",
            (ENSEMBLE_NAME,),
        ).fetchone()[0]
    assert len(signals) == 3 * 24 * len(SYMBOLS) and set(signals["model_name"]) == {ENSEMBLE_NAME}
    assert mismatched == 0


def _day_inputs(url, day):
    from pipeline_assets.ml.dataset import split_complete_rows
    from pipeline_assets.store.warehouse import read_model_inputs

    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    with connect(url) as conn:
        complete, _ = split_complete_rows(read_model_inputs(conn, SYMBOLS, start, start + timedelta(days=1)))
    return complete.sort_values(["ts", "symbol"], ignore_index=True)


@pytest.mark.parametrize("day", ["2024-03-11", "2024-03-12"])
def test_the_ensemble_predictor_serves_the_stored_ensemble_rows(trained, day):
    """Both members on 03-11; the linear member alone on 03-12 (XGBoost left out for realised loss)."""
    from pipeline_assets.serving import EnsemblePredictor, PredictorError

    url = trained["url"]
    predictor = EnsemblePredictor.from_warehouse(url, day)
    stored = _rows(url, ENSEMBLE_NAME, day)
    inputs = _day_inputs(url, day)
    one = predictor.predict(
        inputs.iloc[5][list(predictor.feature_columns)].to_dict(),
        symbol=inputs["symbol"].iloc[5],
        ts=inputs["ts"].iloc[5],
    )
    assert {",".join(sorted(m for m, _ in one.members))} == set(stored["members_used"])
    assert inputs[["symbol", "ts"]].equals(stored[["symbol", "ts"]])
    cols = ["prob_sell", "prob_hold", "prob_buy"]
    np.testing.assert_allclose(predictor.predict_batch(inputs), stored[cols].to_numpy(dtype=float), rtol=0, atol=1e-12)
    np.testing.assert_allclose(list(one.probabilities.values()), stored[cols].iloc[5].to_numpy(dtype=float), atol=1e-12)
    assert predictor.weights_model_id == int(stored["model_id"].iloc[0])
    with pytest.raises(PredictorError, match="not finite"):
        predictor.predict(np.full(len(predictor.feature_columns), np.nan))
    with pytest.raises(PredictorError, match="no ensemble rows for 2024-03-20"):
        EnsemblePredictor.from_warehouse(url, "2024-03-20")


ENSEMBLE_COLUMNS = ["symbol", "ts", "model_id", "prob_sell", "prob_hold", "prob_buy", "members_used", "weights_id"]


def test_one_day_runs_give_the_rows_of_the_range_run(trained):
    """The range run computed the linear member's rows of its first days in the same run; one-day
    runs read them back from ml_predictions. Weights and realised-loss verdicts must not differ."""
    url, instance = trained["url"], trained["instance"]
    from_range = _rows(url, ENSEMBLE_NAME)[ENSEMBLE_COLUMNS]
    # the last day's weights were fitted on matured rows (not the uniform fallback of thin history)
    last = from_range[from_range["ts"] >= datetime.fromisoformat(PREDICT[-1]).replace(tzinfo=UTC)]
    with connect(url) as conn:
        _, artifact = registry.load_artifact(conn, int(last["model_id"].iloc[0]))
    assert json.loads(artifact)["fitted_rows"] > 100  # rows of this run's earlier days, matured
    with connect(url) as conn, conn.transaction():
        conn.execute("DELETE FROM ml_predictions WHERE model_name IN (%s, %s)", (ENSEMBLE_NAME, "direction_linear"))
    days = sorted({d.strftime("%Y-%m-%d") for d in from_range["ts"]})
    for day in days:
        run_assets(["ml_ensemble_predictions"], url, instance=instance, partition_key=day)
    one_by_one = _rows(url, ENSEMBLE_NAME)[ENSEMBLE_COLUMNS]
    assert len(one_by_one) == len(from_range)
    for column in ENSEMBLE_COLUMNS:
        assert one_by_one[column].tolist() == from_range[column].tolist(), column


def test_a_member_losing_to_the_priors_on_matured_rows_leaves_the_next_day(trained):
    """Realised-loss gate: the linear member's stored rows of the first two days are made
    confidently wrong; a one-day run of the third day leaves it out too (the XGBoost member is
    already out on this market), says why, and warns; the pattern member is left alone."""
    url, instance = trained["url"], trained["instance"]
    before = _rows(url, ENSEMBLE_NAME, PREDICT[-1])
    first, last = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in (PREDICT[0], PREDICT[-1]))
    with connect(url) as conn, conn.transaction():
        # probability 0.98 on a class the label is not (the label's class gets 0.01)
        conn.execute(
            "UPDATE ml_predictions p SET prob_sell = CASE WHEN l.direction = 0 THEN 0.01 ELSE 0.98 END, "
            "prob_hold = CASE WHEN l.direction = 0 THEN 0.98 ELSE 0.01 END, prob_buy = 0.01 "
            "FROM ml_labels l WHERE l.symbol = p.symbol AND l.ts = p.ts AND p.model_name = 'direction_linear' "
            "AND p.ts >= %s AND p.ts < %s",
            (first, last),
        )
    try:
        result = run_assets(["ml_ensemble_predictions"], url, instance=instance, partition_key=PREDICT[-1])
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not checks["no_open_breakers"].passed
        left_out = checks["no_open_breakers"].metadata["left_out_for_realised_loss"].value
        assert list(left_out) == [PREDICT[-1]]
        assert sorted(left_out[PREDICT[-1]]) == ["direction_linear", "direction_xgboost"]
        verdict = metadata_of(result, "ml_ensemble_predictions", partition=PREDICT[-1])["realised_loss"]
        assert verdict["direction_linear"]["worse"] and verdict["direction_linear"]["rows"] == 172
        assert verdict["direction_linear"]["model_log_loss"] > 2.0 > verdict["direction_linear"]["baseline_log_loss"]
        # both lose to the priors: the pattern member alone makes the day's ensemble
        ens = _rows(url, ENSEMBLE_NAME, PREDICT[-1])
        assert len(ens) == len(before) and set(ens["members_used"]) == {"direction_patterns"}
        assert (ens["fallback_used"] == "none").all()
        from pipeline_assets.serving import EnsemblePredictor

        served = EnsemblePredictor.from_warehouse(url, PREDICT[-1]).predict_batch(_day_inputs(url, PREDICT[-1]))
        np.testing.assert_allclose(served, ens[["prob_sell", "prob_hold", "prob_buy"]].to_numpy(dtype=float))
    finally:  # restore the member's rows and the day's ensemble rows
        run_assets(["ml_ensemble_predictions"], url, instance=instance, partition_range=PREDICT)
    restored = _rows(url, ENSEMBLE_NAME, PREDICT[-1])
    assert restored[ENSEMBLE_COLUMNS[3:]].equals(before[ENSEMBLE_COLUMNS[3:]])


def test_a_corrupt_member_trips_its_breaker_and_the_day_still_gets_rows(trained):
    url, instance = trained["url"], trained["instance"]
    DAY = "2024-03-11"  # noqa: N806 (a day on which no member is left out for realised loss)
    with connect(url) as conn, conn.transaction():  # the two members run from their artifacts
        for name in (linear_model.MODEL_NAME, "direction_patterns"):
            champion = registry.champion(conn, name)
            conn.execute("UPDATE ml_models_metadata SET artifact = %s WHERE model_id = %s", (b"{}", champion.model_id))
    try:
        result = run_assets(["ml_ensemble_predictions"], url, instance=instance, partition_key=DAY)
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not checks["no_open_breakers"].passed
        assert sorted(checks["no_open_breakers"].metadata["not_closed"].value) == [
            "direction_linear",
            "direction_patterns",
        ]
        ens = _rows(url, ENSEMBLE_NAME, DAY)
        assert len(ens) == 24 * len(SYMBOLS) and set(ens["members_used"]) == {"direction_xgboost"}
        with connect(url) as conn:
            opened = conn.execute(
                "SELECT state FROM member_breakers WHERE member IN ('direction_linear', 'direction_patterns')"
            ).fetchall()
        assert len(opened) == 2
        for (state,) in opened:
            assert state["state"] == "open" and "integrity" in state["last_transition"]["reason"] + state["reason"]
        # no member usable at all: each hour keeps the ensemble's previous row (made when members
        # were usable, with its own weights set), said per row
        kept = ens
        day_end = datetime.fromisoformat(DAY).replace(tzinfo=UTC) + timedelta(days=1)
        with connect(url) as conn, conn.transaction():
            conn.execute(
                "DELETE FROM ml_predictions WHERE model_name = 'direction_xgboost' AND ts >= %s AND ts < %s",
                (DAY, day_end),
            )
        run_assets(["ml_ensemble_predictions"], url, instance=instance, partition_key=DAY)
        ens = _rows(url, ENSEMBLE_NAME, DAY)
        assert (ens["fallback_used"] == "previous_champion").all() and len(ens) == 24 * len(SYMBOLS)
        for column in ("model_id", "prob_sell", "prob_hold", "prob_buy", "weights_id", "members_used"):
            assert ens[column].tolist() == kept[column].tolist(), column
        # ... and without a previous row either, the class priors
        with connect(url) as conn, conn.transaction():
            conn.execute(
                "DELETE FROM ml_predictions WHERE model_name = %s AND ts >= %s AND ts < %s",
                (ENSEMBLE_NAME, DAY, day_end),
            )
        run_assets(["ml_ensemble_predictions"], url, instance=instance, partition_key=DAY)
        ens = _rows(url, ENSEMBLE_NAME, DAY)
        assert (ens["fallback_used"] == "class_priors").all() and len(ens) == 24 * len(SYMBOLS)
        assert ens[["prob_sell", "prob_hold", "prob_buy"]].nunique().max() == 1  # one prior for every row
        with connect(url) as conn:  # registered as the baseline model kind, not as ensemble weights
            kinds = conn.execute(
                "SELECT DISTINCT model_name, format FROM ml_models_metadata WHERE model_id = ANY(%s)",
                (ens["model_id"].astype(int).unique().tolist(),),
            ).fetchall()
        assert kinds == [("baseline_class_priors", "class-priors-json-v1")]
    finally:
        with connect(url) as conn, conn.transaction():
            conn.execute("DELETE FROM member_breakers")
        assert count(url, "SELECT count(*) FROM member_breakers") == 0
