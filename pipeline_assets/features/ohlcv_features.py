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
    p = FEATURE_PARAMS
    high = bars["high"].to_numpy(dtype=np.float64)
    low = bars["low"].to_numpy(dtype=np.float64)
    close = bars["close"].to_numpy(dtype=np.float64)
    volume = bars["volume"].to_numpy(dtype=np.float64)

    ema_fast = ind.ema(close, p["ema_fast"])
    ema_slow = ind.ema(close, p["ema_slow"])
    macd = ema_fast - ema_slow
    macd_signal = ind.ema(macd, p["macd_signal"])
    one_hour = ind.log_return(close, 1)
    volume_mean = ind.rolling_mean(volume, p["volume_window"])
    volume_std = ind.rolling_std(volume, p["volume_window"], ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        volume_z = np.where(volume_std > 0, (volume - volume_mean) / volume_std, 0.0)
    volume_z[np.isnan(volume_std)] = np.nan
    short, mid, long = p["return_periods"]
    return pd.DataFrame(
        {
            "ts": bars["ts"].to_numpy(),
            "log_return_1h": ind.log_return(close, short),
            "log_return_4h": ind.log_return(close, mid),
            "log_return_24h": ind.log_return(close, long),
            "rsi_14": ind.wilder_rsi(close, p["rsi_period"]),
            "ema_ratio_12_26": ema_fast / ema_slow - 1.0,
            "macd_hist_pct": (macd - macd_signal) / close,
            "bb_pctb_20": ind.bollinger_pctb(close, p["bollinger_window"], p["bollinger_std"]),
            "atr_14_pct": ind.wilder_atr(high, low, close, p["atr_period"]) / close,
            "realized_vol_24h": ind.rolling_std(one_hour, p["volatility_window"], ddof=1),
            "volume_zscore_24h": volume_z,
            "range_pct": (high - low) / close,
        }
    ).assign(ts=lambda f: pd.to_datetime(f["ts"], utc=True))
