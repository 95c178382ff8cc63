"""Forward-return direction labels (SELL / HOLD / BUY) and when each becomes knowable."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from pipeline_assets.contracts.versioning import content_id

SELL, HOLD, BUY = 0, 1, 2
DIRECTION_NAMES = {SELL: "SELL", HOLD: "HOLD", BUY: "BUY"}

LABEL_PARAMS = {"horizon_hours": 4, "buy_threshold": 0.0025, "sell_threshold": -0.0025}
LABEL_SET_VERSION = 1


def label_set_id(params: dict) -> str:
    return content_id(f"dir{params['horizon_hours']}h-v{LABEL_SET_VERSION}", {"params": params})


LABEL_SET_ID = label_set_id(LABEL_PARAMS)
HORIZON_HOURS: int = LABEL_PARAMS["horizon_hours"]


class LabelInputError(ValueError):
    pass


def direction_from_return(forward_return: np.ndarray, buy_threshold: float, sell_threshold: float) -> np.ndarray:
    if not sell_threshold < buy_threshold:
        raise LabelInputError(f"sell_threshold {sell_threshold} must be below buy_threshold {buy_threshold}")
    direction = np.full(forward_return.shape, HOLD, dtype=np.int16)
    direction[forward_return > buy_threshold] = BUY
    direction[forward_return < sell_threshold] = SELL
    return direction


def compute_labels(
    bars: pd.DataFrame,
    label_start: datetime,
    label_end: datetime,
    params: dict | None = None,
) -> tuple[pd.DataFrame, int]:
    """Labels for bars with open time in [label_start, label_end) of one symbol.

    forward_return(t) = close(t + h) / close(t) - 1, where close(t) is the close of the bar
    opening at t. The label becomes knowable when bar t + h closes: matured_at = t + (h + 1) hours.
    The forward bar is looked up by timestamp, not position, so a gap never pairs the wrong bars.
    Returns (labels, number of bars in range whose forward bar is not available yet).
    """
    params = params or LABEL_PARAMS
    horizon = int(params["horizon_hours"])
    if horizon < 1:
        raise LabelInputError(f"horizon_hours must be >= 1, got {horizon}")
    for column in ("ts", "close"):
        if column not in bars.columns:
            raise LabelInputError(f"bars lack column {column!r}")
    if bars["ts"].duplicated().any():
        first = bars.loc[bars["ts"].duplicated(), "ts"].iloc[0]
        raise LabelInputError(f"duplicate bar ts {first.isoformat()}")
    close = pd.Series(bars["close"].to_numpy(dtype=np.float64), index=pd.DatetimeIndex(bars["ts"]))
    in_range = close.index[(close.index >= pd.Timestamp(label_start)) & (close.index < pd.Timestamp(label_end))]
    step = pd.Timedelta(hours=horizon)
    forward_close = close.reindex(in_range + step).to_numpy()
    current_close = close.reindex(in_range).to_numpy()
    matured = ~np.isnan(forward_close)
    forward_return = forward_close[matured] / current_close[matured] - 1.0
    ts = in_range[matured]
    labels = pd.DataFrame(
        {
            "ts": ts,
            "label_set_id": label_set_id(params),
            "horizon_hours": horizon,
            "forward_return": forward_return,
            "direction": direction_from_return(
                forward_return, float(params["buy_threshold"]), float(params["sell_threshold"])
            ),
            "matured_at": ts + pd.Timedelta(hours=horizon + 1),
        }
    )
    return labels, int((~matured).sum())
