"""Baselines every model metric is shown beside, and the model's difference to each with a
confidence interval that respects overlapping labels.

- class priors of the training window (constant probabilities): log loss and accuracy;
- majority class of the training window: accuracy;
- persistence: the last label of the same symbol that had matured when the prediction was made
  (bar t is predicted at t + 1h; the label of bar t' matures at t' + h + 1h, so the newest usable
  one is t - h), mapped to probabilities by the training window's transition frequencies, so it
  has a log loss too. Rows without such a label fall back to the priors (counted).

Differences are model minus baseline per row (log loss: lower is better; accuracy: higher is
better), with a 95% interval from a moving-block bootstrap over time whose blocks span at least
the label horizon, so overlapping forward windows are not treated as independent rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_CLASSES = 3
EPS = 1e-12


def class_priors(labels: np.ndarray) -> np.ndarray:
    """Training-window class frequencies with add-one smoothing (no zero probability)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=N_CLASSES).astype(np.float64) + 1.0
    return counts / counts.sum()


def transition_matrix(train: pd.DataFrame, horizon_hours: int) -> np.ndarray:
    """P(label at t | label at t - horizon) per symbol in the training window, add-one smoothed."""
    previous = persisted_labels(train, train, horizon_hours)
    counts = np.ones((N_CLASSES, N_CLASSES))
    mask = previous >= 0
    np.add.at(counts, (previous[mask], train["direction"].to_numpy(dtype=np.int64)[mask]), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def persisted_labels(rows: pd.DataFrame, history: pd.DataFrame, horizon_hours: int) -> np.ndarray:
    """For each row (symbol, ts), the label of the same symbol at ts - horizon (the newest label
    matured by the prediction time), or -1 when history has none."""
    lookup = history[["symbol", "ts", "direction"]].copy()
    lookup["ts"] = lookup["ts"] + pd.Timedelta(hours=horizon_hours)
    merged = rows[["symbol", "ts"]].merge(lookup, on=["symbol", "ts"], how="left")
    return merged["direction"].fillna(-1).to_numpy(dtype=np.int64)


def _per_row_log_loss(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(proba[np.arange(len(y)), y], EPS, 1.0))


def block_bootstrap_ci(
    values: np.ndarray, block: int, resamples: int = 400, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Moving-block bootstrap interval of the mean of a time-ordered series."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    block = max(1, min(block, n))
    rng = np.random.default_rng(seed)
    starts_per = -(-n // block)
    means = np.empty(resamples)
    for r in range(resamples):
        starts = rng.integers(0, n - block + 1, starts_per)
        idx = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n]
        means[r] = values[idx].mean()
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def metrics_with_baselines(
    rows: pd.DataFrame,
    proba: np.ndarray,
    train: pd.DataFrame,
    history: pd.DataFrame,
    horizon_hours: int,
) -> dict:
    """Model and baseline metrics on ``rows`` (symbol, ts, direction), with model-minus-baseline
    differences and 95% block-bootstrap intervals. ``train`` is the training window (priors,
    majority, transitions); ``history`` holds every label usable for persistence."""
    order = np.argsort(rows["ts"].to_numpy(), kind="stable")
    rows = rows.iloc[order].reset_index(drop=True)
    proba = np.asarray(proba, dtype=np.float64)[order]
    y = rows["direction"].to_numpy(dtype=np.int64)
    priors = class_priors(train["direction"].to_numpy())
    majority = int(np.argmax(np.bincount(train["direction"].to_numpy(dtype=np.int64), minlength=N_CLASSES)))
    transitions = transition_matrix(train, horizon_hours)
    previous = persisted_labels(rows, history, horizon_hours)
    persistence_proba = np.where((previous >= 0)[:, None], transitions[np.maximum(previous, 0)], priors[None, :])
    persistence_pred = np.where(previous >= 0, previous, majority)
    candidates = {
        "model": (proba, proba.argmax(axis=1)),
        "class_priors": (np.broadcast_to(priors, proba.shape), np.full(len(y), int(np.argmax(priors)))),
        "majority_class": (None, np.full(len(y), majority)),
        "persistence": (persistence_proba, persistence_pred),
    }
    per_row, out = {}, {}
    for name, (p, predicted) in candidates.items():
        correct = (predicted == y).astype(np.float64)
        losses = _per_row_log_loss(y, p) if p is not None else None
        per_row[name] = (losses, correct)
        out[name] = {
            "accuracy": float(correct.mean()) if len(y) else float("nan"),
            **({"log_loss": float(losses.mean())} if losses is not None and len(y) else {}),
        }
    symbols = max(1, rows["symbol"].nunique())
    block = (horizon_hours + 1) * symbols * 6  # rows spanning several label horizons
    differences = {}
    model_loss, model_correct = per_row["model"]
    for name in ("class_priors", "majority_class", "persistence"):
        losses, correct = per_row[name]
        if losses is not None:
            diff = model_loss - losses
            differences[f"log_loss_minus_{name}"] = {
                "value": float(diff.mean()),
                "ci95": block_bootstrap_ci(diff, block),
            }
        diff = model_correct - correct
        differences[f"accuracy_minus_{name}"] = {"value": float(diff.mean()), "ci95": block_bootstrap_ci(diff, block)}
    beats = all(differences[f"log_loss_minus_{name}"]["ci95"][1] < 0 for name in ("class_priors", "persistence"))
    return {
        "rows": int(len(y)),
        "metrics": out,
        "differences": differences,
        "persistence_rows_without_matured_label": int((previous < 0).sum()),
        "beats_baselines": bool(beats),
        "verdict": (
            "beats class priors and persistence on log loss (95% intervals below zero)"
            if beats
            else "does NOT beat the simplest baselines on log loss with 95% confidence"
        ),
    }
