"""Trading signals from direction probabilities, and the returns they would have earned."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_assets.contracts.versioning import content_id

SIGNAL_PARAMS = {"min_edge": 0.05, "min_probability": 0.37}
SIGNAL_RULE_ID = content_id("edge-v1", SIGNAL_PARAMS)


def signals_from_probabilities(prob_sell: np.ndarray, prob_buy: np.ndarray, params: dict | None = None) -> pd.DataFrame:
    """BUY when P(buy) beats P(sell) by min_edge and P(buy) >= min_probability; SELL mirrored; else HOLD."""
    params = params or SIGNAL_PARAMS
    prob_sell = np.asarray(prob_sell, dtype=np.float64)
    prob_buy = np.asarray(prob_buy, dtype=np.float64)
    if np.isnan(prob_sell).any() or np.isnan(prob_buy).any():
        raise ValueError("probabilities contain NaN")
    edge = prob_buy - prob_sell
    position = np.zeros(len(edge), dtype=np.int16)
    position[(edge >= params["min_edge"]) & (prob_buy >= params["min_probability"])] = 1
    position[(edge <= -params["min_edge"]) & (prob_sell >= params["min_probability"])] = -1
    signal = np.where(position == 1, "BUY", np.where(position == -1, "SELL", "HOLD"))
    return pd.DataFrame({"signal": signal, "position": position, "edge": edge})


def strategy_returns(position: np.ndarray, forward_return: np.ndarray) -> np.ndarray:
    """Return of holding ``position`` over the label horizon; NaN where the return has not matured."""
    return np.asarray(position, dtype=np.float64) * np.asarray(forward_return, dtype=np.float64)
