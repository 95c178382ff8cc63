"""Drift detection with a false-alarm budget.

Performance drift: a one-sided CUSUM on the standardised daily excess of the champion's realised
log loss over its held-out log loss. A day's mean log loss over n matured rows is not an average
of n independent values: labels of one symbol overlap for ``horizon_hours`` (consecutive rows
share most of their forward window), so the standard error uses an effective sample size of
n / horizon_hours rows:

    z_d = (L_d - L_ref) / (s_d / sqrt(max(1, n_d / h)))      s_d: that day's per-row std
    S_d = max(0, S_{d-1} + z_d - k);   drift when S_d > threshold

With k = 0.5 and threshold 5, benchmarks/bench_drift.py measured about 0.1 false alarms per 90
stationary days (goal: at most one) and a median delay of 3 days (4 symbols) to 9 days (one
symbol) after a 60% volatility increase; figures in the README. It works with one symbol (24
rows a day, effective n = 6) as with many; days with fewer than ``min_rows`` rows are skipped.

Feature drift: population stability index (PSI) per feature of the recent window against the
training window, on the training window's deciles. PSI > 0.25 is the conventional "shifted"
threshold; rolling features are autocorrelated, so the benchmark reports PSI on stationary data
too before it is trusted as an alarm (it is a WARN check, never a retrain trigger).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CusumParams:
    allowance: float = 0.5
    threshold: float = 5.0
    horizon_hours: int = 4
    min_rows: int = 12
    # per-row log-loss std when a day has none recorded (rows written before it was stored)
    default_row_std: float = 0.8


@dataclass(frozen=True)
class DriftDecision:
    drifted: bool
    reason: str
    statistic: float
    days: int
    path: list[float] = field(default_factory=list)
    first_alarm_day: str | None = None


def performance_cusum(
    daily: pd.DataFrame, reference_log_loss: float, params: CusumParams | None = None
) -> DriftDecision:
    """``daily``: one row per evaluated day with day, log_loss, matured_rows and (optionally)
    log_loss_std. Drifted when the CUSUM statistic of the latest day exceeds the threshold."""
    params = params or CusumParams()
    if daily.empty:
        return DriftDecision(False, "no evaluated days yet", 0.0, 0)
    frame = daily.sort_values("day")
    frame = frame[frame["matured_rows"] >= params.min_rows]
    if frame.empty:
        return DriftDecision(False, f"no day with >= {params.min_rows} matured rows", 0.0, 0)
    std = frame["log_loss_std"] if "log_loss_std" in frame.columns else pd.Series(np.nan, index=frame.index)
    std = std.fillna(params.default_row_std).clip(lower=1e-6).to_numpy(dtype=np.float64)
    n_eff = np.maximum(1.0, frame["matured_rows"].to_numpy(dtype=np.float64) / params.horizon_hours)
    z = (frame["log_loss"].to_numpy(dtype=np.float64) - reference_log_loss) / (std / np.sqrt(n_eff))
    statistic, path, first_alarm = 0.0, [], None
    days = frame["day"].astype(str).tolist()
    for day, value in zip(days, z, strict=True):
        statistic = max(0.0, statistic + value - params.allowance)
        path.append(statistic)
        if statistic > params.threshold and first_alarm is None:
            first_alarm = day
    drifted = statistic > params.threshold
    reason = (
        f"CUSUM {statistic:.2f} {'>' if drifted else '<='} {params.threshold} after {len(days)} days "
        f"(latest log loss {frame['log_loss'].iloc[-1]:.4f} vs held-out {reference_log_loss:.4f}, "
        f"effective rows/day {n_eff[-1]:.0f})"
    )
    return DriftDecision(drifted, reason, statistic, len(days), path, first_alarm if drifted else None)


def psi(train: np.ndarray, recent: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index of ``recent`` against ``train`` on train's quantile bins."""
    train = train[np.isfinite(train)]
    recent = recent[np.isfinite(recent)]
    if len(train) < bins or len(recent) == 0:
        return float("nan")
    edges = np.unique(np.quantile(train, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, train, side="right"), minlength=len(edges) + 1) / len(train)
    actual = np.bincount(np.searchsorted(edges, recent, side="right"), minlength=len(edges) + 1) / len(recent)
    expected, actual = np.clip(expected, eps, None), np.clip(actual, eps, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def feature_psi(
    train: pd.DataFrame, recent: pd.DataFrame, columns, threshold: float = 0.25, calibrate: bool = True
) -> pd.DataFrame:
    """PSI per feature of ``recent`` against ``train``, sorted worst first. With ``calibrate``
    the bar for each feature is also the largest PSI of the training window's own blocks of the
    recent window's duration against the whole training window: volatility regimes and
    overlapping rolling windows make PSI large on stationary data (measured on the synthetic
    market: most 7-day windows exceed 0.25 for some feature), so a feature is ``shifted`` only
    when the recent window differs more than the training window differed from itself."""
    rows = [
        {"feature": c, "psi": psi(train[c].to_numpy(dtype=np.float64), recent[c].to_numpy(dtype=np.float64))}
        for c in columns
    ]
    out = pd.DataFrame(rows)
    out["bar"] = threshold
    if calibrate and len(recent) and "ts" in train.columns and "ts" in recent.columns:
        duration = recent["ts"].max() - recent["ts"].min() + pd.Timedelta(hours=1)
        start, end = train["ts"].min(), train["ts"].max()
        blocks = []
        while start + duration <= end + pd.Timedelta(hours=1):
            blocks.append(train[(train["ts"] >= start) & (train["ts"] < start + duration)])
            start += duration
        if blocks:
            own = np.array(
                [[psi(train[c].to_numpy(np.float64), b[c].to_numpy(np.float64)) for c in columns] for b in blocks]
            )
            out["bar"] = np.maximum(threshold, np.nanmax(own, axis=0))
    out["shifted"] = out["psi"] > out["bar"]
    return out.sort_values("psi", ascending=False, ignore_index=True)
