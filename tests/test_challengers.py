"""Champion/challenger on realised rows, against the real PostgreSQL: challengers predict in the
shadow (ml_shadow_predictions, keyed by model_id, point-in-time, covered by the leakage check),
never in ml_predictions; challenger_review promotes a planted better challenger, keeps a noise
challenger, withholds a verdict below ten bootstrap blocks, retires a worse or too old one, and
records every decision with its figures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from dagster import DagsterInstance
from dagster_helpers import count, ingest_days, metadata_of, run_assets

from pipeline_assets.assets.models import retrain_run_config
from pipeline_assets.ml import direction_xgb, linear_model
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS, MODEL_FEATURE_SET_ID, split_complete_rows
from pipeline_assets.ml.labels import LABEL_SET_ID
from pipeline_assets.partitions import SYMBOLS
from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import read_frame
from pipeline_assets.store.warehouse import read_labelled_model_inputs, truncate_all

FIRST = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = [(FIRST + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(24)]
TRAIN_END = datetime(2024, 3, 10, tzinfo=UTC)
PREDICT = ("2024-03-10", "2024-03-22")  # 13 days: 1248 rows, more than 10 bootstrap blocks of 120
PREDICT_START = datetime(2024, 3, 10, tzinfo=UTC)
PREDICT_END = datetime(2024, 3, 23, tzinfo=UTC)
LATE_MATURED = datetime(2024, 3, 11, 12, tzinfo=UTC)  # the late challenger may only predict from 03-12
PROBABILITIES = ["prob_sell", "prob_hold", "prob_buy"]
HOURS = 13 * 24 * len(SYMBOLS)
LATE_HOURS = 11 * 24 * len(SYMBOLS)


def _plant(conn, name, artifact, fmt, until, note):
    record = registry.register_model(
        conn,
        model_name=name,
        artifact=artifact,
        format=fmt,
        feature_set_id=MODEL_FEATURE_SET_ID,
        label_set_id=LABEL_SET_ID,
        model_version_hash=f"planted-{note}",
        params={"planted": note},
        metrics={"test": {"log_loss": 1.0}},
        train_start=FIRST,
        train_end=until,
        labels_matured_until=until,
    )
    return registry.make_challenger(conn, record.model_id).model_id


@pytest.fixture(scope="module")
def graph(database_url):
    with connect(database_url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    ingest_days(database_url, DAYS, SYMBOLS, instance)
    config = retrain_run_config(
        TRAIN_END, train_days=9, min_rows=200, models=("direction_model_xgboost", "direction_model_linear")
    )
    run_assets(
        ["training_dataset", "direction_model_xgboost", "direction_model_linear"],
        database_url,
        instance=instance,
        run_config=config,
    )
    # A retrain on the same window: no row unseen by the champion, so it cannot win on held-out
    # rows and becomes a challenger (the same numbers as the champion: a tie on realised rows).
    retrained = run_assets(
        ["direction_model_linear"],
        database_url,
        instance=instance,
        run_config={"ops": {"direction_model_linear": config["ops"]["direction_model_linear"]}},
    )
    ids = {"linear_retrained": metadata_of(retrained, "direction_model_linear")["model_id"]}
    with connect(database_url) as conn, conn.transaction():
        xgb_champion = registry.champion(conn, direction_xgb.MODEL_NAME)
        linear_champion = registry.champion(conn, linear_model.MODEL_NAME)
        # Planted better challenger: fitted on the very rows it will predict (an oracle), yet
        # registered as trained before them, so only the review's statistics tell it apart.
        future, _ = split_complete_rows(
            read_labelled_model_inputs(conn, SYMBOLS, PREDICT_START, PREDICT_END, matured_by=datetime.now(UTC))
        )
        oracle = direction_xgb._classifier(
            replace(direction_xgb.XgbTrainingParams(), max_depth=6), 300, early_stopping=False
        )
        oracle.fit(future[list(MODEL_FEATURE_COLUMNS)].to_numpy(), future["direction"].to_numpy())
        until = xgb_champion.labels_matured_until
        _, champion_artifact = registry.load_artifact(conn, xgb_champion.model_id)
        # noise challenger: its shadow rows are replaced below by the champion's own probabilities
        # with independent noise per row (no systematic difference to find)
        ids["xgb_noise"] = _plant(conn, direction_xgb.MODEL_NAME, champion_artifact, "xgboost-ubj", until, "noise")
        ids["xgb_better"] = _plant(
            conn, direction_xgb.MODEL_NAME, direction_xgb.serialize(oracle), "xgboost-ubj", until, "oracle"
        )
        ids["xgb_late"] = _plant(conn, direction_xgb.MODEL_NAME, champion_artifact, "xgboost-ubj", LATE_MATURED, "late")
        base = linear_model.deserialize(registry.load_artifact(conn, linear_champion.model_id)[1])
        ids["linear_worse"] = _plant(
            conn,
            linear_model.MODEL_NAME,
            linear_model.serialize(replace(base, coef=-3 * base.coef)),
            linear_model.ARTIFACT_FORMAT,
            linear_champion.labels_matured_until,
            "worse",
        )
    predictions = run_assets(["ml_predictions"], database_url, instance=instance, partition_range=PREDICT)
    ensemble = run_assets(["ml_ensemble_predictions"], database_url, instance=instance, partition_range=PREDICT)
    with connect(database_url) as conn, conn.transaction():
        shadow = read_frame(
            conn,
            "SELECT symbol, ts, prob_sell, prob_hold, prob_buy FROM ml_shadow_predictions WHERE model_id = %s "
            "ORDER BY ts, symbol",
            (ids["xgb_noise"],),
        )
        logits = np.log(shadow[PROBABILITIES].to_numpy()) + np.random.default_rng(3).normal(0, 0.02, (len(shadow), 3))
        noisy = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        for (symbol, ts), row in zip(shadow[["symbol", "ts"]].itertuples(index=False), noisy, strict=True):
            conn.execute(
                "UPDATE ml_shadow_predictions SET prob_sell = %s, prob_hold = %s, prob_buy = %s "
                "WHERE model_id = %s AND symbol = %s AND ts = %s",
                (*map(float, row), ids["xgb_noise"], symbol, ts),
            )
    return {
        "url": database_url,
        "instance": instance,
        "ids": ids,
        "champions": {"xgb": xgb_champion.model_id, "linear": linear_champion.model_id},
        "predictions": predictions,
        "ensemble": ensemble,
    }


def _shadow(url, model_id):
    with connect(url) as conn:
        return read_frame(
            conn,
            "SELECT symbol, ts, model_name, prob_sell, prob_hold, prob_buy, predicted_at FROM ml_shadow_predictions "
            "WHERE model_id = %s ORDER BY ts, symbol",
            (model_id,),
        )


def test_a_retrain_that_does_not_win_on_held_out_rows_becomes_a_challenger(graph):
    with connect(graph["url"]) as conn:
        record = registry.get_model(conn, graph["ids"]["linear_retrained"])
        basis, action, promoted = conn.execute(
            "SELECT basis, action, promoted FROM model_promotion_decisions WHERE candidate_id = %s",
            (record.model_id,),
        ).fetchone()
    assert record.status == "challenger" and record.promoted_at is None
    assert (basis, action, promoted) == ("held_out", "challenger", False)


def test_registered_models_are_refits_on_the_whole_dataset_window(graph):
    from pipeline_assets.store import artifacts

    with connect(graph["url"]) as conn:
        for name in (direction_xgb.MODEL_NAME, linear_model.MODEL_NAME):
            record = registry.get_model(
                conn, graph["champions"]["xgb" if name == direction_xgb.MODEL_NAME else "linear"]
            )
            dataset = artifacts.get_training_dataset(conn, int(record.params["training_dataset_id"]))
            rows = artifacts.read_training_dataset(dataset)
            assert record.metrics["refit"]["rows"] == dataset.row_count == len(rows), name
            assert record.metrics["train"]["rows"] < dataset.row_count
            assert record.labels_matured_until == rows["matured_at"].max().to_pydatetime() < TRAIN_END
            assert record.train_start == rows["ts"].min().to_pydatetime()
            assert record.metrics["test"]["log_loss"] > 0 and "validated model" in record.metrics["metrics_basis"]


def test_challengers_predict_the_champions_rows_in_the_shadow_only(graph):
    url, ids, champions = graph["url"], graph["ids"], graph["champions"]
    with connect(url) as conn:
        champion_rows = read_frame(
            conn,
            "SELECT symbol, ts, model_name, model_id FROM ml_predictions WHERE model_name = ANY(%s) "
            "ORDER BY ts, symbol",
            ([direction_xgb.MODEL_NAME, linear_model.MODEL_NAME],),
        )
    # ml_predictions holds only the champions' rows, one per (symbol, hour, kind)
    assert set(champion_rows["model_id"]) == {champions["xgb"], champions["linear"]}
    assert len(champion_rows) == 2 * HOURS
    challenger_ids = set(ids.values())
    assert count(url, "SELECT count(*) FROM ml_predictions WHERE model_id = ANY(%s)", (list(challenger_ids),)) == 0
    xgb_keys = champion_rows[champion_rows["model_name"] == direction_xgb.MODEL_NAME][["symbol", "ts"]]
    for key in ("xgb_noise", "xgb_better", "linear_worse", "linear_retrained"):
        shadow = _shadow(url, ids[key])
        assert len(shadow) == HOURS, key
        assert shadow[["symbol", "ts"]].reset_index(drop=True).equals(xgb_keys.reset_index(drop=True))
        total = shadow[["prob_sell", "prob_hold", "prob_buy"]].sum(axis=1)
        assert np.allclose(total, 1.0) and shadow["predicted_at"].notna().all()
    # several challengers of a kind share (symbol, ts, model_name) without colliding
    assert (
        count(
            url,
            "SELECT count(*) FROM ml_shadow_predictions WHERE model_name = %s AND symbol = %s AND ts = %s",
            (linear_model.MODEL_NAME, SYMBOLS[0], PREDICT_START),
        )
        == 2
    )
    # the ensemble combined the champions only
    with connect(url) as conn:
        members = {
            r[0]
            for r in conn.execute("SELECT DISTINCT members_used FROM ml_predictions WHERE members_used IS NOT NULL")
        }
    # (the realised-loss gate leaves a member out on some days, priors fill days without one)
    assert "direction_linear,direction_xgboost" in members
    assert {name for m in members for name in m.split(",") if name} == {"direction_linear", "direction_xgboost"}
    shadow_meta = metadata_of(graph["predictions"], "ml_predictions")
    assert shadow_meta["shadow_rows"] == 2 * HOURS + LATE_HOURS  # noise, better: 13 days; late: 11 days
    assert metadata_of(graph["ensemble"], "ml_ensemble_predictions")["shadow_rows"] == 2 * HOURS


def test_no_shadow_row_from_a_challenger_trained_after_its_hour(graph):
    url, late = graph["url"], graph["ids"]["xgb_late"]
    shadow = _shadow(url, late)
    assert len(shadow) == LATE_HOURS
    assert shadow["ts"].min() == datetime(2024, 3, 12, tzinfo=UTC) > LATE_MATURED
    # a shadow row the model could not have made is caught inside the write transaction
    leaky_ts = datetime(2024, 3, 11, 5, tzinfo=UTC)
    with connect(url) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO ml_shadow_predictions (symbol, ts, model_name, model_id, prob_sell, prob_hold, prob_buy, "
            "predicted_direction) VALUES (%s, %s, %s, %s, 0.2, 0.3, 0.5, 2)",
            (SYMBOLS[0], leaky_ts, direction_xgb.MODEL_NAME, late),
        )
    try:
        before = count(url, "SELECT count(*) FROM ml_shadow_predictions WHERE ts >= '2024-03-11' AND ts < '2024-03-12'")
        result = run_assets(["ml_predictions"], url, "2024-03-11", raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "saw their future" in failure and "ml_shadow_predictions" in failure and str(late) in failure
        after = count(url, "SELECT count(*) FROM ml_shadow_predictions WHERE ts >= '2024-03-11' AND ts < '2024-03-12'")
        assert after == before  # nothing of the failed run was written
    finally:
        with connect(url) as conn, conn.transaction():
            conn.execute("DELETE FROM ml_shadow_predictions WHERE model_id = %s AND ts = %s", (late, leaky_ts))


def test_review_promotes_the_better_challenger_and_keeps_or_retires_the_others(graph):
    url, ids, champions = graph["url"], graph["ids"], graph["champions"]
    result = run_assets(
        ["challenger_review"],
        url,
        instance=graph["instance"],
    )
    meta = metadata_of(result, "challenger_review")
    assert meta["challengers_reviewed"] == 5
    with connect(url) as conn:
        decisions = read_frame(
            conn,
            "SELECT candidate_id, champion_id, promoted, action, compared_rows, level, candidate_log_loss, "
            "champion_log_loss, difference, ci_low, ci_high, reason FROM model_promotion_decisions "
            "WHERE basis = 'realised_shadow' ORDER BY decision_id",
        ).set_index("candidate_id")
        status = {key: registry.get_model(conn, model_id).status for key, model_id in ids.items()}
        old_xgb = registry.get_model(conn, champions["xgb"])
    better = decisions.loc[ids["xgb_better"]]
    assert better["action"] == "promoted" and better["promoted"] and better["ci_high"] < 0
    assert better["compared_rows"] == HOURS and better["champion_id"] == champions["xgb"]
    assert better["candidate_log_loss"] < better["champion_log_loss"] and better["level"] == 0.95
    assert status["xgb_better"] == "champion" and old_xgb.status == "retired"
    noise = decisions.loc[ids["xgb_noise"]]  # judged against the same champion as the oracle
    assert noise["action"] == "kept", decisions.drop(columns="reason").to_string()
    assert not noise["promoted"] and noise["ci_low"] <= 0 <= noise["ci_high"]
    assert noise["compared_rows"] == HOURS and status["xgb_noise"] == "challenger"
    worse = decisions.loc[ids["linear_worse"]]
    assert worse["action"] == "retired" and worse["ci_low"] > 0 and status["linear_worse"] == "retired"
    assert "significantly worse" in worse["reason"]
    tie = decisions.loc[ids["linear_retrained"]]
    assert tie["action"] == "kept" and tie["difference"] == pytest.approx(0.0, abs=1e-12)
    late = decisions.loc[ids["xgb_late"]]  # 11 days: fewer rows than 10 bootstrap blocks, no verdict yet
    assert late["action"] == "kept" and late["compared_rows"] == LATE_HOURS and np.isnan(late["ci_low"])
    assert f"only {LATE_HOURS} realised rows (< 1200)" in late["reason"]
    assert str(ids["xgb_better"]) in meta["decisions"] and "promoted" in meta["decisions"]
    assert (meta["promoted"], meta["retired"], meta["kept"]) == (1, 1, 3)
    # the promoted challenger now predicts the hours after its training labels matured
    with connect(url) as conn:
        chosen = registry.model_for_prediction(conn, direction_xgb.MODEL_NAME, PREDICT_START)
    assert chosen.model_id == ids["xgb_better"]


def test_review_retires_challengers_older_than_the_limit(graph):
    url = graph["url"]
    result = run_assets(
        ["challenger_review"],
        url,
        instance=graph["instance"],
        run_config={"ops": {"challenger_review": {"config": {"max_age_days": 0}}}},
    )
    assert metadata_of(result, "challenger_review")["retired"] == 3
    with connect(url) as conn:
        left = conn.execute("SELECT count(*) FROM ml_models_metadata WHERE status = 'challenger'").fetchone()[0]
        reasons = [
            r[0]
            for r in conn.execute(
                "SELECT retired_reason FROM ml_models_metadata WHERE model_id = ANY(%s)",
                ([graph["ids"][k] for k in ("xgb_noise", "linear_retrained", "xgb_late")],),
            )
        ]
    assert left == 0 and all("days old (> 0)" in r for r in reasons)


def test_a_challenger_with_invalid_probabilities_is_left_out_and_named():
    import pandas as pd

    from pipeline_assets.assets.inference import shadow_frame

    rows = pd.DataFrame(
        {"symbol": ["BTCUSDT", "ETHUSDT"], "ts": pd.to_datetime(["2024-03-10T00:00Z", "2024-03-10T01:00Z"], utc=True)}
    )
    good = registry.ModelRecord(*([1] + [None] * 15))
    bad = registry.ModelRecord(*([2] + [None] * 15))

    def predict(artifact, frame):
        proba = np.full((len(frame), 3), 1 / 3)
        if artifact == b"bad":
            proba[1] = [np.nan, 0.5, 0.5]
        return proba

    out, used, failures = shadow_frame(
        "direction_xgboost", rows, {"2024-03-10": [good, bad]}, {1: b"good", 2: b"bad"}, predict
    )
    assert set(out["model_id"]) == {1} and len(out) == 2 and used == {"2024-03-10": [1]}
    assert "challenger 2 on 2024-03-10: 1 rows of invalid probabilities, first ETHUSDT 2024-03-10T01:00" in failures[2]
