from __future__ import annotations

import math

import pandas as pd
import pytest

from pipeline_assets.ml.performance import evaluate_predictions


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
