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
DIRECTION_MEMBERS = ("direction_model_xgboost", "direction_model_linear")


@pytest.fixture(scope="module")
def trained(database_url):
    with connect(database_url) as conn, conn.transaction():
        truncate_all(conn)
    instance = DagsterInstance.ephemeral()
    ingest_days(database_url, DAYS, SYMBOLS, instance)
    config = retrain_run_config(TRAIN_END, train_days=12, min_rows=200, models=DIRECTION_MEMBERS)
    training = run_assets(
        ["training_dataset", "direction_model_xgboost", "direction_model_linear"],
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
    assert set(ens["members_used"]) == {"direction_linear,direction_xgboost"}
    assert (ens["fallback_used"] == "none").all() and ens["weights_id"].notna().all()
    checks = {e.check_name: e.passed for e in trained["result"].get_asset_check_evaluations()}
    assert checks == {"no_open_breakers": True, "model_trained_before_prediction_time": True}
    # every ensemble row is the weighted mix of its members' rows, with the registered weights
    xgb = _rows(url, "direction_xgboost")
    row = ens.iloc[100]
    with connect(url) as conn:
        _, artifact = registry.load_artifact(conn, int(row["model_id"]))
        (until,) = conn.execute(
            "SELECT labels_matured_until FROM ml_models_metadata WHERE model_id = %s", (int(row["model_id"]),)
        ).fetchone()
    weights = dict(zip(*(json.loads(artifact)[k] for k in ("members", "weights")), strict=True))
    key = (linear["symbol"] == row["symbol"]) & (linear["ts"] == row["ts"])
    cols = ["prob_sell", "prob_hold", "prob_buy"]
    mixed = (
        weights["direction_linear"] * linear.loc[key, cols].to_numpy()[0]
        + weights["direction_xgboost"]
        * xgb.loc[(xgb["symbol"] == row["symbol"]) & (xgb["ts"] == row["ts"]), cols].to_numpy()[0]
    )
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


def test_a_corrupt_member_trips_its_breaker_and_the_day_still_gets_rows(trained):
    url, instance = trained["url"], trained["instance"]
    with connect(url) as conn, conn.transaction():
        champion = registry.champion(conn, linear_model.MODEL_NAME)
        conn.execute("UPDATE ml_models_metadata SET artifact = %s WHERE model_id = %s", (b"{}", champion.model_id))
    try:
        result = run_assets(["ml_ensemble_predictions"], url, instance=instance, partition_key=PREDICT[-1])
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not checks["no_open_breakers"].passed
        assert "direction_linear" in checks["no_open_breakers"].metadata["not_closed"].value
        ens = _rows(url, ENSEMBLE_NAME, PREDICT[-1])
        assert len(ens) == 24 * len(SYMBOLS) and set(ens["members_used"]) == {"direction_xgboost"}
        with connect(url) as conn:
            (state,) = conn.execute("SELECT state FROM member_breakers WHERE member = 'direction_linear'").fetchone()
        assert state["state"] == "open" and "integrity" in state["last_transition"]["reason"] + state["reason"]
        # no member usable at all: the day falls back to class priors, said per row
        with connect(url) as conn, conn.transaction():
            conn.execute(
                "DELETE FROM ml_predictions WHERE model_name = 'direction_xgboost' AND ts >= %s", (PREDICT[-1],)
            )
        run_assets(["ml_ensemble_predictions"], url, instance=instance, partition_key=PREDICT[-1])
        ens = _rows(url, ENSEMBLE_NAME, PREDICT[-1])
        assert (ens["fallback_used"] == "class_priors").all() and len(ens) == 24 * len(SYMBOLS)
        assert ens[["prob_sell", "prob_hold", "prob_buy"]].nunique().max() == 1  # one prior for every row
    finally:
        with connect(url) as conn, conn.transaction():
            conn.execute("DELETE FROM member_breakers")
        assert count(url, "SELECT count(*) FROM member_breakers") == 0
