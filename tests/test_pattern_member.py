"""The chart-pattern member: active-pattern states, causality, a planted signal it learns, noise it
does not pretend to beat, and its JSON artifact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.ml import pattern_member as pm
from pipeline_assets.ml.direction_xgb import TrainingError

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def keys(symbols=("BTCUSDT", "ETHUSDT"), hours=48) -> pd.DataFrame:
    ts = pd.date_range(T0, periods=hours, freq="h")
    return pd.DataFrame([(s, t) for t in ts for s in symbols], columns=["symbol", "ts"])


def detections(rows) -> pd.DataFrame:
    return pd.DataFrame(
        [(s, T0 + pd.Timedelta(hours=h), score, d, done) for s, h, score, d, done in rows],
        columns=list(pm.DETECTION_COLUMNS),
    )


def test_states_follow_active_detections_and_expire():
    found = detections(
        [
            ("BTCUSDT", 5, 0.8, 1, 10.0),  # bullish for hours 5..14
            ("BTCUSDT", 8, 0.7, -1, 4.5),  # bearish 8..12 (4.5 h: bars 8, 9, 10, 11, 12)
            ("ETHUSDT", 20, 0.9, -1, 3.0),  # bearish 20..22
        ]
    )
    out = pm.pattern_signal(keys(), found, dead_zone=0.25).set_index(["symbol", "ts"])

    def at(symbol, hour):
        return out.loc[(symbol, T0 + pd.Timedelta(hours=hour))]

    def state(symbol, hour):
        return pm.STATES[int(at(symbol, hour)["state"])]

    assert at("BTCUSDT", 4)["state"] == 0 and at("BTCUSDT", 4)["active_patterns"] == 0
    assert state("BTCUSDT", 5) == "bullish" and at("BTCUSDT", 5)["net_signal"] == pytest.approx(0.8)
    # both active: 0.8 - 0.7 = 0.1, inside the dead zone
    assert state("BTCUSDT", 9) == "mixed" and at("BTCUSDT", 9)["active_patterns"] == 2
    assert state("BTCUSDT", 13) == "bullish"  # the bearish one expired after bar 12
    assert state("BTCUSDT", 15) == "none"  # 5 + 10 h
    assert state("ETHUSDT", 22) == "bearish" and state("ETHUSDT", 23) == "none"
    assert (out.xs("ETHUSDT")["active_patterns"].iloc[:20] == 0).all()  # BTC's patterns stay on BTC


def test_rows_depend_only_on_detections_known_by_their_bar():
    k = keys(hours=100)
    found = detections([("BTCUSDT", h, 0.5 + (h % 5) / 10, 1 if h % 3 else -1, 6.0) for h in range(0, 100, 4)])
    cut = T0 + pd.Timedelta(hours=60)
    before = pm.pattern_signal(k, found, 0.25)
    # detections after the cut change, vanish or appear: rows up to the cut are identical
    changed = found[found["ts"] <= cut]
    changed = pd.concat([changed, detections([("BTCUSDT", 61, 1.0, -1, 50.0), ("ETHUSDT", 70, 1.0, 1, 5.0)])])
    after = pm.pattern_signal(k, changed, 0.25)
    upto = (k["ts"] <= cut).to_numpy()
    pd.testing.assert_frame_equal(before[upto], after[upto])
    assert not before[~upto].equals(after[~upto])


def labelled(n_hours: int, informative: bool, seed: int = 0):
    """Two symbols; patterns at random bars; labels BUY-heavy while a bullish pattern is active,
    SELL-heavy under a bearish one (when ``informative``), else independent of them."""
    rng = np.random.default_rng(seed)
    k = keys(hours=n_hours)
    rows = []
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for h in np.flatnonzero(rng.random(n_hours) < 0.06):
            rows.append((symbol, int(h), float(rng.uniform(0.5, 1.0)), int(rng.choice([-1, 1])), 12.0))
    found = detections(rows)
    state = pm.pattern_signal(k, found, 0.25)["state"].to_numpy()
    p = np.tile([0.3, 0.4, 0.3], (len(k), 1))
    if informative:
        p[state == 1] = [0.65, 0.25, 0.10]
        p[state == 2] = [0.10, 0.25, 0.65]
    y = np.array([rng.choice(3, p=row) for row in p])
    frame = k.assign(direction=y, matured_at=k["ts"] + pd.Timedelta(hours=5), horizon_hours=4)
    return frame, found


def test_learns_a_planted_pattern_signal_and_beats_the_baselines():
    frame, found = labelled(1500, informative=True)
    trained = pm.train_pattern_model(frame, found)
    table = dict(zip(pm.STATES, trained.model.table, strict=True))
    assert table["bullish"][2] > 0.5 and table["bearish"][0] > 0.5 and abs(table["none"][1] - 0.4) < 0.05
    report = trained.metrics["test_vs_baselines"]
    assert report["beats_baselines"], report["verdict"]
    assert report["differences"]["log_loss_minus_class_priors"]["ci95"][1] < 0
    # registered: the refit on every row of the window (same strength); reported: the validated model
    assert trained.labels_matured_until == frame["matured_at"].max()
    assert trained.training_rows == len(frame) > trained.metrics["validated"]["train_rows"]
    assert trained.model.counts.sum() == len(frame) > trained.validated_model.counts.sum()
    assert trained.model.prior_rows == trained.validated_model.prior_rows
    assert not np.array_equal(trained.model.table, trained.validated_model.table)


def test_on_noise_it_does_not_claim_to_beat_the_baselines():
    frame, found = labelled(1500, informative=False)
    trained = pm.train_pattern_model(frame, found)
    report = trained.metrics["test_vs_baselines"]
    assert not report["beats_baselines"] and "does NOT beat" in report["verdict"]
    # close to the priors: no state moves a probability far from them
    assert np.abs(trained.model.table - trained.model.priors).max() < 0.1


def test_json_artifact_round_trips_and_rejects_a_bad_table():
    frame, found = labelled(600, informative=True)
    trained = pm.train_pattern_model(frame, found)
    back = pm.deserialize(trained.artifact)
    np.testing.assert_array_equal(pm.predict_proba(back, frame, found), pm.predict_proba(trained.model, frame, found))
    data = pm.to_dict(trained.model)
    data["table"][1] = [0.5, 0.5, 0.5]
    with pytest.raises(TrainingError, match="summing to 1"):
        pm.from_dict(data)
    with pytest.raises(TrainingError, match="expected completion"):
        pm.pattern_signal(frame, found.assign(expected_completion_hours=-1.0), 0.25)
    with pytest.raises(TrainingError, match="need at least"):
        pm.train_pattern_model(frame.head(50), found)
