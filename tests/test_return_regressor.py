"""Forward-return ridge regressor (compute only): targets by timestamp with the labels' maturity
convention, a planted linear signal learned and judged better than every baseline, pure noise
judged not better, a train-only scaler, and JSON parameters that predict bit for bit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.ml import return_regressor as rr
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS
from pipeline_assets.ml.direction_xgb import TrainingError, purged_time_split
from pipeline_assets.ml.labels import compute_labels

START = datetime(2024, 1, 1, tzinfo=UTC)
HOURS = 24 * 60
SYMBOLS = ("AAAUSDT", "BBBUSDT")
SIGNAL = "ema_ratio_12_26"


def _market(seed: int, planted: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, bars) of two symbols. With ``planted`` the hourly log return after bar t is
    0.002 * z(t) + small noise, z a persistent AR(1) exposed as the SIGNAL feature of bar t; without,
    returns are noise independent of every feature."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=HOURS, freq="h")
    features, bars = [], []
    for symbol in SYMBOLS:
        frame = pd.DataFrame({c: rng.normal(size=HOURS) for c in MODEL_FEATURE_COLUMNS})
        z = np.zeros(HOURS)
        for i in range(1, HOURS):
            z[i] = 0.98 * z[i - 1] + rng.normal(scale=0.2)
        frame[SIGNAL] = z
        step = (0.002 * z if planted else 0.0) + rng.normal(scale=0.0005 if planted else 0.004, size=HOURS)
        close = 100 * np.exp(np.concatenate([[0.0], np.cumsum(step[:-1])]))
        frame.insert(0, "ts", ts)
        frame.insert(0, "symbol", symbol)
        features.append(frame)
        bars.append(pd.DataFrame({"symbol": symbol, "ts": ts, "close": close}))
    features = pd.concat(features, ignore_index=True).sort_values(["ts", "symbol"], ignore_index=True)
    return features, pd.concat(bars, ignore_index=True)


def _train(features, bars, **overrides):
    targets = rr.forward_log_returns(bars, matured_by=START + timedelta(hours=HOURS))
    return rr.train_return_model(features, targets, rr.RidgeTrainingParams(**overrides)), targets


@pytest.fixture(scope="module")
def planted():
    features, bars = _market(1, planted=True)
    trained, targets = _train(features, bars)
    return features, bars, targets, trained


def test_targets_are_forward_log_returns_by_timestamp_maturing_like_the_labels():
    ts = pd.date_range(START, periods=30, freq="h").delete(10)  # a gap at hour 10
    close = np.linspace(100, 130, 29)
    bars = pd.DataFrame({"symbol": "AAAUSDT", "ts": ts, "close": close})
    targets = rr.forward_log_returns(bars, horizons=(1, 4))
    one = targets[targets["horizon_hours"] == 1].set_index("ts")
    # the bar at 09:00 has no bar at 10:00: no 1h target, never the 11:00 bar paired by position
    assert pd.Timestamp(START + timedelta(hours=9)) not in one.index
    at = pd.Timestamp(START + timedelta(hours=11))
    assert one.loc[at, "forward_log_return"] == np.log(close[11] / close[10])
    assert (one["matured_at"] == one.index + pd.Timedelta(hours=2)).all()
    # same maturity convention and the same 4h return as the direction labels (log1p of theirs)
    labels, _ = compute_labels(bars[["ts", "close"]], START, START + timedelta(hours=30))
    four = targets[targets["horizon_hours"] == 4].merge(labels, on="ts")
    assert len(four) == len(labels) > 0
    assert (four["matured_at_x"] == four["matured_at_y"]).all()
    np.testing.assert_allclose(four["forward_log_return"], np.log1p(four["forward_return"]), rtol=1e-12)
    # nothing matured at or after the cut-off is returned
    cut = START + timedelta(hours=20)
    assert (rr.forward_log_returns(bars, (1, 4), matured_by=cut)["matured_at"] < cut).all()
    bad = bars.assign(close=bars["close"].where(bars.index != 3, 0.0))
    with pytest.raises(TrainingError, match=r"'close' is 0.0 for AAAUSDT at 2024-01-01T03:00"):
        rr.forward_log_returns(bad)


def test_learns_a_planted_linear_signal_and_beats_every_baseline(planted):
    _, _, _, trained = planted
    assert trained.metrics["beats_baselines"] is True
    assert trained.metrics["verdict"].startswith("beats its baselines on every horizon")
    for horizon in rr.HORIZONS:
        report = trained.metrics["horizons"][str(horizon)]["test_vs_baselines"]
        assert report["beats_baselines"], report["verdict"]
        model = report["metrics"]["model"]
        assert model["ic"] > 0.5 and model["hit_rate"] > 0.7
        for name in rr.BASELINES:
            assert model["mae"] < report["metrics"][name]["mae"]
            assert report["differences"][f"squared_error_minus_{name}"]["ci95"][1] < 0
        # the signal feature carries the weight
        coef = dict(zip(MODEL_FEATURE_COLUMNS, trained.model.horizons[horizon].coef, strict=True))
        assert max(coef, key=lambda c: abs(coef[c])) == SIGNAL and coef[SIGNAL] > 0
        # zero return takes no direction and has no rank correlation: said, not faked
        assert report["metrics"]["zero_return"]["ic"] is None
        assert report["differences"]["hit_rate_minus_zero_return"]["value"] is None


def test_on_pure_noise_it_does_not_beat_its_baselines_and_says_so():
    features, bars = _market(2, planted=False)
    trained, _ = _train(features, bars)
    assert trained.metrics["beats_baselines"] is False
    assert trained.metrics["verdict"].startswith("does not beat its baselines on any horizon")
    for horizon in rr.HORIZONS:
        report = trained.metrics["horizons"][str(horizon)]["test_vs_baselines"]
        assert not report["beats_baselines"] and "does NOT beat" in report["verdict"]


def test_split_is_purged_by_each_horizons_maturity_and_labels_matured_until_is_the_newest_target(planted):
    features, _, targets, trained = planted
    frame = rr.training_frame(features, targets, 24)
    split = purged_time_split(frame, 0.15, 0.15)
    assert split.validation["ts"].min() >= split.train["matured_at"].max()
    assert split.test["ts"].min() >= split.validation["matured_at"].max()
    assert trained.metrics["horizons"]["24"]["purged_rows"] == split.purged_rows > 0
    assert trained.labels_matured_until == targets["matured_at"].max().to_pydatetime()


def test_scaler_and_coefficients_do_not_change_when_test_rows_change(planted):
    features, bars, targets, trained = planted
    altered = features.copy()
    # rows of every horizon's test slice (the slices start at different hours: each horizon purges
    # by its own maturity)
    late = altered["ts"] >= trained.test.groupby("horizon_hours")["ts"].min().max()
    altered.loc[late, list(MODEL_FEATURE_COLUMNS)] *= 100.0
    again = rr.train_return_model(altered, targets)
    for horizon in rr.HORIZONS:
        # the validated model (train slice only) does not see test rows; the registered refit does
        before, after = trained.validated_model.horizons[horizon], again.validated_model.horizons[horizon]
        assert before.scaler.to_dict() == after.scaler.to_dict()
        np.testing.assert_array_equal(before.coef, after.coef)
        assert before.intercept == after.intercept and before.alpha == after.alpha
        refit, validated = trained.model.horizons[horizon], trained.validated_model.horizons[horizon]
        assert refit.alpha == validated.alpha and not np.array_equal(refit.coef, validated.coef)
        assert refit.scaler.global_stats.rows > validated.scaler.global_stats.rows
        assert (
            trained.metrics["horizons"][str(horizon)]["refit_rows"]
            > trained.metrics["horizons"][str(horizon)]["train_rows"]
        )


def test_json_parameters_predict_bit_for_bit_and_match_sklearn(planted):
    features, _, _, trained = planted
    data = json.loads(trained.artifact)
    assert data["format"] == rr.ARTIFACT_FORMAT and set(data["horizons"]) == {"1", "4", "24"}
    restored = rr.deserialize(trained.artifact)
    assert rr.serialize(restored) == trained.artifact
    for horizon in rr.HORIZONS:
        expected = rr.predict(trained.model, features, horizon)
        np.testing.assert_array_equal(rr.predict(restored, features, horizon), expected)
        part = trained.model.horizons[horizon]
        x = part.scaler.transform(features)[list(MODEL_FEATURE_COLUMNS)].to_numpy()
        np.testing.assert_allclose(trained.estimators[horizon].predict(x), expected, rtol=0, atol=1e-14)
    broken = dict(data, horizons={"1": {**data["horizons"]["1"], "coef": [1.0]}})
    with pytest.raises(TrainingError, match="coef shape"):
        rr.from_dict(broken)
    missing = features.copy()
    missing.loc[5, SIGNAL] = np.nan
    with pytest.raises(TrainingError, match=rf"column '{SIGNAL}', symbol BBBUSDT, ts 2024-01-01T02:00"):
        rr.predict(restored, missing, 1)


def test_promotion_needs_a_significant_improvement(planted):
    _, _, _, trained = planted
    rows = trained.test
    good = rr.predict_rows(trained.model, rows)
    variance = {h: trained.metrics["horizons"][str(h)]["train_return_variance"] for h in rr.HORIZONS}
    better = rr.compare_for_promotion(rows, good, np.zeros(len(rows)), 0.95, variance)
    assert better.promote and better.ci_high < 0 and "better" in better.reason
    same = rr.compare_for_promotion(rows, good, good.copy(), 0.95, variance)
    assert not same.promote
    few = rr.compare_for_promotion(rows.head(10), good[:10], np.zeros(10), 0.95, variance)
    assert not few.promote and "only 10 unseen rows" in few.reason


def test_too_few_rows_name_the_horizon():
    features, bars = _market(3, planted=True)
    with pytest.raises(TrainingError, match=r"no horizon could be trained: 24h: \d+ rows .* need at least 5000"):
        _train(features, bars, min_rows=5000, horizons=(24,))


def test_a_horizon_without_enough_rows_is_left_out_and_said_so(planted):
    features, bars, targets, _ = planted
    # 1h and 4h have 2 x 1438 and 2 x 1435 matured rows, 24h only 2 x 1415
    trained = rr.train_return_model(features, targets, rr.RidgeTrainingParams(min_rows=2850))
    assert set(trained.model.horizons) == {1, 4} and set(trained.metrics["horizons"]) == {"1", "4"}
    assert trained.metrics["skipped_horizons"] == {
        "24": "24h: 2830 rows with complete features and a matured target; need at least 2850"
    }
    assert trained.metrics["beats_baselines"] is False
    assert trained.metrics["verdict"] == (
        "beats its baselines on 1h, 4h; not trained: 24h: 2830 rows with complete features and a matured "
        "target; need at least 2850"
    )
    restored = rr.deserialize(trained.artifact)
    rows = trained.test.assign(horizon_hours=24)
    assert np.isnan(rr.predict_rows(restored, rows, strict=False)).all()
    with pytest.raises(TrainingError, match=r"model has no 24h horizon \(has \[1, 4\]\)"):
        rr.predict_rows(restored, rows)
