"""False alarms and detection delay of the performance-drift detector, on simulated deployments
with overlapping labels.

python benchmarks/bench_drift.py [runs]

Each simulated deployment: hourly returns for S symbols, labels = the class (SELL/HOLD/BUY) of the
4h forward return (consecutive labels overlap, as in the pipeline), a model that predicts the
stationary class priors (its held-out log loss estimated on a 9-day held-out slice, as the
training pipeline would), 90 days of realised daily log loss. Stationary runs count false alarms
(an alarm resets the detector, as a retrain would); shifted runs raise volatility by 60% from day
45 and measure the delay to the first alarm. The previous rule (3-day window, 5% tolerance) is
measured on the same runs.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from pipeline_assets.ml.drift import CusumParams, performance_cusum

HORIZON = 4
THRESHOLD = 0.012  # |4h return| beyond this is BUY/SELL (about 30% each at 1% hourly volatility)


def labels(returns: np.ndarray) -> np.ndarray:
    forward = np.lib.stride_tricks.sliding_window_view(returns[1:], HORIZON).sum(axis=1)
    return np.where(forward < -THRESHOLD, 0, np.where(forward > THRESHOLD, 2, 1))


def deployment(
    rng, symbols: int, days: int, shift_day: int | None, priors: np.ndarray, reference: float
) -> pd.DataFrame:
    hours = days * 24 + HORIZON + 1
    vol = np.full(hours, 0.01)
    if shift_day is not None:
        vol[shift_day * 24 :] *= 1.6
    losses = []
    for _ in range(symbols):
        y = labels(rng.standard_normal(hours) * vol)[: days * 24]
        losses.append(-np.log(priors[y]))
    loss = np.stack(losses, axis=1).reshape(days, 24 * symbols)
    return pd.DataFrame(
        {
            "day": pd.date_range("2025-01-01", periods=days, freq="D").strftime("%Y-%m-%d"),
            "log_loss": loss.mean(axis=1),
            "log_loss_std": loss.std(axis=1, ddof=1),
            "matured_rows": loss.shape[1],
        }
    )


def alarms(daily: pd.DataFrame, reference: float, params: CusumParams) -> list[int]:
    """Alarm days (indices), the detector restarting after each (a retrain)."""
    out, start = [], 0
    while start < len(daily):
        decision = performance_cusum(daily.iloc[start:], reference, params)
        crossed = [i for i, s in enumerate(decision.path) if s > params.threshold]
        if not crossed:
            break
        out.append(start + crossed[0])
        start += crossed[0] + 1
    return out


def previous_rule(history: pd.DataFrame, reference: float) -> bool:
    """The rule this detector replaced: row-weighted log loss of the last 3 days > held-out + 5%,
    on at least 150 rows (it never fires with one or two symbols)."""
    recent = history.tail(3)
    rows = int(recent["matured_rows"].sum())
    return rows >= 150 and float(np.average(recent["log_loss"], weights=recent["matured_rows"])) > reference * 1.05


def old_rule_alarms(daily: pd.DataFrame, reference: float) -> int:
    count, day = 0, 3
    history = daily
    while day <= len(history):
        if previous_rule(history.iloc[:day], reference):
            count += 1
            day += 3  # a retrain resets the window
        else:
            day += 1
    return count


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = np.random.default_rng(2026)
    print(f"{runs} runs per row, 90 days each; the default threshold is {CusumParams().threshold:g}\n")
    print(
        "| threshold | symbols | false alarms / 90 stationary days (mean) | runs with a false alarm | "
        "old rule: false alarms (mean) | delay after +60% volatility (days, median / p90) | shifts missed in 45 days |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for threshold, symbols in ((4.0, 1), (4.0, 4), (5.0, 1), (5.0, 4), (5.0, 10), (6.0, 1), (6.0, 4)):
        params = CusumParams(threshold=threshold)
        false_alarms, any_alarm, old, delays, missed = [], 0, [], [], 0
        for _ in range(runs):
            # a model per deployment: class priors from a 60-day training window, its held-out
            # log loss from a 9-day held-out slice (estimation noise included)
            train_y = labels(rng.standard_normal(60 * 24 * symbols + HORIZON + 1) * 0.01)
            priors = np.bincount(train_y, minlength=3) / len(train_y)
            held_out = labels(rng.standard_normal(9 * 24 * symbols + HORIZON + 1) * 0.01)
            reference = float(np.mean(-np.log(priors[held_out])))
            daily = deployment(rng, symbols, 90, None, priors, reference)
            found = alarms(daily, reference, params)
            false_alarms.append(len(found))
            any_alarm += bool(found)
            old.append(old_rule_alarms(daily, reference))
            shifted = deployment(rng, symbols, 90, 45, priors, reference)
            after = [d for d in alarms(shifted, reference, params) if d >= 45]
            if after:
                delays.append(after[0] - 45)
            else:
                missed += 1
        delay = f"{np.median(delays):.0f} / {np.percentile(delays, 90):.0f}" if delays else "n/a"
        print(
            f"| {threshold:g} | {symbols} | {np.mean(false_alarms):.3f} | {any_alarm / runs:.1%} | "
            f"{np.mean(old):.2f} | {delay} | {missed / runs:.1%} |"
        )


if __name__ == "__main__":
    main()
