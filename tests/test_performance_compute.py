from __future__ import annotations

import math

import pandas as pd
import pytest

from pipeline_assets.ml.performance import detect_drift, evaluate_predictions


def test_evaluate_predictions_by_hand():
    frame = pd.DataFrame(
        {
            "prob_sell": [0.7, 0.2, 0.1],
            "prob_hold": [0.2, 0.5, 0.1],
            "prob_buy": [0.1, 0.3, 0.8],
            "predicted_direction": [0, 1, 2],
            "direction": [0, 2, 2],
        }
    )
    metrics = evaluate_predictions(frame)
    assert metrics["matured_rows"] == 3 and metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["log_loss"] == pytest.approx(-(math.log(0.7) + math.log(0.3) + math.log(0.8)) / 3)
    assert metrics["majority_accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no matured predictions"):
        evaluate_predictions(frame.iloc[:0])


def _history(losses, rows=100):
    return pd.DataFrame(
        {"day": pd.date_range("2024-03-01", periods=len(losses)).date, "matured_rows": rows, "log_loss": losses}
    )


def test_drift_rule_uses_the_latest_window_weighted_by_rows():
    reference = 1.00
    assert detect_drift(_history([]), reference).reason == "no evaluated days yet"
    assert not detect_drift(_history([1.2, 1.2], rows=50), reference).drifted  # 100 rows < min 150
    assert detect_drift(_history([0.9, 1.1, 1.1, 1.1]), reference).drifted  # old good day left the window
    calm = detect_drift(_history([1.5, 1.0, 1.04, 1.05]), reference)
    assert not calm.drifted and calm.window_log_loss == pytest.approx((1.0 + 1.04 + 1.05) / 3)
