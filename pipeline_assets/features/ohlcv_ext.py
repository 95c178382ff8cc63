"""The extended OHLCV indicator set, one fused numba pass (the second half of the OHLCV family;
kept in its own table so the first 11 columns, and the models trained on them, keep their ids).

Columns (every value at bar i uses bars <= i only; NaN during warm-up):
- ``sma_ratio_{10,20,50}``: close / SMA(n) - 1.
- ``ema_ratio_{9,21,50}``: close / EMA(n) - 1, EMA seeded with the SMA of its first n closes
  (TA-Lib's convention).
- ``stoch_k_14``, ``stoch_d_3``: fast stochastic %K(14) and its 3-bar SMA %D (TA-Lib STOCHF).
- ``plus_di_14``, ``minus_di_14``, ``adx_14``: Wilder's directional movement (TA-Lib PLUS_DI,
  MINUS_DI, ADX: smoothing seeded with the sums of the first 14 bars).
- ``mfi_14``: money flow index (TA-Lib MFI).
- ``obv_slope_24``: on-balance volume change over 24 bars divided by the volume traded in them,
  in [-1, 1] (raw OBV depends on where the series starts; its 24-bar change does not).
- ``vwap_dev_24``: close / VWAP(24 bars, typical price) - 1.
- ``volume_ratio_20``: volume / SMA(20) of volume.
- ``log_volume_change``: log(volume / previous volume); NaN when either is 0.
Warm-up is day-anchored with EXT_LOOKBACK_HOURS, like the 11-column half.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline_assets.contracts.versioning import content_id

EXT_COLUMNS: tuple[str, ...] = (
    "sma_ratio_10",
    "sma_ratio_20",
    "sma_ratio_50",
    "ema_ratio_9",
    "ema_ratio_21",
    "ema_ratio_50",
    "stoch_k_14",
    "stoch_d_3",
    "plus_di_14",
    "minus_di_14",
    "adx_14",
    "mfi_14",
    "obv_slope_24",
    "vwap_dev_24",
    "volume_ratio_20",
    "log_volume_change",
)
EXT_PARAMS: dict = {
    "sma": [10, 20, 50],
    "ema": [9, 21, 50],
    "stoch": [14, 3],
    "dmi": 14,
    "mfi": 14,
    "obv": 24,
    "vwap": 24,
    "volume_sma": 20,
}
EXT_VERSION = 1
EXT_LOOKBACK_HOURS = 240  # EMA 50 and the double Wilder smoothing of ADX forget their seeds
EXT_SET_ID = content_id(
    f"ohlcvx-v{EXT_VERSION}", {"columns": sorted(EXT_COLUMNS), "params": EXT_PARAMS, "version": EXT_VERSION}
)


@njit(cache=True, inline="always")
def _mean(values, start, stop):
    total = 0.0
    for j in range(start, stop):
        total += values[j]
    return total / (stop - start)


@njit(cache=True, inline="always")
def _stoch_k(high, low, close, i):
    hh, ll = high[i], low[i]
    for j in range(i - 13, i):
        hh = max(hh, high[j])
        ll = min(ll, low[j])
    return 100.0 * (close[i] - ll) / (hh - ll) if hh > ll else 0.0


@njit(cache=True)
def ohlcv_ext_range(open_, high, low, close, volume, lo, first, hi, out, row0):
    """EXT_COLUMNS for bars [first, hi) from bars [lo, hi) into out[row0 + i - first]."""
    ema_spans = (9, 21, 50)
    ema = np.full(3, np.nan)
    ema_total = np.zeros(3)
    period = 14
    tr_s = pdm_s = mdm_s = 0.0
    dx_sum = 0.0
    adx = np.nan
    dx_seen = 0
    for i in range(lo, hi):
        k = i - lo
        c = close[i]
        for e in range(3):
            span = ema_spans[e]
            if k < span:
                ema_total[e] += c
                if k == span - 1:
                    ema[e] = ema_total[e] / span
            else:
                a = 2.0 / (span + 1.0)
                ema[e] = a * c + (1.0 - a) * ema[e]
        # Wilder directional movement (TA-Lib: sums of the first period-1 moves, then smoothing)
        plus_di = minus_di = np.nan
        if k >= 1:
            up = high[i] - high[i - 1]
            down = low[i - 1] - low[i]
            pdm = up if (up > down and up > 0) else 0.0
            mdm = down if (down > up and down > 0) else 0.0
            tr = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
            if k <= period - 1:
                tr_s += tr
                pdm_s += pdm
                mdm_s += mdm
            else:
                tr_s = tr_s - tr_s / period + tr
                pdm_s = pdm_s - pdm_s / period + pdm
                mdm_s = mdm_s - mdm_s / period + mdm
            if k >= period:
                plus_di = 100.0 * pdm_s / tr_s if tr_s > 0 else 0.0
                minus_di = 100.0 * mdm_s / tr_s if tr_s > 0 else 0.0
                total = plus_di + minus_di
                dx = 100.0 * abs(plus_di - minus_di) / total if total > 0 else 0.0
                dx_seen += 1
                if dx_seen <= period:
                    dx_sum += dx
                    if dx_seen == period:
                        adx = dx_sum / period
                else:
                    adx = (adx * (period - 1) + dx) / period
        if i < first:
            continue
        row = row0 + i - first
        for col, n in ((0, 10), (1, 20), (2, 50)):
            out[row, col] = c / _mean(close, i - n + 1, i + 1) - 1.0 if k >= n - 1 else np.nan
        for e in range(3):
            out[row, 3 + e] = c / ema[e] - 1.0
        out[row, 6] = _stoch_k(high, low, close, i) if k >= 13 else np.nan
        if k >= 15:
            out[row, 7] = (
                _stoch_k(high, low, close, i) + _stoch_k(high, low, close, i - 1) + _stoch_k(high, low, close, i - 2)
            ) / 3.0
        else:
            out[row, 7] = np.nan
        out[row, 8] = plus_di
        out[row, 9] = minus_di
        out[row, 10] = adx if dx_seen >= period else np.nan
        if k >= 14:
            pos = neg = 0.0
            for j in range(i - 13, i + 1):
                tp = (high[j] + low[j] + close[j]) / 3.0
                tp_prev = (high[j - 1] + low[j - 1] + close[j - 1]) / 3.0
                if tp > tp_prev:
                    pos += tp * volume[j]
                elif tp < tp_prev:
                    neg += tp * volume[j]
            out[row, 11] = 100.0 * pos / (pos + neg) if pos + neg > 0 else 50.0
        else:
            out[row, 11] = np.nan
        if k >= 24:
            signed = traded = 0.0
            for j in range(i - 23, i + 1):
                if close[j] > close[j - 1]:
                    signed += volume[j]
                elif close[j] < close[j - 1]:
                    signed -= volume[j]
                traded += volume[j]
            out[row, 12] = signed / traded if traded > 0 else 0.0
        else:
            out[row, 12] = np.nan
        if k >= 23:
            pv = vv = 0.0
            for j in range(i - 23, i + 1):
                pv += (high[j] + low[j] + close[j]) / 3.0 * volume[j]
                vv += volume[j]
            out[row, 13] = c / (pv / vv) - 1.0 if vv > 0 else np.nan
        else:
            out[row, 13] = np.nan
        if k >= 19:
            mean_volume = _mean(volume, i - 19, i + 1)
            out[row, 14] = volume[i] / mean_volume if mean_volume > 0 else np.nan
        else:
            out[row, 14] = np.nan
        if k >= 1 and volume[i] > 0 and volume[i - 1] > 0:
            out[row, 15] = np.log(volume[i] / volume[i - 1])
        else:
            out[row, 15] = np.nan


def ohlcv_ext_array(open_, high, low, close, volume, out: np.ndarray | None = None) -> np.ndarray:
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close, volume)]
    n = arrays[0].shape[0]
    if any(a.shape != (n,) for a in arrays):
        raise ValueError(f"open/high/low/close/volume must be 1-D of one length, got {[a.shape for a in arrays]}")
    if out is None:
        out = np.empty((n, len(EXT_COLUMNS)))
    ohlcv_ext_range(*arrays, 0, 0, n, out, 0)
    return out
