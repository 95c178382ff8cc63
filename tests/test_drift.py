"""The performance-drift CUSUM and feature PSI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline_assets.ml.drift import CusumParams, feature_psi, performance_cusum, psi


def _days(losses, rows=96, std=0.8):
    return pd.DataFrame(
        {
            "day": pd.date_range("2024-03-01", periods=len(losses)).strftime("%Y-%m-%d"),
            "log_loss": losses,
            "matured_rows": rows,
            "log_loss_std": std,
        }
    )


def test_cusum_statistic_follows_the_standardised_excess():
    reference = 1.0
    # one symbol: 24 rows a day, overlapping 4h labels -> 6 effective rows; std 0.6 -> se 0.245
    se = 0.6 / np.sqrt(6)
    days = _days([1.0 + se * 2] * 4, rows=24, std=0.6)
    decision = performance_cusum(days, reference)
    assert decision.path == pytest.approx([1.5, 3.0, 4.5, 6.0], abs=1e-3)
    assert decision.drifted and decision.first_alarm_day == "2024-03-04"
    assert not performance_cusum(days.iloc[:3], reference).drifted
    # the same excess with 4x the rows is 2x as many standard errors
    assert performance_cusum(_days([1.0 + se * 2] * 2, rows=96, std=0.6), reference).path[-1] == pytest.approx(
        7.0, abs=1e-2
    )


def test_cusum_forgets_good_days_only_down_to_zero_and_skips_thin_days():
    decision = performance_cusum(_days([0.5, 0.5, 0.5, 1.0, 1.0]), 1.0)
    assert decision.path[:3] == [0.0, 0.0, 0.0] and not decision.drifted
    thin = _days([3.0, 3.0], rows=5)
    assert performance_cusum(thin, 1.0).reason.startswith("no day with")
    assert performance_cusum(thin.iloc[:0], 1.0).reason == "no evaluated days yet"
    # rows written before log_loss_std was stored use the default per-row std
    old = _days([1.2] * 3).drop(columns=["log_loss_std"])
    assert performance_cusum(old, 1.0, CusumParams(default_row_std=0.8)).path[0] == pytest.approx(
        0.2 / (0.8 / np.sqrt(24)) - 0.5
    )


def test_stationary_noise_rarely_alarms_and_a_shift_is_found():
    rng = np.random.default_rng(0)
    se = 0.8 / np.sqrt(24)
    alarms = sum(
        performance_cusum(_days(1.0 + rng.normal(0, se, 90)), 1.0).first_alarm_day is not None for _ in range(200)
    )
    assert alarms <= 10  # independent N(0, 1) days: the CUSUM's run length is far beyond 90 days
    shifted = np.concatenate([1.0 + rng.normal(0, se, 45), 1.0 + 2 * se + rng.normal(0, se, 45)])
    decision = performance_cusum(_days(shifted), 1.0)
    assert decision.drifted and "2024-04-15" <= decision.first_alarm_day <= "2024-04-25"


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, 5000)
    assert psi(train, rng.normal(0, 1, 2000)) < 0.02
    assert psi(train, rng.normal(1.0, 1, 2000)) > 0.25
    table = feature_psi(
        pd.DataFrame({"a": train, "b": train}),
        pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(2, 1, 500)}),
        ["a", "b"],
    )
    assert table["feature"].tolist() == ["b", "a"] and table["shifted"].tolist() == [True, False]
    assert np.isnan(psi(np.array([1.0, np.nan]), np.array([1.0])))


def test_calibrated_psi_uses_the_training_windows_own_variation():
    rng = np.random.default_rng(2)
    ts = pd.date_range("2024-01-01", periods=24 * 40, freq="h", tz="UTC")
    # a regime switch every 5 days inside the training window: PSI of a 5-day block is large
    regime = np.repeat(rng.choice([0.5, 2.0], size=8), 24 * 5)
    train = pd.DataFrame({"ts": ts, "x": rng.normal(0, 1, len(ts)) * regime})
    high = int(np.argmax(regime[::120] == 2.0))  # a high-volatility block of the training window, replayed
    recent_same = pd.DataFrame(
        {"ts": ts[-120:] + pd.Timedelta(days=40), "x": train["x"].to_numpy()[high * 120 : high * 120 + 120]}
    )
    recent_new = pd.DataFrame({"ts": ts[-120:] + pd.Timedelta(days=40), "x": rng.normal(6, 1, 120)})
    assert feature_psi(train, recent_same, ["x"], calibrate=False)["shifted"].item()  # raw PSI > 0.25
    assert not feature_psi(train, recent_same, ["x"])["shifted"].item()  # seen inside training: no drift
    assert feature_psi(train, recent_new, ["x"])["shifted"].item()
