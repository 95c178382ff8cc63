"""Champion/challenger as a test: a candidate replaces the champion only when its log loss is
lower with the configured confidence, on rows neither model trained on.

The rows are the candidate's held-out test rows whose labels matured after everything the
champion trained on (point-in-time unseen by both). The per-row log-loss differences are
time-ordered and overlap (labels of one symbol share their forward window), so the interval is a
moving-block bootstrap with blocks spanning several label horizons of every symbol; promotion
needs its upper bound below zero."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipeline_assets.ml.baselines import _per_row_log_loss, block_bootstrap_ci

LEVEL_ENV = "PIPELINE_PROMOTION_LEVEL"
MIN_ROWS = 50


def promotion_level() -> float:
    raw = os.environ.get(LEVEL_ENV, "0.95")
    try:
        level = float(raw)
    except ValueError as exc:
        raise ValueError(f"{LEVEL_ENV}={raw!r} is not a number") from exc
    if not 0.5 <= level < 1.0:
        raise ValueError(f"{LEVEL_ENV}={raw!r}: expected a confidence level in [0.5, 1)")
    return level


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    rows: int
    level: float
    candidate_log_loss: float | None = None
    champion_log_loss: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def compare(
    rows: pd.DataFrame, candidate_proba: np.ndarray, champion_proba: np.ndarray, horizon_hours: int, level: float
) -> PromotionDecision:
    """``rows``: symbol, ts, direction of the compared rows, aligned with both probability arrays."""
    n = len(rows)
    if n < MIN_ROWS:
        return PromotionDecision(False, f"only {n} unseen rows (< {MIN_ROWS}): the champion stays", n, level)
    order = np.argsort(rows["ts"].to_numpy(), kind="stable")
    y = rows["direction"].to_numpy(dtype=np.int64)[order]
    candidate = _per_row_log_loss(y, np.asarray(candidate_proba, dtype=np.float64)[order])
    champion = _per_row_log_loss(y, np.asarray(champion_proba, dtype=np.float64)[order])
    diff = candidate - champion
    block = (horizon_hours + 1) * max(1, rows["symbol"].nunique()) * 6
    low, high = block_bootstrap_ci(diff, block, resamples=1000, level=level)
    promote = bool(high < 0)
    verdict = "better" if promote else "not significantly better"
    reason = (
        f"candidate log loss {candidate.mean():.4f} vs champion {champion.mean():.4f} on {n} unseen rows: "
        f"difference {diff.mean():+.4f}, {level:.0%} interval [{low:+.4f}, {high:+.4f}]: {verdict}"
    )
    return PromotionDecision(
        promote, reason, n, level, float(candidate.mean()), float(champion.mean()), float(diff.mean()), low, high
    )
