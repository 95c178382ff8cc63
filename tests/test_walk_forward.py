"""Walk-forward evaluation: point-in-time folds, baselines, calibration, next-open trading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.ml import direction_xgb
from pipeline_assets.ml import walk_forward as wf
from pipeline_assets.ml.dataset import MODEL_FEATURE_COLUMNS


def _frame(days: int, signal: bool, seed: int = 0, symbols=("AAA", "BBB")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=days * 24, freq="h", tz="UTC")
    frames = []
    for symbol in symbols:
        x = rng.normal(0, 1, (len(ts), len(MODEL_FEATURE_COLUMNS)))
        driver = x[:, 0] if signal else rng.normal(0, 1, len(ts))
        forward = 0.01 * driver + rng.normal(0, 0.01, len(ts))
        direction = np.where(forward < -0.005, 0, np.where(forward > 0.005, 2, 1))
        frame = pd.DataFrame(x, columns=list(MODEL_FEATURE_COLUMNS))
        frame.insert(0, "ts", ts)
        frame.insert(0, "symbol", symbol)
        frames.append(frame.assign(direction=direction, forward_return=forward, matured_at=ts + pd.Timedelta(hours=5)))
    return pd.concat(frames, ignore_index=True)


def _opens(frame: pd.DataFrame) -> pd.DataFrame:
    ts = pd.date_range(frame["ts"].min(), frame["ts"].max() + pd.Timedelta(hours=3), freq="h")
    return pd.concat([pd.DataFrame({"symbol": s, "ts": ts, "open": 100.0}) for s in frame["symbol"].unique()])


PARAMS = wf.WalkForwardParams(train_days=10, step_days=5, min_train_rows=200)


def test_a_planted_signal_beats_the_baselines_and_noise_does_not(monkeypatch):
    seen = []
    train = direction_xgb.train_direction_model

    def recording(frame, params):
        seen.append(frame["matured_at"].max())
        return train(frame, params)

    monkeypatch.setattr(direction_xgb, "train_direction_model", recording)
    signal = wf.walk_forward(_frame(30, True), _opens(_frame(30, True)), PARAMS)
    assert signal.overall["beats_baselines"] and signal.overall["log_loss"] < signal.overall["priors_log_loss"]
    assert signal.overall["ic_mean"] > 0.3
    # every fold's model saw only labels matured before its test block began
    starts = pd.to_datetime(signal.folds["labels_matured_before"])
    assert len(seen) == len(starts) == 4 and all(m < s for m, s in zip(seen, starts, strict=True))
    assert set(signal.predictions["fold"]) == set(signal.folds["test_start"])
    noise = wf.walk_forward(_frame(30, False, seed=1), _opens(_frame(30, False)), PARAMS)
    assert not noise.overall["beats_baselines"] and "NOT" in noise.overall["verdict"]
    assert set(noise.folds.columns) >= {"log_loss", "priors_log_loss", "persistence_log_loss", "brier", "ic"}


def test_the_strategy_trades_at_the_next_open_and_pays_for_turnover():
    ts = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    opens = pd.DataFrame({"symbol": "AAA", "ts": ts, "open": [100.0, 110.0, 121.0, 100.0, 100.0, 100.0]})
    predictions = pd.DataFrame({"symbol": "AAA", "ts": ts[:3], "position": [1, 1, -1]})
    equity, stats = wf.simulate(predictions, opens, fee_bps=10.0, slippage_bps=0.0)
    # bar 0's signal trades open(1) -> open(2): +10%; bar 1: open(2) -> open(3): -17.36%; bar 2 short: 0
    expected = [0.10 - 0.001, 100 / 121 - 1, 0.0 - 0.002]
    np.testing.assert_allclose(equity["strategy"].to_numpy(), np.cumprod(1 + np.array(expected)))
    assert stats["strategy"]["turnover_per_hour"] == pytest.approx((1 + 0 + 2) / 3)
    assert stats["flat"]["total_return"] == 0.0
    assert stats["buy_and_hold"]["total_return"] == pytest.approx(1.1 * (100 / 121) * 1.0 - 1)


def test_calibration_table_and_ece():
    y = np.array([0, 0, 1, 2])
    proba = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.45, 0.35], [0.5, 0.2, 0.3]])
    table, ece = wf.calibration_table(y, proba)
    assert table["rows"].sum() == 4
    top = table[table["bin"] == "0.9-1.0"].iloc[0]
    assert top["hit_rate"] == 1.0 and top["confidence"] == pytest.approx(0.9)
    # bins: 0.9 (2 rows, hit 1), 0.45 (1 row, hit 1), 0.5 (1 row, hit 0)
    assert ece == pytest.approx((2 * 0.1 + 1 * 0.55 + 1 * 0.5) / 4)


def test_too_little_history_is_a_clear_error():
    with pytest.raises(ValueError, match="no fold has 200 training rows"):
        wf.walk_forward(_frame(8, True), _opens(_frame(8, True)), PARAMS)


def test_class_weights_are_chosen_by_walk_forward_log_loss():
    frame = _frame(25, True, seed=3)
    choice = wf.choose_class_weight(frame, _opens(frame), PARAMS)
    assert set(choice["log_loss"]) == {"balanced", "None"}
    best = min(choice["log_loss"], key=choice["log_loss"].get)
    assert choice["chosen"] == (None if best == "None" else best)
