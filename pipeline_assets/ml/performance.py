"""Realised prediction quality and the drift rule that triggers retraining."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from pipeline_assets.ml.labels import BUY, HOLD, SELL

PROBABILITY_COLUMNS = ("prob_sell", "prob_hold", "prob_buy")
DRIFT_PARAMS = {"window_days": 3, "min_rows": 150, "tolerance": 0.05}


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


@dataclass(frozen=True)
class DriftDecision:
    drifted: bool
    reason: str
    window_log_loss: float | None
    rows: int


def detect_drift(history: pd.DataFrame, reference_log_loss: float, params: dict | None = None) -> DriftDecision:
    """Drift when the row-weighted log loss of the latest ``window_days`` evaluated days exceeds the
    model's own held-out log loss by more than ``tolerance`` (relative), on at least ``min_rows`` rows."""
    params = params or DRIFT_PARAMS
    if history.empty:
        return DriftDecision(False, "no evaluated days yet", None, 0)
    recent = history.sort_values("day").tail(int(params["window_days"]))
    rows = int(recent["matured_rows"].sum())
    if rows < params["min_rows"]:
        return DriftDecision(False, f"only {rows} matured rows in the window (< {params['min_rows']})", None, rows)
    window = float(np.average(recent["log_loss"], weights=recent["matured_rows"]))
    limit = reference_log_loss * (1 + params["tolerance"])
    if window > limit:
        return DriftDecision(
            True,
            f"log loss {window:.4f} over {rows} rows > {limit:.4f} (held-out {reference_log_loss:.4f})",
            window,
            rows,
        )
    return DriftDecision(False, f"log loss {window:.4f} within {limit:.4f}", window, rows)
