"""Baselines beside every model metric: a model on a learnable signal beats them with intervals
below zero; on noise the report says plainly that it does not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_assets.ml.baselines import block_bootstrap_ci, class_priors, metrics_with_baselines, persisted_labels


def _frame(n_hours: int, symbols=("A", "B"), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=n_hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "symbol": np.repeat(symbols, n_hours),
            "ts": np.tile(ts, len(symbols)),
            "direction": rng.integers(0, 3, n_hours * len(symbols)),
        }
    )


def test_persistence_uses_only_labels_matured_by_the_prediction_time():
    frame = _frame(10)
    previous = persisted_labels(frame, frame, horizon_hours=4)
    a = frame[frame["symbol"] == "A"].reset_index(drop=True)
    assert (previous[:4] == -1).all()  # no label of t - 4h exists yet
    assert previous[4] == a["direction"].iloc[0] and previous[9] == a["direction"].iloc[5]


def test_a_model_that_knows_the_answer_beats_every_baseline_with_confidence():
    frame = _frame(600)
    train, test = frame.iloc[:300], frame.iloc[300:]
    proba = np.full((len(test), 3), 0.05)
    proba[np.arange(len(test)), test["direction"].to_numpy()] = 0.9
    report = metrics_with_baselines(test, proba, train, frame, horizon_hours=4)
    assert report["beats_baselines"] and "beats class priors and persistence" in report["verdict"]
    assert report["differences"]["log_loss_minus_class_priors"]["ci95"][1] < 0


def test_a_model_of_noise_is_reported_as_not_beating_the_baselines():
    frame = _frame(600, seed=1)
    train, test = frame.iloc[:300], frame.iloc[300:]
    proba = np.random.default_rng(2).dirichlet([5, 5, 5], len(test))
    report = metrics_with_baselines(test, proba, train, frame, horizon_hours=4)
    assert not report["beats_baselines"] and "does NOT beat" in report["verdict"]
    low, high = report["differences"]["log_loss_minus_class_priors"]["ci95"]
    assert low < high
    assert set(report["metrics"]) == {"model", "class_priors", "majority_class", "persistence"}


def test_priors_are_smoothed_and_the_bootstrap_covers_the_mean():
    assert np.isclose(class_priors(np.array([0, 0, 2])).sum(), 1.0) and class_priors(np.array([0, 0]))[1] > 0
    values = np.random.default_rng(3).normal(1.0, 1.0, 2000)
    low, high = block_bootstrap_ci(values, block=20)
    assert low < values.mean() < high and high - low < 0.3
