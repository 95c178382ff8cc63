"""The OHLCV family's entry point: indicator columns per hourly bar of one symbol.

``compute_ohlcv_features(bars)`` gives the 11 FEATURE_COLUMNS (table ``ml_features_ohlcv``);
``extended=True`` adds the 16 EXT_COLUMNS of ``features/ohlcv_ext.py`` (table
``ml_features_ohlcv_ext``), computed by the same kernel the stored table uses. Input bars must be
finite: a NaN or infinite open/high/low/close/volume is refused with the symbol, column and time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline_assets.contracts.frames import require_utc_frame
from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.features import indicators as ind
from pipeline_assets.features import ohlcv_ext

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


def _validate(bars: pd.DataFrame, symbol: str | None) -> None:
    require_utc_frame(bars, REQUIRED_COLUMNS, FeatureInputError, context=f"bars of {symbol}" if symbol else "bars")
    ts = bars["ts"]
    not_increasing = ts.diff().iloc[1:] <= pd.Timedelta(0)
    if not_increasing.any():
        where = f"{symbol} " if symbol else ""
        at = ts[not_increasing.index[not_increasing]].iloc[0]
        raise FeatureInputError(f"{where}ts not strictly increasing at {at}")
    for column in REQUIRED_COLUMNS[1:]:
        values = bars[column].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            kind = "NaN" if np.isnan(values[first]) else f"non-finite value {values[first]!r}"
            who = f"symbol {symbol!r}" if symbol else "symbol unknown (pass symbol= or a 'symbol' column)"
            raise FeatureInputError(f"{kind} in column {column!r} at {ts.iloc[first]} ({who})")


def _symbol_of(bars: pd.DataFrame, symbol: str | None) -> str | None:
    if symbol is not None or "symbol" not in bars.columns or bars.empty:
        return symbol
    symbols = bars["symbol"].unique()
    if len(symbols) != 1:
        raise FeatureInputError(f"bars of one symbol expected, got {sorted(map(str, symbols))}")
    return str(symbols[0])


def compute_ohlcv_features(bars: pd.DataFrame, extended: bool = False, symbol: str | None = None) -> pd.DataFrame:
    """``ts`` plus FEATURE_COLUMNS for every input bar of one symbol, in input order; NaN during
    warm-up (which starts at the first bar). ``extended=True`` appends EXT_COLUMNS (the
    ``ml_features_ohlcv_ext`` values for the same bars; the first 11 columns are unchanged).
    ``symbol`` (or a one-valued ``symbol`` column) names the symbol in errors: NaN or infinite
    inputs raise FeatureInputError (a ValueError) naming symbol, column and time."""
    symbol = _symbol_of(bars, symbol)
    _validate(bars, symbol)
    columns = [*FEATURE_COLUMNS, *(ohlcv_ext.EXT_COLUMNS if extended else ())]
    if bars.empty:
        return pd.DataFrame({"ts": bars["ts"], **{c: pd.Series(dtype="float64") for c in columns}})
    arrays = [bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")]
    values = ohlcv_family_array(*arrays)
    if extended:
        values = np.hstack([values, ohlcv_ext.ohlcv_ext_array(*arrays)])
    frame = pd.DataFrame(values, columns=columns)
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
