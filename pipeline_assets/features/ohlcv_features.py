"""The first OHLCV feature set: indicator columns per hourly bar of one symbol."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_assets.contracts.frames import require_utc_frame
from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.features import indicators as ind

FEATURE_COLUMNS: tuple[str, ...] = (
    "log_return_1h",
    "log_return_4h",
    "log_return_24h",
    "rsi_14",
    "ema_ratio_12_26",
    "macd_hist_pct",
    "bb_pctb_20",
    "atr_14_pct",
    "realized_vol_24h",
    "volume_zscore_24h",
    "range_pct",
)
FEATURE_PARAMS: dict = {
    "return_periods": [1, 4, 24],
    "rsi_period": 14,
    "ema_fast": 12,
    "ema_slow": 26,
    "macd_signal": 9,
    "bollinger_window": 20,
    "bollinger_std": 2.0,
    "atr_period": 14,
    "volatility_window": 24,
    "volume_window": 24,
}
FEATURE_SET_VERSION = 1
assert len(FEATURE_COLUMNS) == ind.OHLCV_FAMILY_WIDTH
# Bars before the first row of interest that a caller must supply: covers the longest chain
# (MACD signal: 26 + 9 - 1 bars) with room for the EMAs to forget their seed.
LOOKBACK_HOURS = 96
REQUIRED_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class FeatureInputError(ValueError):
    pass


def feature_set_id(columns=FEATURE_COLUMNS, params=FEATURE_PARAMS, version=FEATURE_SET_VERSION) -> str:
    return content_id(f"ohlcv-v{version}", {"columns": list(columns), "params": params, "version": version})


FEATURE_SET_ID = feature_set_id()


def _validate(bars: pd.DataFrame) -> None:
    require_utc_frame(bars, REQUIRED_COLUMNS, FeatureInputError, context="bars")
    ts = bars["ts"]
    not_increasing = ts.diff().iloc[1:] <= pd.Timedelta(0)
    if not_increasing.any():
        raise FeatureInputError(f"ts not strictly increasing at {ts[not_increasing.index[not_increasing]].iloc[0]}")
    for column in REQUIRED_COLUMNS[1:]:
        bad = bars[column].isna()
        if bad.any():
            raise FeatureInputError(f"NaN in column {column!r} at {ts[bad].iloc[0]}")


def compute_ohlcv_features(bars: pd.DataFrame) -> pd.DataFrame:
    """``ts`` plus FEATURE_COLUMNS for every input bar, in input order; NaN during warm-up."""
    _validate(bars)
    if bars.empty:
        return pd.DataFrame({"ts": bars["ts"], **{c: pd.Series(dtype="float64") for c in FEATURE_COLUMNS}})
    values = ohlcv_family_array(
        bars["open"].to_numpy(dtype=np.float64),
        bars["high"].to_numpy(dtype=np.float64),
        bars["low"].to_numpy(dtype=np.float64),
        bars["close"].to_numpy(dtype=np.float64),
        bars["volume"].to_numpy(dtype=np.float64),
    )
    frame = pd.DataFrame(values, columns=list(FEATURE_COLUMNS))
    # the column as it is (tz-aware datetime64): .to_numpy() would build a Python object per bar
    frame.insert(0, "ts", bars["ts"].reset_index(drop=True))
    return frame


def ohlcv_family_array(open_, high, low, close, volume, out: np.ndarray | None = None) -> np.ndarray:
    """Array-level entry point (the online case): float64 (n, len(FEATURE_COLUMNS)) for n bars,
    warm-up from the first bar, NaN during it. Inputs must be finite and of equal length; ``out``
    (C-contiguous float64, shape (n, 11)) avoids the one allocation."""
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close, volume)]
    n = arrays[0].shape[0]
    if any(a.shape != (n,) for a in arrays):
        shapes = [a.shape for a in arrays]
        raise FeatureInputError(f"open/high/low/close/volume must be 1-D of one length, got {shapes}")
    if out is None:
        out = np.empty((n, len(FEATURE_COLUMNS)))
    elif out.shape != (n, len(FEATURE_COLUMNS)) or out.dtype != np.float64:
        want = (n, len(FEATURE_COLUMNS))
        raise FeatureInputError(f"out must be float64 of shape {want}, got {out.dtype} {out.shape}")
    ind.ohlcv_range_at(np.stack(arrays), 0, 0, n, out, 0, 0)
    return out
