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


def block_length(horizon_hours: int, symbols: int) -> int:
    """Rows per bootstrap block: several label horizons of every symbol (overlapping labels of a
    symbol fall in one block)."""
    return (horizon_hours + 1) * max(1, symbols) * 6


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
    rows: pd.DataFrame,
    candidate_proba: np.ndarray,
    champion_proba: np.ndarray,
    horizon_hours: int,
    level: float,
    min_rows: int = MIN_ROWS,
    what: str = "unseen rows",
) -> PromotionDecision:
    """``rows``: symbol, ts, direction of the compared rows, aligned with both probability arrays;
    ``what`` names them in the reason (held-out "unseen rows", or "realised rows")."""
    n = len(rows)
    if n < min_rows:
        return PromotionDecision(False, f"only {n} {what} (< {min_rows}): the champion stays", n, level)
    order = np.argsort(rows["ts"].to_numpy(), kind="stable")
    y = rows["direction"].to_numpy(dtype=np.int64)[order]
    candidate = _per_row_log_loss(y, np.asarray(candidate_proba, dtype=np.float64)[order])
    champion = _per_row_log_loss(y, np.asarray(champion_proba, dtype=np.float64)[order])
    diff = candidate - champion
    block = block_length(horizon_hours, rows["symbol"].nunique())
    low, high = block_bootstrap_ci(diff, block, resamples=1000, level=level)
    promote = bool(high < 0)
    verdict = "better" if promote else "not significantly better"
    reason = (
        f"candidate log loss {candidate.mean():.4f} vs champion {champion.mean():.4f} on {n} {what}: "
        f"difference {diff.mean():+.4f}, {level:.0%} interval [{low:+.4f}, {high:+.4f}]: {verdict}"
    )
    return PromotionDecision(
        promote, reason, n, level, float(candidate.mean()), float(champion.mean()), float(diff.mean()), low, high
    )


@dataclass(frozen=True)
class ChallengerReview:
    """What challenger_review does with one challenger: 'promoted', 'retired' or 'kept'."""

    action: str
    reason: str
    decision: PromotionDecision


def review_challenger(
    rows: pd.DataFrame,
    challenger_proba: np.ndarray,
    champion_proba: np.ndarray,
    horizon_hours: int,
    level: float,
    min_rows: int,
    age_days: float,
    max_age_days: float,
    min_blocks: int = 10,
) -> ChallengerReview:
    """Champion/challenger on realised rows: the challenger's shadow predictions and the
    champion's predictions of the same (symbol, hour), labels matured. No verdict before
    ``min_rows`` rows and ``min_blocks`` bootstrap blocks (a block bootstrap of a handful of blocks
    understates the uncertainty). Promoted when its log loss is lower with ``level`` confidence
    (moving-block bootstrap over overlapping labels, as ``compare``); retired when significantly
    worse (interval above zero) or, short of a significant win, older than ``max_age_days``;
    otherwise kept in the shadow."""
    symbols = rows["symbol"].nunique() if len(rows) else 1
    needed = max(min_rows, min_blocks * block_length(horizon_hours, symbols))
    decision = compare(rows, challenger_proba, champion_proba, horizon_hours, level, needed, "realised rows")
    if decision.promote:
        return ChallengerReview("promoted", decision.reason, decision)
    if decision.ci_low is not None and decision.ci_low > 0:
        return ChallengerReview("retired", f"significantly worse than the champion: {decision.reason}", decision)
    if age_days > max_age_days:
        return ChallengerReview(
            "retired",
            f"{age_days:.1f} days old (> {max_age_days:g}) without a significant improvement: {decision.reason}",
            decision,
        )
    return ChallengerReview("kept", decision.reason, decision)
