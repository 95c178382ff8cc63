"""Realised prediction quality and the drift rule that triggers retraining."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from pipeline_assets.ml.labels import BUY, HOLD, SELL

PROBABILITY_COLUMNS = ("prob_sell", "prob_hold", "prob_buy")


def evaluate_predictions(frame: pd.DataFrame) -> dict:
    """Accuracy and log loss of predictions against matured labels (``direction`` column)."""
    missing = [c for c in (*PROBABILITY_COLUMNS, "predicted_direction", "direction") if c not in frame.columns]
    if missing:
        raise ValueError(f"prediction frame lacks column(s) {missing}")
    if frame.empty:
        raise ValueError("no matured predictions to evaluate")
    y = frame["direction"].to_numpy(dtype=np.int64)
    proba = frame[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    majority = np.bincount(y, minlength=3).max() / len(y)
    return {
        "matured_rows": int(len(y)),
        "accuracy": float((frame["predicted_direction"].to_numpy() == y).mean()),
        "log_loss": float(log_loss(y, proba, labels=[SELL, HOLD, BUY])),
        # per-row spread of the loss: the drift detector's standard error (ml/drift.py)
        "log_loss_std": float(np.std(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)), ddof=1))
        if len(y) > 1
        else float("nan"),
        "majority_accuracy": float(majority),
    }


def realised_baselines(frame: pd.DataFrame, model_metrics: dict) -> dict:
    """Baselines for realised rows (``direction`` and ``persisted_direction``, NaN where no label
    had matured): the log loss of the model's training-window class priors, the accuracy of its
    training-window majority class (replacing a majority computed on the evaluated rows
    themselves) and of persistence."""
    y = frame["direction"].to_numpy(dtype=np.int64)
    priors = model_metrics.get("train", {}).get("class_priors")
    if priors is None:  # models registered before the priors were recorded: their test class shares
        share = model_metrics.get("test", {}).get("class_share", {})
        priors = [share.get(str(c), 1 / 3) for c in (SELL, HOLD, BUY)]
    priors = np.clip(np.asarray(priors, dtype=np.float64), 1e-12, 1.0)
    priors = priors / priors.sum()
    persisted = frame["persisted_direction"]
    usable = persisted.notna().to_numpy()
    return {
        "priors_log_loss": float(-np.log(priors[y]).mean()),
        "majority_accuracy": float((y == int(np.argmax(priors))).mean()),
        "persistence_accuracy": float((persisted[usable].to_numpy(dtype=np.int64) == y[usable]).mean())
        if usable.any()
        else float("nan"),
        "persistence_rows": int(usable.sum()),
    }
